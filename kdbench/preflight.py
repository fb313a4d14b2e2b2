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
from pathlib import Path

from kdbench.io import keras_home

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FILE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
WEIGHTS_HOST = "storage.googleapis.com"
# Keras's no-top ImageNet weights files, downloaded into $KERAS_HOME/models/ (keras.applications).
IMAGENET_NOTOP = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"),
    "resnet101": ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"),
    "resnet152": ("resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"),
}
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
    if source == "download":
        cached = keras_home() / "datasets" / CIFAR10_FILE
        if cached.is_file():
            return [], []
        return [], [(_host(CIFAR10_URL),
                     f"data: CIFAR-10 is not in the Keras cache ({cached}) and {_host(CIFAR10_URL)} cannot be "
                     f"reached to download it. Fix: download {CIFAR10_URL} on a machine with internet and "
                     f"copy it to {cached}; or put it at data/{CIFAR10_FILE} in this project and run with "
                     "--preset offline (or data.source: archive, data.path: data/cifar-10-python.tar.gz)")]
    if source in ("archive", "npz"):
        wanted = (f"the official {CIFAR10_FILE} or its extracted {CIFAR10_FOLDER} folder" if source == "archive"
                  else "an .npz holding x_train, y_train, x_test, y_test")
        if not path:
            return [f"data: data.source is {source} but data.path is not set. Fix: set data.path to {wanted} "
                    f"(e.g. --set data.path=data/{CIFAR10_FILE})"], []
        if Path(path).exists():
            return [], []
        fix = f"put {wanted} at {path}"
        extracted = Path(path).parent / CIFAR10_FOLDER
        if source == "archive" and extracted.is_dir():
            fix = f"the extracted folder is there: --set data.path={extracted}"
        elif source == "archive":
            fix += f" (download {CIFAR10_URL}, 163 MB)"
        return [f"data: data.path {path} does not exist (relative paths start in the folder you run "
                f"Snakemake from, {Path.cwd()}). Fix: {fix}"], []
    return [], []  # synthetic: nothing to fetch


def _weights_needs(name: str, teacher: dict, default_weights) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(problems found locally, [(architecture, weights file, teacher key)] of weights to download)."""
    weights = teacher.get("weights", default_weights)
    architecture = str(teacher.get("architecture", "resnet50")).lower()
    key = f"teachers.{name}.weights"
    if weights is None:
        return [], []
    if weights != "imagenet":
        if Path(str(weights)).is_file():
            return [], []
        known = IMAGENET_NOTOP.get(architecture, (None,))[0]
        return [f"{key}: {weights} is not a file. Fix: put the Keras weights file "
                + (f"{known} " if known else "") + f"there, or set {key}: imagenet (downloaded once), "
                f"or {key}: null (random initialisation)"], []
    if architecture not in IMAGENET_NOTOP:
        return [], []  # a Keras application this check does not know: it downloads its own file
    file, _ = IMAGENET_NOTOP[architecture]
    if (keras_home() / "models" / file).is_file():
        return [], []
    return [], [(architecture, file, key)]


def _weights_problem(architecture: str, keys: list[str]) -> str:
    """One message for every teacher that needs the same weights file."""
    file, base = IMAGENET_NOTOP[architecture]
    cached = keras_home() / "models" / file
    them = " and ".join(keys)
    return (f"{them}: the ImageNet weights of {architecture} are not in the Keras cache ({cached}) and "
            f"{_host(base)} cannot be reached to download them. Fix: download {base}{file} on a machine with "
            f"internet and copy it to {cached}; or put it anywhere and set {'each' if len(keys) > 1 else 'it'} "
            f"to its path; or set {'them' if len(keys) > 1 else 'it'} to null (random initialisation: the "
            "teacher then learns from CIFAR-10 alone)")


def missing_inputs(config: dict, probe=reachable) -> list[str]:
    """Every input this config needs that is neither on disk nor downloadable from here, with its fix.

    Empty when the run can start. `probe(hosts) -> {host: reachable}` is asked only about hosts a
    missing file would be downloaded from (tests replace it).
    """
    problems, downloads = _data_needs(config.get("data") or {})
    default_weights = (config.get("model") or {}).get("weights", "imagenet")  # the older config shape
    weights_wanted: dict[str, list[str]] = {}  # architecture -> teacher keys needing its ImageNet file
    for name, teacher in (config.get("teachers") or {}).items():
        if teacher is not None:  # a preset drops a teacher by setting it to null
            found, needed = _weights_needs(name, teacher, default_weights)
            problems += found
            for architecture, _, key in needed:
                weights_wanted.setdefault(architecture, []).append(key)
    downloads += [(_host(IMAGENET_NOTOP[architecture][1]), _weights_problem(architecture, keys))
                  for architecture, keys in weights_wanted.items()]
    if downloads:
        online = probe(list(dict.fromkeys(host for host, _ in downloads)))
        problems += [problem for host, problem in downloads if not online.get(host, False)]
    return problems


def report(problems: list[str]) -> str:
    """The problems as one message for the user (empty when there are none)."""
    if not problems:
        return ""
    return (f"{len(problems)} input(s) this run needs are missing; nothing has been run:\n"
            + "\n".join(f"  - {problem}" for problem in problems))
