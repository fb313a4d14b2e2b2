"""Before any job starts: every input the run will need and cannot get, named at once with its fix.

Without it an offline run learns of its problems one job at a time: the data first, then, hours of
training later, the ImageNet weights. It reads the merged config only (no TensorFlow, no Keras import),
looks at local files and, only where a download would be needed, tries a short TCP connection to the
download host (a few seconds at most, all hosts in parallel).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from kdbench import KdbenchError, architectures, datasets
from kdbench.io import keras_home

# Where keras.applications downloads its no-top ImageNet weights from, by constructor family (for messages:
# the file name comes from each architecture's Backbone record).
WEIGHTS_URLS = {"ResNet": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
                "EfficientNet": "https://storage.googleapis.com/keras-applications/"}
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
PROBE_SECONDS = 2.5


def _probe_address(host: str, port: int = 443) -> tuple[str, int]:
    """Where a download from `host` would connect: an HTTPS proxy from the environment, else the host."""
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def _connects(address: tuple[str, int], timeout: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def reachable(hosts: list[str], timeout: float = PROBE_SECONDS) -> dict[str, bool]:
    """{host: can a TCP connection to its HTTPS port (or the proxy) be opened within `timeout` seconds}.

    The probes run in parallel daemon threads, and the deadline covers name resolution too (which a
    socket timeout does not bound), so this returns within `timeout` even when DNS hangs.
    """
    results: dict[str, bool] = {}
    threads = []
    for host in dict.fromkeys(hosts):
        def probe(host=host):
            results[host] = _connects(_probe_address(host), timeout)
        thread = threading.Thread(target=probe, daemon=True, name=f"probe-{host}")
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {host: results.get(host, False) for host in dict.fromkeys(hosts)}


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def _data_needs(data: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """(problems found locally, [(download host, problem if that host cannot be reached)])."""
    source, path = data.get("source", "download"), data.get("path")
    try:
        spec = datasets.get(data.get("dataset", datasets.DEFAULT))
    except KdbenchError:
        return [], []  # the config check names an unknown data set
    if source == "download":
        cached = keras_home() / "datasets" / spec.filename
        if cached.is_file():
            return [], []
        host = _host(spec.url)
        return [], [(host, f"data: {spec.title} is not in the Keras cache ({cached}) and {host} cannot be "
                           f"reached to download it. Fix: download {spec.url} on a machine with internet and copy "
                           f"it to {cached}; or put it at data/{spec.filename} in this project and use "
                           f"data.source: archive with data.path: data/{spec.filename}"
                           + (" (what --preset offline sets)" if spec.name == "cifar10" else ""))]
    if source in ("archive", "npz"):
        wanted = (f"the official {spec.filename} or its extracted {spec.folder} folder" if source == "archive"
                  else "an .npz holding x_train, y_train, x_test, y_test")
        if not path:
            example = f"data/{spec.filename}" if source == "archive" else "data/images.npz"
            return [f"data: data.source is {source} but data.path is not set. Fix: set data.path to {wanted} "
                    f"(e.g. --set data.path={example})"], []
        if Path(path).exists():
            return [], []
        fix = f"put {wanted} at {path}"
        extracted = Path(path).parent / spec.folder
        if source == "archive" and extracted.is_dir():
            fix = f"the extracted folder is there: --set data.path={extracted}"
        elif source == "archive":
            fix += f" (download {spec.url})"
        return [f"data: data.path {path} does not exist (relative paths start in the folder you run "
                f"Snakemake from, {Path.cwd()}). Fix: {fix}"], []
    return [], []  # synthetic: nothing to fetch


def _backbone(architecture: str):
    """The architecture's keras.applications Backbone record, or None (not a known teacher)."""
    try:
        return getattr(architectures.get(architecture), "SPEC", None)
    except KdbenchError:
        return None  # the config check names an unknown architecture


def _weights_url(backbone) -> str:
    base = next((url for prefix, url in WEIGHTS_URLS.items() if backbone.constructor.startswith(prefix)), WEIGHTS_URL)
    return base + backbone.notop_weights_file


def _weights_needs(name: str, teacher: dict, default_weights) -> tuple[list[str], list[tuple[str, str]]]:
    """(problems found locally, [(architecture, teacher key)] whose ImageNet weights must be downloaded)."""
    weights = teacher.get("weights", default_weights)
    architecture = str(teacher.get("architecture", "resnet50"))
    backbone = _backbone(architecture)
    key = f"teachers.{name}.weights"
    if weights is None or backbone is None:
        return [], []
    if weights != "imagenet":
        if Path(str(weights)).is_file():
            return [_not_hdf5(key, Path(str(weights)), backbone)] if not _is_hdf5(Path(str(weights))) else [], []
        return [f"{key}: {weights} is not a file. Fix: put the Keras weights file {backbone.notop_weights_file} "
                f"there, or set {key}: imagenet (downloaded once), or {key}: null (random initialisation)"], []
    if (keras_home() / "models" / backbone.notop_weights_file).is_file():
        return [], []
    return [], [(architecture, key)]


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first 8 bytes of every HDF5 file (Keras .h5 weights)


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _not_hdf5(key: str, path: Path, backbone) -> str:
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(HDF5_SIGNATURE))
    except OSError as err:
        return f"{key}: {path} cannot be read ({err.strerror or err}). Fix: make it readable or point {key} elsewhere"
    kind = (" (a zip archive: a .keras model file, not a weights file)" if start.startswith(b"PK")
            else " (an HTML page: a failed download?)" if start.lstrip().lower().startswith((b"<!doc", b"<html"))
            else "")
    return (f"{key}: {path} is not an HDF5 file{kind}: it starts with {start!r}, not the HDF5 signature "
            f"{HDF5_SIGNATURE!r} every Keras .h5 weights file starts with. Fix: point {key} at the Keras weights "
            f"file {backbone.notop_weights_file} (download it again if it was cut short), or set {key}: imagenet "
            "(downloaded once) or null (random initialisation)")


def _weights_problem(architecture: str, keys: list[str]) -> str:
    """One message for every teacher that needs the same weights file."""
    backbone = _backbone(architecture)
    url = _weights_url(backbone)
    cached = keras_home() / "models" / backbone.notop_weights_file
    several = len(keys) > 1
    elsewhere = ("" if getattr(backbone, "imagenet_only_graph", False) else
                 f"; or put it anywhere and set {'each' if several else 'it'} to its path")
    return (f"{' and '.join(keys)}: the ImageNet weights of {architecture} are not in the Keras cache ({cached}) "
            f"and {_host(url)} cannot be reached to download them. Fix: download {url} on a machine with "
            f"internet and copy it to {cached}{elsewhere}; or set {'them' if several else 'it'} to null (random "
            "initialisation: the teacher then learns from the data set alone)")


def missing_inputs(config: dict, probe=reachable, done: set[str] = frozenset()) -> list[str]:
    """Every input this config needs that is neither on disk nor downloadable from here, with its fix.

    Empty when the run can start. `probe(hosts) -> {host: reachable}` is asked only about hosts a
    missing file would be downloaded from (tests replace it). `done` names what needs no input any more:
    "data" when the data set file exists, a teacher's name when its checkpoint does.
    """
    problems, downloads = _data_needs(config.get("data") or {}) if "data" not in done else ([], [])
    default_weights = (config.get("model") or {}).get("weights", "imagenet")  # the older config shape
    weights_wanted: dict[str, list[str]] = {}  # architecture -> teacher keys needing its ImageNet file
    for name, teacher in (config.get("teachers") or {}).items():
        if teacher is not None and name not in done:  # a preset drops a teacher by setting it to null
            found, needed = _weights_needs(name, teacher, default_weights)
            problems += found
            for architecture, key in needed:
                weights_wanted.setdefault(architecture, []).append(key)
    downloads += [(_host(_weights_url(_backbone(architecture))), _weights_problem(architecture, keys))
                  for architecture, keys in weights_wanted.items()]
    if downloads:
        online = probe(list(dict.fromkeys(host for host, _ in downloads)))
        problems += [problem for host, problem in downloads if not online.get(host, False)]
    return problems


def _labels_present(path: Path) -> np.ndarray | None:
    """The distinct labels of an .npz's y_train and y_test (None when it cannot be read: fetch_data says why)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return np.unique(np.concatenate([np.ravel(npz[key]) for key in ("y_train", "y_test")]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def content_warnings(config: dict, done: set[str] = frozenset()) -> list[str]:
    """What looks wrong in the inputs but may be meant (the run goes on): a user .npz whose labels cover fewer
    classes than the declared data set has (10 classes present, cifar100 declared). `done` as in missing_inputs."""
    data = config.get("data") or {}
    if "data" in done or data.get("source") != "npz" or not data.get("path") or not Path(data["path"]).is_file():
        return []
    try:
        spec = datasets.get(data.get("dataset", datasets.DEFAULT))
    except KdbenchError:
        return []
    labels = _labels_present(Path(data["path"]))
    if labels is None or not len(labels) or labels.min() < 0 or labels.max() >= spec.num_classes:
        return []  # unreadable or out of range: fetch_data stops with the reason
    if len(labels) == spec.num_classes:
        return []
    fits = [name for name, other in datasets.DATASETS.items() if other.num_classes >= labels.max() + 1
            and other.num_classes < spec.num_classes]
    hint = f"; if it holds {datasets.get(fits[0]).title}, set data.dataset: {fits[0]}" if fits else ""
    return [f"data.path {data['path']}: its labels cover {len(labels)} classes (0..{labels.max()}), but data.dataset "
            f"{spec.name} declares {spec.num_classes}: every model will be built with {spec.num_classes} outputs "
            f"and the classes not present can never be learned{hint}"]


def report(problems: list[str]) -> str:
    """The problems as one message for the user (empty when there are none)."""
    if not problems:
        return ""
    return (f"{len(problems)} input(s) this run needs are missing; nothing has been run:\n"
            + "\n".join(f"  - {problem}" for problem in problems))
