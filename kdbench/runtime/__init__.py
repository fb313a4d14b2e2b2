"""The one room where a Keras backend is named: input pipeline, threads, seeding and determinism, device
description, data-parallel strategy, GPU listing and matmul peak, with the same functions for TensorFlow,
JAX and PyTorch. Everything else in kdbench uses `keras` / `keras.ops` and these functions only.

The backend is Keras's (KERAS_BACKEND, read when keras is first imported): `select` sets it before that.
Functions that need the backend import it on first use, so that scripts can parse flags and choose one first.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from kdbench import KdbenchError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT = "tensorflow"  # the design's package; the fastest of the three on a CPU (docs/performance.md)
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def requested() -> str:
    """The backend a job started now would get: KERAS_BACKEND when set, else TensorFlow."""
    return os.environ.get("KERAS_BACKEND") or DEFAULT


def select(backend: str | None, deterministic: bool = True) -> str:
    """Make `backend` Keras's backend (call before keras is imported); None keeps requested().

    deterministic: on JAX, also ask XLA for deterministic GPU ops (read when JAX starts, so set here; XLA's CPU
    ops are deterministic already). TensorFlow and PyTorch set theirs in configure().
    """
    backend = backend or requested()
    if backend not in BACKENDS:
        raise KdbenchError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != backend:
            raise KdbenchError(f"Keras already runs on {loaded}; choose the backend ({backend}) before importing "
                               "keras (set KERAS_BACKEND)")
    os.environ["KERAS_BACKEND"] = backend
    flags = os.environ.get("XLA_FLAGS", "")
    if backend == "jax" and deterministic and "xla_gpu_deterministic_ops" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    if importlib.util.find_spec(backend) is None:
        extra = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
        raise KdbenchError(f"the {LABELS[backend]} backend is not installed: pip install -e '.[{extra}]' "
                           f"(or make setup BACKEND={backend})")
    return backend


def name() -> str:
    """The backend Keras runs on in this process."""
    import keras

    return keras.backend.backend()


def _room():
    return importlib.import_module(f"kdbench.runtime._{name()}")


def configure(threads: int, seed: int, deterministic: bool = True) -> None:
    """Pin the backend to the rule's threads (Snakemake cannot), seed every generator (Python, NumPy, the
    backend's) and, by default, make ops deterministic: same inputs, flags and seed on the same machine and
    backend give identical results."""
    _room().configure(threads, seed, deterministic)


def distribution_strategy(devices: list[str] | None = None):
    """An object with .scope() and .num_replicas_in_sync: TensorFlow's MirroredStrategy over its GPUs (see
    kdbench.runtime._tensorflow); on JAX and PyTorch one device (one replica) per job."""
    return _room().distribution_strategy(devices)


def replicas_in_sync() -> int:
    """Replicas of the strategy in scope (losses come back divided by it under tf.distribute)."""
    return _room().replicas_in_sync()


def device_description() -> str:
    """Human-readable name of what the backend computes on (GPU names, else the CPU model)."""
    return _room().device_description()


def has_gpu() -> bool:
    return _room().has_gpu()


def make_dataset(x, targets, batch_size: int, shuffle: bool, seed: int = 0, views=None):
    """The training pipeline (see kdbench.train.make_dataset): tf.data on TensorFlow, else a PyDataset."""
    return _room().make_dataset(x, targets, batch_size, shuffle, seed, views)


def dataset_batch_size(dataset) -> int | None:
    """The batch size of a pipeline built by make_dataset (None where it cannot be read)."""
    size = getattr(dataset, "kdbench_batch_size", None)
    if size is not None:
        return int(size)
    if name() == "tensorflow":
        return _room().dataset_batch_size(dataset)
    return None


def matmul_peak_gflops(dtype: str = "float32", size: int = 2048, repeats: int = 5) -> float:
    """Best achieved GFLOP/s of a size x size matrix multiply: the practical peak of this device."""
    return _room().matmul_peak_gflops(dtype, size, repeats)


def versions() -> dict:
    """What a run records: Python, Keras, the backend's name and its version (under the backend's name)."""
    import platform

    import keras

    backend = name()
    module = importlib.import_module(backend)
    return {"python": platform.python_version(), "keras": keras.__version__, "backend": backend,
            backend: module.__version__}


def software_line(versions: dict) -> str:
    """'Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1' from a run's recorded versions (older records: TF)."""
    backend = versions.get("backend", "tensorflow")
    return (f"Python {versions['python']}, {LABELS.get(backend, backend)} {versions.get(backend, '?')}, "
            f"Keras {versions['keras']}")


def cpu_description() -> str:
    """The CPU's model name (from /proc/cpuinfo where it exists)."""
    import platform
    from pathlib import Path

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}"
