"""What the machine offers: native bf16 (for the precision policy), a GPU (for XLA), its matmul peak."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from kdbench import KdbenchError

# TensorFlow and Keras are imported inside the functions: scripts/ import the choices below for --help.

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_count(timeout: float = 10.0) -> int:
    """NVIDIA GPUs a job started from here can use, without importing TensorFlow (the Snakefile calls it).

    Counts the `GPU n:` lines of `nvidia-smi -L` (0 where nvidia-smi is missing, fails or hangs), then
    applies CUDA_VISIBLE_DEVICES as CUDA does: an empty value or `-1` hides every GPU, and the list stops
    at its first entry that names no device. A GPU split into MIG instances counts as one.
    """
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return 0
    try:
        listing = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listing.returncode != 0:
        return 0
    lines = listing.stdout.splitlines()
    installed = sum(1 for line in lines if re.match(r"GPU \d+:", line))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return installed
    uuids = re.findall(r"UUID: ((?:GPU|MIG)-[0-9A-Za-z-]+)", listing.stdout)
    count = 0
    for entry in (item.strip() for item in visible.split(",")):
        if entry.isdigit() and int(entry) < installed:
            count += 1
        elif entry.startswith(("GPU-", "MIG-")) and any(uuid.startswith(entry) for uuid in uuids):
            count += 1
        else:  # CUDA ignores this entry and every one after it
            break
    return min(count, installed)


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(precision: str) -> str:
    """'auto' -> mixed_bfloat16 on a CPU with native bf16 (AVX512_BF16 or AMX), else float32."""
    if precision not in PRECISIONS:
        raise KdbenchError(f"train.precision is '{precision}'; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if not has_gpu() and cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return "mixed_bfloat16"
    return "float32"


def set_precision(precision: str) -> str:
    """Set Keras's global dtype policy before models are built; returns the policy actually used."""
    import keras

    policy = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def jit_compile_flag(value: str) -> bool | str:
    """CLI text -> model.compile(jit_compile=...); Keras's 'auto' compiles with XLA on a GPU only."""
    if value not in JIT_COMPILE:
        raise KdbenchError(f"train.jit_compile is '{value}'; use one of {', '.join(JIT_COMPILE)}")
    return JIT_COMPILE[value]


def matmul_peak_gflops(dtype: str = "float32", size: int = 2048, repeats: int = 5) -> float:
    """Best achieved GFLOP/s of a size x size matrix multiply: the practical peak of this device."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, a).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9
