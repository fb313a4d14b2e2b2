"""Small file helpers: every output is written to a temporary name and renamed, so no half file survives;
result files are read back with their structure checked."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
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


def no_space(err: BaseException) -> OSError | None:
    """The ENOSPC error behind `err` (itself, or a cause/context Keras, h5py or TensorFlow wrapped), else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return err
        if "No space left on device" in str(err):
            return err if isinstance(err, OSError) else OSError(errno.ENOSPC, str(err))
        err = err.__cause__ or err.__context__
    return None


def no_space_message(path) -> str:
    return f"no space left writing {path}; free some disk space and rerun (finished steps are kept)"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A full disk (ENOSPC) while writing or renaming becomes one KdbenchError naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as err:
        if no_space(err):
            raise KdbenchError(no_space_message(path)) from err
        raise
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
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KdbenchError(f"{path} is not valid JSON ({err}); delete it and rerun the step that writes it") from err


def _rerun(path, step: str) -> str:
    """What to do about a damaged result file: rerun the step that wrote it (named by its folder)."""
    return (f"rerun the {step} step for {Path(path).parent.name}: snakemake --forcerun {path} "
            "(or delete the file and rerun snakemake)")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics(path: str | os.PathLike) -> dict:
    """An evaluate step's metrics JSON, with its structure checked: model, train{}, test{accuracy, loss, ...}."""
    try:
        metrics = json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise KdbenchError(f"{path} is missing; {_rerun(path, 'evaluate')}") from err
    except (OSError, ValueError) as err:
        raise KdbenchError(f"{path} is not valid JSON ({err}); {_rerun(path, 'evaluate')}") from err
    problem = None
    if not isinstance(metrics, dict):
        problem = f"holds a JSON {type(metrics).__name__}, not an object"
    elif not isinstance(metrics.get("model"), str) or not metrics["model"]:
        problem = "has no model name ('model')"
    elif not isinstance(metrics.get("train"), dict):
        problem = "has no training record ('train')"
    else:
        for split in ("test", "val"):
            if split == "val" and split not in metrics:
                continue
            block = metrics.get(split)
            if not isinstance(block, dict):
                problem = f"has no '{split}' metrics"
                break
            bad = [key for key in ("accuracy", "loss") if not _number(block.get(key))]
            if bad:
                problem = f"has no finite number for {split}.{', '.join(sorted(bad))}"
                break
            if not 0 <= block["accuracy"] <= 1:
                problem = f"has {split}.accuracy {block['accuracy']}, outside 0..1"
                break
    if problem:
        raise KdbenchError(f"{path} {problem}; it was damaged or edited by hand: {_rerun(path, 'evaluate')}")
    return metrics


def _read_csv(path, step: str):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError as err:
        raise KdbenchError(f"{path} is missing; {_rerun(path, step)}") from err
    except pd.errors.EmptyDataError as err:
        raise KdbenchError(f"{path} is empty; {_rerun(path, step)}") from err
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise KdbenchError(f"{path} is not a readable CSV ({str(err).splitlines()[0]}); "
                           f"{_rerun(path, step)}") from err


def read_history(path: str | os.PathLike):
    """A training step's per-epoch history CSV, checked: at least one row, integer epochs, finite losses."""
    import pandas as pd

    table = _read_csv(path, "training")
    missing = [column for column in ("epoch", "loss") if column not in table.columns]
    problem = None
    if missing:
        problem = f"has no {' or '.join(missing)} column (columns: {', '.join(map(str, table.columns)) or 'none'})"
    elif table.empty:
        problem = "has no epochs"
    else:
        epochs = pd.to_numeric(table["epoch"], errors="coerce")
        loss = pd.to_numeric(table["loss"], errors="coerce")
        if epochs.isna().any() or (epochs % 1 != 0).any() or (epochs < 0).any():
            problem = "has an epoch that is not a whole number"
        elif not loss.map(math.isfinite).all():
            problem = "has a loss that is not a finite number"
        else:
            table["epoch"], table["loss"] = epochs.astype(int), loss.astype(float)
    if problem:
        raise KdbenchError(f"{path} {problem}; it was damaged or edited by hand: {_rerun(path, 'training')}")
    return table


def read_predictions(path: str | os.PathLike, num_classes: int | None = None):
    """An evaluate step's predictions CSV, checked: integer label and prediction columns (in 0..num_classes-1)."""
    table = _read_csv(path, "evaluate")
    problem = None
    missing = [column for column in ("label", "prediction") if column not in table.columns]
    if missing:
        problem = f"has no {' or '.join(missing)} column (columns: {', '.join(map(str, table.columns)) or 'none'})"
    elif table.empty:
        problem = "has no rows"
    else:
        for column in ("label", "prediction"):
            if table[column].dtype.kind not in "iu":
                problem = f"has a {column} that is not a whole number"
            elif table[column].min() < 0 or (num_classes is not None and table[column].max() >= num_classes):
                top = f"0..{num_classes - 1}" if num_classes is not None else "0 or more"
                problem = f"has {column} values from {table[column].min()} to {table[column].max()}, outside {top}"
            if problem:
                break
    if problem:
        raise KdbenchError(f"{path} {problem}; it was damaged or edited by hand: {_rerun(path, 'evaluate')}")
    return table
