"""CIFAR-10 loading from every source users have: download, official archive, .npz, synthetic."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from kdbench import KdbenchError
from kdbench.io import atomic_path, keras_home

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
NUM_CLASSES = 10
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_FILENAME = "cifar-10-python.tar.gz"
OFFICIAL_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
OFFICIAL_TRAIN_SIZE = 50_000
OFFICIAL_TEST_SIZE = 10_000
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
SOURCES = ("download", "archive", "npz", "synthetic")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: only numpy array reconstruction is allowed, never arbitrary code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load '{module}.{name}': a CIFAR-10 batch holds only arrays and lists")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct
        if module == "_codecs":
            import codecs
            return codecs.encode
        return getattr(np, name)


def read_batch(data: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Decode one official CIFAR-10 python batch into (N, 32, 32, 3) uint8 images and int labels."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        flat = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        images = flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise KdbenchError(f"{name} is not a valid CIFAR-10 python batch ({err})") from err
    if len(images) != len(labels):
        raise KdbenchError(f"{name}: {len(images)} images but {len(labels)} labels")
    return images, labels


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _batch_reader(path: Path):
    """Return a function name -> bytes for an archive file or an extracted folder."""
    if path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path

        def read_from_folder(name: str) -> bytes:
            member = folder / name
            if not member.is_file():
                raise KdbenchError(f"{member} is missing: is {path} an extracted cifar-10-python.tar.gz?")
            return member.read_bytes()
        return read_from_folder

    try:
        archive = tarfile.open(path, "r:gz")
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as err:
        raise KdbenchError(f"{path} is not a readable cifar-10-python.tar.gz ({err}); "
                           "download it again or point data.path at an extracted copy") from err

    def read_from_archive(name: str) -> bytes:
        if name not in members:
            raise KdbenchError(f"{path} has no '{name}': it is not the CIFAR-10 python archive")
        try:
            return archive.extractfile(members[name]).read()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise KdbenchError(f"{path} is truncated or corrupt while reading '{name}' ({err})") from err
    return read_from_archive


def read_archive(path: str | os.PathLike, train_size: int, test_size: int,
                 expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read the first train_size training and test_size test images of the official archive."""
    path = Path(path)
    if not path.exists():
        raise KdbenchError(f"data.path {path} does not exist; download {OFFICIAL_URL} and point data.path at it")
    if expected_sha256 and path.is_file():
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise KdbenchError(
                f"{path} has sha256 {actual}, not the official {expected_sha256}: the file is corrupt, "
                f"truncated or not CIFAR-10. Download it again from {OFFICIAL_URL} "
                "(or set data.verify_checksum: false for a deliberately different archive)")
    read = _batch_reader(path)
    xs, ys, have = [], [], 0
    for name in TRAIN_BATCHES:
        if have >= train_size:
            break
        x, y = read_batch(read(name), f"{path}:{name}")
        xs.append(x)
        ys.append(y)
        have += len(x)
    if have < train_size:
        raise KdbenchError(f"{path} holds {have} training images; the config needs {train_size} "
                           "(data.train_size + data.val_size)")
    x_test, y_test = read_batch(read(TEST_BATCH), f"{path}:{TEST_BATCH}")
    if len(x_test) < test_size:
        raise KdbenchError(f"{path} holds {len(x_test)} test images; data.test_size asks for {test_size}")
    return {"x_train": np.concatenate(xs)[:train_size], "y_train": np.concatenate(ys)[:train_size],
            "x_test": x_test[:test_size], "y_test": y_test[:test_size]}


def download_archive(cache_dir: str | None = None) -> Path:
    """Fetch the official archive with Keras's downloader (cached in ~/.keras/datasets)."""
    import keras

    cache_root = Path(cache_dir) if cache_dir else keras_home()
    target = cache_root / "datasets" / OFFICIAL_FILENAME
    try:
        return Path(keras.utils.get_file(OFFICIAL_FILENAME, OFFICIAL_URL, file_hash=OFFICIAL_SHA256,
                                         cache_dir=str(cache_root), extract=False))
    except Exception as err:  # keras wraps network errors in several types
        raise KdbenchError(
            f"could not download CIFAR-10 from {OFFICIAL_URL} ({err}).\n"
            f"Offline? Copy the official {OFFICIAL_FILENAME} to {target} and rerun, or set "
            "data.source: archive and data.path: /path/to/cifar-10-python.tar.gz "
            "(or an extracted cifar-10-batches-py folder), or data.source: npz.") from err


def read_npz(path: str | os.PathLike, train_size: int, test_size: int) -> dict[str, np.ndarray]:
    """Read x_train, y_train, x_test, y_test (uint8 32x32x3 images, integer labels) from an .npz."""
    path = Path(path)
    if not path.is_file():
        raise KdbenchError(f"data.path {path} is not a file; expected an .npz with x_train, y_train, x_test, y_test")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise KdbenchError(f"{path} lacks array {', '.join(missing)}; it needs {', '.join(keys)}")
            arrays = {key: npz[key] for key in keys}
    except (OSError, ValueError, EOFError) as err:
        raise KdbenchError(f"{path} is not a readable .npz ({err})") from err
    for split, size in (("train", train_size), ("test", test_size)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"].reshape(-1)
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise KdbenchError(f"{path}: x_{split} has shape {x.shape}, expected (N, 32, 32, 3)")
        if len(x) < size:
            raise KdbenchError(f"{path} holds {len(x)} {split} images; the config needs {size}"
                               + (" (data.train_size + data.val_size)" if split == "train" else ""))
        arrays[f"x_{split}"] = x[:size].astype(np.uint8)
        arrays[f"y_{split}"] = y[:size].astype(np.int64)
    return arrays


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


def make_synthetic(train_size: int, test_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Learnable stand-in for CIFAR-10: each class is a fixed coarse colour pattern plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(40, 215, size=(NUM_CLASSES, 4, 4, 3))
    prototypes = prototypes.repeat(8, axis=1).repeat(8, axis=2)  # 4x4 blocks -> 32x32

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % NUM_CLASSES
        rng.shuffle(labels)
        images = prototypes[labels] + rng.normal(0, 30, size=(n, 32, 32, 3))
        return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)

    x_train, y_train = sample(train_size)
    x_test, y_test = sample(test_size)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def fetch(source: str, path: str | None, train_size: int, test_size: int, val_size: int = 0,
          verify_checksum: bool = True, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Load the configured slices; returns the arrays and a provenance record for the summary.

    The validation images are the val_size official training images right after the first train_size,
    so they never overlap the training or test images and the seed's training slice stays the same.
    """
    provenance: dict = {"source": source, "train_size": train_size, "val_size": val_size,
                        "test_size": test_size}
    pool_size = train_size + val_size
    if source == "synthetic":
        arrays = make_synthetic(pool_size, test_size, seed)
    elif source == "npz":
        if not path:
            raise KdbenchError("data.source: npz needs data.path pointing at the .npz file")
        arrays = read_npz(path, pool_size, test_size)
        provenance.update(path=str(path), sha256=sha256_of(path))
    elif source in ("download", "archive"):
        if source == "download":
            path = download_archive()
        elif not path:
            raise KdbenchError("data.source: archive needs data.path (cifar-10-python.tar.gz or its extracted folder)")
        expected = OFFICIAL_SHA256 if verify_checksum else None
        arrays = read_archive(path, pool_size, test_size, expected_sha256=expected)
        provenance.update(path=str(path), sha256=expected)
    else:
        raise KdbenchError(f"data.source is '{source}'; use one of {', '.join(SOURCES)}")
    arrays["x_val"], arrays["y_val"] = arrays["x_train"][train_size:], arrays["y_train"][train_size:]
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][:train_size], arrays["y_train"][:train_size]
    return arrays, provenance


def save_dataset(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_dataset(path: str | os.PathLike) -> dict[str, np.ndarray]:
    if not Path(path).is_file():
        raise KdbenchError(f"data set {path} is missing; write it with fetch_data.py (or let Snakemake run fetch_data)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise KdbenchError(f"cannot read data set {path} ({err}); delete it and rerun fetch_data") from err


def class_names(arrays: dict) -> list[str]:
    """Class names of a loaded data set (stored with it, not assumed)."""
    return [str(name) for name in arrays["class_names"]] if "class_names" in arrays else list(CLASS_NAMES)


def num_classes(arrays: dict) -> int:
    return len(class_names(arrays))


def validation_split(arrays: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(float32 images, labels) of the validation split, or None when the data set has none."""
    if len(arrays.get("x_val", [])) == 0:
        return None
    return arrays["x_val"].astype(np.float32), arrays["y_val"]
