"""The .npz files: user-supplied image sets (x_train, y_train, x_test, y_test) and the data set fetch_data
writes for every later step (all six arrays plus class_names). Both are checked when read."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from kdbench import KdbenchError
from kdbench.datasets.checks import check_pair
from kdbench.io import atomic_path, sha256_of

SPLITS = ("train", "val", "test")
ARRAYS = tuple(f"{kind}_{split}" for split in SPLITS for kind in ("x", "y"))


def _load(path: Path, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise KdbenchError(f"{path} is not a readable .npz ({err}); {what}") from err


def read_npz(spec, path: str | os.PathLike, train_size: int, test_size: int) -> tuple[dict[str, np.ndarray], dict]:
    """The first train_size training and test_size test images of a user's .npz, checked, and its sha256."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise KdbenchError(f"data.path {path} is not a file; expected an .npz with x_train, y_train, x_test, y_test")
    keys = ("x_train", "y_train", "x_test", "y_test")
    arrays = _load(path, "expected an .npz with x_train, y_train, x_test, y_test")
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise KdbenchError(f"{path} lacks array {', '.join(missing)}; it needs {', '.join(keys)}")
    if "class_names" in arrays:
        names = arrays["class_names"].tolist()
        if names != list(spec.class_names):
            raise KdbenchError(f"{path} holds class_names for {len(names)} classes ({', '.join(map(str, names[:3]))}"
                               f", ...), not {spec.title}'s; set data.dataset to the data set it holds")
    out = {}
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = check_pair(arrays[f"x_{split}"], arrays[f"y_{split}"], spec.num_classes, str(path), split)
        if len(x) < size:
            raise KdbenchError(f"{path} holds {len(x)} {split} images; the config needs {size}"
                               + (" (data.train_size + data.val_size)" if split == "train" else ""))
        out[f"x_{split}"], out[f"y_{split}"] = x[:size], y[:size]
    digest = sha256_of(path)
    return out, {"path": str(path), "sha256": digest, "sha256_verified": False,
                 "verification": f"npz sha256: {digest} (a user file: no official checksum to compare with)"}


def npz_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Shapes of the arrays in an .npz, read from their headers only (cheap enough for config checks)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version in readers:
                        shapes[member.removesuffix(".npy")] = readers[version](handle)[0]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise KdbenchError(f"{path} is not a readable .npz ({err})") from err
    return shapes


def _checked(arrays: dict, class_names: list[str], where: str) -> dict[str, np.ndarray]:
    missing = [key for key in ARRAYS if key not in arrays]
    if missing:
        raise KdbenchError(f"{where} lacks array {', '.join(missing)}; a data set holds {', '.join(ARRAYS)} "
                           "and class_names: rerun fetch_data")
    out = {}
    for split in SPLITS:
        out[f"x_{split}"], out[f"y_{split}"] = check_pair(arrays[f"x_{split}"], arrays[f"y_{split}"],
                                                          len(class_names), where, split)
    return out


def _checked_names(class_names, where: str) -> list[str]:
    names = np.asarray(class_names)
    if names.dtype.kind != "U" or names.ndim != 1 or not names.size:
        raise KdbenchError(f"{where}: class_names has dtype {names.dtype} and shape {names.shape}; expected a "
                           "non-empty list of class names (strings): rerun fetch_data")
    if len(set(names.tolist())) != names.size:
        raise KdbenchError(f"{where}: class_names repeats a name; each class needs its own name: rerun fetch_data")
    return names.tolist()


def save_dataset(path: str | os.PathLike, arrays: dict[str, np.ndarray], class_names) -> None:
    """Write the six arrays and the class names, checked, as one .npz (atomically)."""
    names = _checked_names(list(class_names), f"data set for {path}")
    checked = _checked(arrays, names, f"data set for {path}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **checked, class_names=np.array(names, dtype=str))


def load_dataset(path: str | os.PathLike) -> dict:
    """The six arrays (checked against the file's own class_names) plus class_names as a list of str."""
    if not Path(path).is_file():
        raise KdbenchError(f"data set {path} is missing; write it with fetch_data.py (or let Snakemake run fetch_data)")
    arrays = _load(Path(path), "delete it and rerun fetch_data")
    if "class_names" not in arrays:
        raise KdbenchError(f"{path} has no class_names: it was written by an older kdbench or by hand; "
                           "delete it and rerun fetch_data")
    names = _checked_names(arrays["class_names"], str(path))
    return {**_checked(arrays, names, str(path)), "class_names": names}
