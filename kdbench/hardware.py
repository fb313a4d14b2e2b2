"""What the machine offers: native bf16 (for the precision policy), a GPU (for XLA), its matmul peak."""

from __future__ import annotations

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
