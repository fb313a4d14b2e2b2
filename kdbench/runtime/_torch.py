"""The PyTorch room: NumPy/PyDataset input, threads, deterministic algorithms, one device per job."""

from __future__ import annotations

import os

import keras
import torch

from kdbench.runtime import cpu_description
from kdbench.runtime._arrays import distribution_strategy, make_dataset  # noqa: F401  (this room's functions)


def configure(threads: int, seed: int, deterministic: bool) -> None:
    torch.set_num_threads(threads)
    keras.utils.set_random_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode needs it
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    share = os.environ.get("KDBENCH_TORCH_MEMORY_FRACTION")  # several jobs share this GPU (hardware.gpu_sharing_env)
    if share and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(float(share))


def replicas_in_sync() -> int:
    return 1


def device_description() -> str:
    if torch.cuda.is_available():
        return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return cpu_description()


def has_gpu() -> bool:
    return torch.cuda.is_available()


def matmul_peak_gflops(dtype: str, size: int, repeats: int) -> float:
    from kdbench.runtime._arrays import timed_peak

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(size, size, device=device).to(getattr(torch, dtype))
    sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else (lambda out: None)
    return timed_peak(torch.matmul, a, size, repeats, sync)
