"""Reading code shared by the CIFAR data sets: the official python archives (file or extracted folder)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kdbench import KdbenchError
from kdbench.datasets.checks import check_images, check_labels
from kdbench.io import sha256_of


@dataclass(frozen=True)
class Spec:
    """What differs between the CIFAR data sets; the reading code below is the same for each."""

    name: str                  # data.dataset value
    title: str                 # for messages and the summary
    class_names: tuple[str, ...]
    filename: str              # official archive file name
    url: str
    sha256: str                # of the official archive
    folder: str                # folder inside the archive
    train_members: tuple[str, ...]
    test_member: str
    meta_member: str
    label_key: bytes           # b"labels" or b"fine_labels"
    train_size: int            # official sizes
    test_size: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def members(self) -> tuple[str, ...]:
        return (*self.train_members, self.test_member, self.meta_member)

    def expected(self) -> str:
        """The official layout, for messages."""
        return f"{self.folder}/ with {', '.join(self.members)}"


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
                f"refusing to load '{module}.{name}': a CIFAR batch holds only arrays and lists")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct
        if module == "_codecs":
            import codecs
            return codecs.encode
        return getattr(np, name)


def read_batch(data: bytes, spec: Spec, where: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Decode one official python batch into checked (N, 32, 32, 3) uint8 images and int64 labels."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise KdbenchError(f"{where} is not a valid {spec.title} python batch ({err})") from err
    if not isinstance(batch, dict):
        raise KdbenchError(f"{where} is not a valid {spec.title} python batch: it holds a "
                           f"{type(batch).__name__}, not a dict with b'data' and {spec.label_key!r}")
    missing = [key for key in (b"data", spec.label_key) if key not in batch]
    if missing:
        keys = ", ".join(repr(key) for key in batch)
        raise KdbenchError(f"{where} lacks {' and '.join(map(repr, missing))} (it has {keys}); a {spec.title} "
                           f"batch has b'data' and {spec.label_key!r}: {_other_data_set_hint(batch, spec)}")
    try:
        flat = np.asarray(batch[b"data"])
        labels = np.asarray(batch[spec.label_key])
    except (TypeError, ValueError) as err:
        raise KdbenchError(f"{where} is not a valid {spec.title} python batch ({err})") from err
    if flat.ndim != 2 or flat.shape[1] != 3 * 32 * 32:
        raise KdbenchError(f"{where}: b'data' has shape {flat.shape}, expected (N, 3072) rows of "
                           "1024 red, 1024 green and 1024 blue pixels")
    images = check_images(flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), f"{where}: b'data'")
    labels = check_labels(labels, spec.num_classes, f"{where}: {spec.label_key!r}")
    if len(images) != len(labels):
        raise KdbenchError(f"{where}: {len(images)} images but {len(labels)} labels; each image needs exactly "
                           "one label")
    return images, labels


def _other_data_set_hint(batch: dict, spec: Spec) -> str:
    from kdbench.datasets import DATASETS

    for other in DATASETS.values():
        if other.name != spec.name and other.label_key in batch:
            return f"it looks like {other.title}; set data.dataset: {other.name}"
    return f"is it the official {spec.filename}?"


def _corrupt(path: Path, spec: Spec, err: BaseException) -> KdbenchError:
    return KdbenchError(f"{path} is a corrupt archive ({type(err).__name__}: {err}): it is truncated or damaged; "
                        f"download {spec.url} again (sha256 {spec.sha256}) or point data.path at an extracted "
                        f"{spec.folder} folder")


_CORRUPT = (tarfile.TarError, OSError, EOFError, zlib.error)


def _check_stream(path: Path, tar_end: int) -> None:
    """Decompress the whole gzip stream (its CRC and length are checked at the end) and refuse anything
    but zero padding after the last member tarfile could read."""
    position = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            if position + len(chunk) > tar_end and chunk[max(0, tar_end - position):].strip(b"\0"):
                raise tarfile.ReadError(f"unreadable data after byte {tar_end} of the tar stream")
            position += len(chunk)


class _Source:
    """Batch bytes by member name from an archive file or an extracted folder, with what was verified."""

    def __init__(self, path: Path, spec: Spec, expected_sha256: str | None):
        self.path, self.spec = path, spec
        self.batch_sha256: dict[str, str] = {}
        if path.is_dir():
            self.folder = path / spec.folder if (path / spec.folder).is_dir() else path
            self.sha256 = None
            self.verification = "archive checksum not verified (extracted folder); sha256 of each batch file read " \
                                "in batch_sha256"
            self._read: Callable[[str], bytes] = self._from_folder
            return
        self.sha256 = sha256_of(path)
        if expected_sha256:
            if self.sha256 != expected_sha256:
                raise KdbenchError(
                    f"{path} has sha256 {self.sha256}, not the official {expected_sha256}: the file is corrupt, "
                    f"truncated or not {spec.title}. Download it again from {spec.url} "
                    "(or set data.verify_checksum: false for a deliberately different archive)")
            self.verification = f"sha256 verified: {self.sha256}"
        else:
            self.verification = (f"not verified (data.verify_checksum: false); sha256 of the file read: "
                                 f"{self.sha256}")
        try:
            self.archive = tarfile.open(path, "r:gz")
            members = self.archive.getmembers()
            if not expected_sha256:  # tarfile stops quietly at a damaged header: check the whole stream
                _check_stream(path, self.archive.offset)
        except _CORRUPT as err:
            raise _corrupt(path, spec, err) from err
        self.members = {Path(m.name).name: m for m in members if m.isfile()}
        self.names = [m.name for m in members if m.isfile()]
        self._read = self._from_archive

    def read(self, name: str) -> bytes:
        data = self._read(name)
        if self.sha256 is None:
            self.batch_sha256[name] = hashlib.sha256(data).hexdigest()
        return data

    def check_members(self, needed: list[str]) -> None:
        """Refuse an archive or folder that lacks batches, naming all of them at once."""
        if self.path.is_dir():
            present = sorted(p.name for p in self.folder.iterdir())
            missing = [name for name in needed if not (self.folder / name).is_file()]
            where = f"{', '.join(str(self.folder / name) for name in missing)} "
            where += "is missing" if len(missing) == 1 else "are missing"
            what = f"{self.path} is not an extracted {self.spec.filename}"
        else:
            present = self.names
            missing = [name for name in needed if name not in self.members]
            where = f"{self.path} lacks {', '.join(f'{self.spec.folder}/{name}' for name in missing)}"
            what = f"it is not the official {self.spec.filename}"
        if missing:
            shown = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
            raise KdbenchError(f"{where}: {what} (expected {self.spec.expected()}; found {shown or 'nothing'})"
                               f"{self._hint(present)}")

    def _from_folder(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def _from_archive(self, name: str) -> bytes:
        try:
            return self.archive.extractfile(self.members[name]).read()
        except _CORRUPT as err:
            raise _corrupt(self.path, self.spec, err) from err

    def _hint(self, names: list[str]) -> str:
        from kdbench.datasets import DATASETS

        for other in DATASETS.values():
            if other.name != self.spec.name and any(other.folder in name for name in names):
                return f"; it looks like {other.title}: set data.dataset: {other.name}"
        return ""


def read_archive(spec: Spec, path: str | os.PathLike, train_size: int, test_size: int,
                 expected_sha256: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The first train_size training and test_size test images of an official archive (file or folder),
    and what was verified about it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise KdbenchError(f"data.path {path} does not exist; download {spec.url} and point data.path at it")
    source = _Source(path, spec, expected_sha256)
    source.check_members([*spec.train_members, spec.test_member])
    xs, ys, have = [], [], 0
    for name in spec.train_members:
        if have >= train_size:
            break
        x, y = read_batch(source.read(name), spec, f"{path}:{name}")
        xs.append(x)
        ys.append(y)
        have += len(x)
    if have < train_size:
        raise KdbenchError(f"{path} holds {have} training images; the config needs {train_size} "
                           "(data.train_size + data.val_size)")
    x_test, y_test = read_batch(source.read(spec.test_member), spec, f"{path}:{spec.test_member}")
    if len(x_test) < test_size:
        raise KdbenchError(f"{path} holds {len(x_test)} test images; data.test_size asks for {test_size}")
    arrays = {"x_train": np.concatenate(xs)[:train_size], "y_train": np.concatenate(ys)[:train_size],
              "x_test": x_test[:test_size], "y_test": y_test[:test_size]}
    record = {"path": str(path), "verification": source.verification, "sha256": source.sha256,
              "sha256_verified": bool(expected_sha256) and source.sha256 is not None}
    if source.batch_sha256:
        record["batch_sha256"] = source.batch_sha256
    return arrays, record
