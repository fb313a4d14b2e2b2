"""Shared test helpers: small archives in the official CIFAR-10 and CIFAR-100 formats, script/workflow runners."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def official_batch_bytes(images: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels",
                         extra: dict | None = None) -> bytes:
    """Pickle a batch the way the official CIFAR python files are laid out (bytes keys, CHW rows)."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {b"batch_label": b"test batch", label_key: [int(v) for v in labels], b"data": rows,
             b"filenames": [f"img{i}.png".encode() for i in range(len(images))], **(extra or {})}
    return pickle.dumps(batch, protocol=2)


def write_tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


def write_official_archive(path: Path, per_batch: int = 6, seed: int = 0,
                           skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Write a tiny cifar-10-python.tar.gz (5 train batches + test batch); return the arrays it holds."""
    rng = np.random.default_rng(seed)
    train_x = rng.integers(0, 256, size=(5 * per_batch, 32, 32, 3), dtype=np.uint8)
    train_y = rng.integers(0, 10, size=5 * per_batch)
    test_x = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
    test_y = rng.integers(0, 10, size=per_batch)
    members = {f"data_batch_{i + 1}": official_batch_bytes(train_x[i * per_batch:(i + 1) * per_batch],
                                                           train_y[i * per_batch:(i + 1) * per_batch])
               for i in range(5)}
    members["test_batch"] = official_batch_bytes(test_x, test_y)
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    write_tar_gz(path, {f"cifar-10-batches-py/{name}": payload for name, payload in members.items()
                        if name not in skip})
    return {"x_train": train_x, "y_train": train_y, "x_test": test_x, "y_test": test_y}


def write_official_cifar100_archive(path: Path, train: int = 30, test: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny cifar-100-python.tar.gz (train, test, meta; fine and coarse labels); return its arrays.

    Fine labels span 0..99 (the last image of each split is class 99) and coarse labels differ from
    them, so a reader that took the coarse labels or capped the classes at 10 would be caught.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    members = {}
    for split, n in (("train", train), ("test", test)):
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 100, size=n)
        y[-1] = 99
        coarse = [int(v) // 5 for v in y]
        members[f"cifar-100-python/{split}"] = official_batch_bytes(
            x, y, b"fine_labels", {b"coarse_labels": coarse, b"batch_label": f"{split}ing batch 1 of 1".encode()})
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    members["cifar-100-python/meta"] = pickle.dumps(
        {b"fine_label_names": [b"apple"] * 100, b"coarse_label_names": [b"fish"] * 20}, protocol=2)
    write_tar_gz(path, members)
    return arrays


def run_script(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run scripts/<name> as the rules do, capturing output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True)


def run_snakemake(workdir: Path, *args: str, snakefile: Path = ROOT / "Snakefile") -> subprocess.CompletedProcess:
    """Run the workflow in `workdir` (outputs land there, not in the repository)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
               *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture
def official_archive(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    return path, write_official_archive(path)


@pytest.fixture
def cifar100_archive(tmp_path):
    path = tmp_path / "cifar-100-python.tar.gz"
    return path, write_official_cifar100_archive(path)
