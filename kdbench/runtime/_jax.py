"""The JAX room: NumPy/PyDataset input, seeding, one device per job, device listing."""

from __future__ import annotations

import jax
import keras

from kdbench.runtime import cpu_description
from kdbench.runtime._arrays import distribution_strategy, make_dataset  # noqa: F401  (this room's functions)


def configure(threads: int, seed: int, deterministic: bool) -> None:
    # XLA's CPU thread pool is fixed when JAX starts and has no per-job setting: a JAX job uses the cores it
    # sees. XLA's CPU ops are deterministic; on a GPU, select() asks for --xla_gpu_deterministic_ops.
    keras.utils.set_random_seed(seed)


def replicas_in_sync() -> int:
    return 1


def _gpus():
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend
        return []


def device_description() -> str:
    gpus = _gpus()
    return ", ".join(device.device_kind for device in gpus) if gpus else cpu_description()


def has_gpu() -> bool:
    return bool(_gpus())


def matmul_peak_gflops(dtype: str, size: int, repeats: int) -> float:
    from kdbench.runtime._arrays import timed_peak

    a = jax.random.normal(jax.random.PRNGKey(0), (size, size)).astype(dtype)
    return timed_peak(jax.jit(jax.numpy.matmul), a, size, repeats, lambda out: out.block_until_ready())
