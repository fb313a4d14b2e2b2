"""Data sets behind one interface: a registry of specs (one module each) and the functions every step calls.

Later steps take the number of classes and the class names from the .npz that fetch() + save_dataset()
write (load_dataset returns them), never from a module constant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench import KdbenchError
from kdbench.datasets import cifar10, cifar100
from kdbench.datasets.checks import check_images, check_labels
from kdbench.datasets.cifar import Spec, read_archive, read_batch
from kdbench.datasets.npz import load_dataset, npz_shapes, read_npz, save_dataset
from kdbench.datasets.synthetic import make_synthetic
from kdbench.io import keras_home, sha256_of

DATASETS: dict[str, Spec] = {"cifar10": cifar10.SPEC, "cifar100": cifar100.SPEC}
SOURCES = ("download", "archive", "npz", "synthetic")
DEFAULT = "cifar10"

__all__ = ["DATASETS", "SOURCES", "Spec", "check_images", "check_labels", "config_errors", "download_archive",
           "fetch", "get", "load_dataset", "make_synthetic", "names", "npz_shapes", "read_archive", "read_batch",
           "read_npz", "save_dataset", "sha256_of"]


def names() -> list[str]:
    return list(DATASETS)


def get(name: str) -> Spec:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise KdbenchError(f"data.dataset is '{name}'; use one of {', '.join(DATASETS)}") from None


def download_archive(spec: Spec, cache_dir: str | None = None) -> Path:
    """Fetch the official archive with Keras's downloader (checked against its sha256, cached in
    ~/.keras/datasets)."""
    import keras

    cache_root = Path(cache_dir) if cache_dir else keras_home()
    target = cache_root / "datasets" / spec.filename
    try:
        return Path(keras.utils.get_file(spec.filename, spec.url, file_hash=spec.sha256,
                                         cache_dir=str(cache_root), extract=False))
    except Exception as err:  # keras wraps network errors in several types
        raise KdbenchError(
            f"could not download {spec.title} from {spec.url} ({err}). "
            f"Offline? Copy the official {spec.filename} to {target} and rerun, or set "
            f"data.source: archive with data.path: /path/to/{spec.filename} (or its extracted {spec.folder} "
            "folder), or data.source: npz with data.path: /path/to/file.npz "
            "(arrays x_train, y_train, x_test, y_test).") from err


def fetch(dataset: str, source: str, path: str | None, train_size: int, test_size: int, val_size: int = 0,
          verify_checksum: bool = True, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Load the configured slices; returns the arrays and a provenance record that says what was verified.

    The validation images are the val_size official training images right after the first train_size,
    so they never overlap the training or test images and the reference notebook's training slice stays the same.
    """
    spec = get(dataset)
    provenance: dict = {"dataset": spec.name, "title": spec.title, "num_classes": spec.num_classes,
                        "class_names": list(spec.class_names), "source": source, "train_size": train_size,
                        "val_size": val_size, "test_size": test_size}
    pool_size = train_size + val_size
    if source == "synthetic":
        arrays = make_synthetic(train_size, test_size, seed, spec.num_classes, val_size)
        provenance["verification"] = f"synthetic: generated images, not {spec.title}; nothing to verify"
        return arrays, provenance
    if source == "npz":
        if not path:
            raise KdbenchError("data.source: npz needs data.path pointing at the .npz file")
        arrays, record = read_npz(spec, path, pool_size, test_size)
    elif source in ("download", "archive"):
        if source == "download":
            path, expected = download_archive(spec), spec.sha256  # Keras checked it too; an official download
        elif not path:
            raise KdbenchError(f"data.source: archive needs data.path ({spec.filename} or its extracted folder)")
        else:
            expected = spec.sha256 if verify_checksum else None
        arrays, record = read_archive(spec, path, pool_size, test_size, expected_sha256=expected)
    else:
        raise KdbenchError(f"data.source is '{source}'; use one of {', '.join(SOURCES)}")
    provenance.update(record)
    arrays["x_val"], arrays["y_val"] = arrays["x_train"][train_size:], arrays["y_train"][train_size:]
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][:train_size], arrays["y_train"][:train_size]
    return arrays, provenance


def config_errors(data: dict) -> list[str]:
    """Checks of the config's data section that the schema cannot express, one readable line each."""
    try:
        spec = get(data.get("dataset", DEFAULT))
    except KdbenchError as err:
        return [str(err)]
    messages = []
    source, path = data["source"], data.get("path")
    if source in ("archive", "npz"):
        wanted = f"{spec.filename} or its extracted folder" if source == "archive" else "an .npz file"
        resolved = Path(path).expanduser() if path else None
        if not path:
            messages.append(f"data.path: missing; data.source: {source} needs data.path pointing at {wanted}")
        elif not resolved.exists() or (source == "npz" and not resolved.is_file()):
            messages.append(f"data.path: '{path}' does not exist (relative paths start in the working "
                            f"directory); data.source: {source} needs {wanted}")
        elif source == "npz":
            try:
                shapes = npz_shapes(resolved)
            except KdbenchError as err:
                messages.append(f"data.path: {err}")
            else:
                messages += _size_errors(data, shapes.get("x_train", (0,))[0], shapes.get("x_test", (0,))[0],
                                         f"in {path}")
        elif resolved.is_dir():
            messages += _folder_errors(spec, path, resolved)
    elif path:
        messages.append(f"data.path: '{path}' is set but data.source is {source}, which ignores it; "
                        "set data.source: archive or npz to use the file, or remove data.path")
    if source in ("download", "archive"):
        messages += _size_errors(data, spec.train_size, spec.test_size, f"in {spec.title}")
    return messages


def _folder_errors(spec: Spec, path: str, folder: Path) -> list[str]:
    """An extracted folder is cheap to look into: say now if it is another data set or not one at all."""
    inner = folder / spec.folder if (folder / spec.folder).is_dir() else folder
    if all((inner / name).is_file() for name in (*spec.train_members, spec.test_member)):
        return []
    for other in DATASETS.values():
        if other is not spec and ((folder / other.folder).is_dir() or (folder / other.test_member).is_file()):
            return [f"data.path: '{path}' holds {other.title} ({other.folder}), but data.dataset is {spec.name}; "
                    f"set data.dataset: {other.name} or point data.path at an extracted {spec.filename}"]
    return [f"data.path: '{path}' is not an extracted {spec.filename}: expected {spec.expected()}"]


def _size_errors(data: dict, train_images: int, test_images: int, where: str) -> list[str]:
    """Training and validation images both come from the training images; test images from the test set."""
    messages = []
    train, val = data["train_size"], data.get("val_size", 0)
    if train + val > train_images:
        messages.append(f"data.train_size + data.val_size: {train} + {val} = {train + val} is more than the "
                        f"{train_images} training images {where}; allowed: a sum up to {train_images}")
    if data["test_size"] > test_images:
        messages.append(f"data.test_size: {data['test_size']} is more than the {test_images} test images {where}; "
                        f"allowed: 1 to {test_images}")
    return messages


def validation_split(arrays: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(float32 images, labels) of the validation split, or None when the data set has none."""
    if len(arrays.get("x_val", [])) == 0:
        return None
    return arrays["x_val"].astype(np.float32), arrays["y_val"]
