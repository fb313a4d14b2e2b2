"""Small file helpers: every output is written to a temporary name and renamed, so no half file survives."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from kdbench import KdbenchError


def keras_home() -> Path:
    """Where Keras caches downloads (datasets/, models/): $KERAS_HOME or ~/.keras."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


def read_json(path: str | os.PathLike):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise KdbenchError(f"{path} is missing; rerun the step that writes it") from err
    except json.JSONDecodeError as err:
        raise KdbenchError(f"{path} is not valid JSON ({err}); delete it and rerun the step that writes it") from err
