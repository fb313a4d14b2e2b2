"""What the machine offers: native bf16 (for the precision policy), its GPUs (counted and locked per job), a
GPU for the backend, its matmul peak.

Nothing here needs TensorFlow: GPUs are counted with nvidia-smi and locked with flock, and what the backend
sees (has_gpu, matmul_peak_gflops) is asked of kdbench.runtime, the one module that names a backend.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kdbench import KdbenchError

# Keras and the backend are imported inside the functions: scripts/ import the choices below for --help, and the
# Snakefile counts GPUs before any job has chosen a backend.

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
    """NVIDIA GPUs a job started from here can use, without importing a backend (the Snakefile calls it).

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


def visible_gpus(timeout: float = 10.0) -> list[str]:
    """The GPUs a job may use, as CUDA_VISIBLE_DEVICES names them (indices, or the entries given there)."""
    count = gpu_count(timeout)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(i) for i in range(count)]
    return [entry.strip() for entry in visible.split(",")][:count]


GPU_LOCKS_ENV = "KDBENCH_GPU_LOCKS"  # set by the workflow for local runs on a machine with GPUs
GPU_SLOTS_ENV = "KDBENCH_GPU_SLOTS"  # how many jobs may share one GPU (the config's gpu_jobs_per_device)
_held_locks: list = []  # open lock files: the kernel releases them when this process ends, however it ends


def claim_gpus(count: int = 1, lock_dir: str | Path | None = None, wait_seconds: float = 60.0,
               jobs_per_gpu: int = 1) -> list[str]:
    """Pin this process to `count` GPUs that no other job on this machine holds: sets CUDA_VISIBLE_DEVICES.

    Snakemake limits how many GPU jobs run at once but does not say which GPU each may use, and
    TensorFlow and JAX take every GPU they see. Each job therefore takes an exclusive lock (flock, released by
    the kernel when the process ends, even on SIGKILL) on a file per GPU in `lock_dir` (machine-local:
    the system's temporary folder) and hides the other GPUs. Each GPU has `jobs_per_gpu` such slots; jobs fill
    every GPU's first slot before any second one. Call it before the backend touches a GPU.
    Waits up to `wait_seconds` for a GPU to come free (another workflow on the same machine may hold them).
    """
    gpus = visible_gpus()
    if not gpus:
        return []
    if count > len(gpus):
        raise KdbenchError(f"this job asks for {count} GPUs but this machine shows {len(gpus)}; lower the "
                           "rule's gpu resource")
    folder = Path(lock_dir or Path(tempfile.gettempdir()) / f"kdbench-gpu-locks-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        taken = {}
        # slot by slot: every GPU's first slot is tried before any GPU's second
        for slot, gpu in itertools.product(range(max(1, jobs_per_gpu)), gpus):
            if gpu in taken:
                continue
            name = re.sub(r"[^A-Za-z0-9_-]", "_", gpu) + (f".{slot}" if slot else "")
            handle = open(folder / f"gpu-{name}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            taken[gpu] = handle
            if len(taken) == count:
                break
        if len(taken) == count:
            _held_locks.extend(taken.values())
            claimed = sorted(taken, key=gpus.index)
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
            return claimed
        for handle in taken.values():
            handle.close()
        if time.monotonic() >= deadline:
            raise KdbenchError(f"no free GPU among {', '.join(gpus)} after {wait_seconds:.0f} s: other jobs hold "
                               f"them (locks in {folder}); run fewer GPU jobs at once (--resources gpu=K)")
        time.sleep(0.5)


def claim_gpus_if_asked() -> list[str]:
    """claim_gpus() when the workflow asked for it (local runs with GPUs set KDBENCH_GPU_LOCKS), else nothing.

    The variable's value is the number of GPUs this job may take (the rule's gpu resource); KDBENCH_GPU_SLOTS
    how many jobs may share each GPU.
    """
    wanted = os.environ.get(GPU_LOCKS_ENV, "")
    if not wanted or wanted == "0":
        return []
    return claim_gpus(_positive(wanted), jobs_per_gpu=_positive(os.environ.get(GPU_SLOTS_ENV, "")))


def _positive(text: str) -> int:
    try:
        return max(1, int(text))
    except ValueError:
        return 1


def gpu_sharing_env(backend: str, jobs_per_gpu: int) -> dict[str, str]:
    """Environment that lets `jobs_per_gpu` jobs share one GPU's memory, set before the backend starts.

    TensorFlow and JAX take most of a GPU's memory at start by default (PyTorch's caching allocator grows on
    demand). One job per GPU keeps those defaults. Several: TensorFlow grows its memory as needed; JAX
    preallocates its share, 0.9 / jobs (a share, not growth: XLA's allocator fragments less than growing);
    PyTorch is capped at the same share in kdbench.runtime's configure() (PYTORCH_CUDA_ALLOC_CONF cannot cap it).
    """
    if jobs_per_gpu <= 1:
        return {}
    share = f"{0.9 / jobs_per_gpu:.3f}"
    if backend == "tensorflow":
        return {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if backend == "jax":
        return {"XLA_PYTHON_CLIENT_PREALLOCATE": "true", "XLA_PYTHON_CLIENT_MEM_FRACTION": share}
    return {"KDBENCH_TORCH_MEMORY_FRACTION": share}


def local_gpu_jobs(gpus: int, jobs_per_gpu: int, backend: str, environ=os.environ) -> tuple[int, dict[str, str]]:
    """A local run on `gpus` GPUs: how many GPU jobs may run at once, and the environment each job gets.

    Each job locks a GPU slot of its own (claim_gpus_if_asked); with several jobs per GPU their memory is
    shared (gpu_sharing_env), except for a variable the user has set already, which wins.
    """
    env = {GPU_LOCKS_ENV: "1", GPU_SLOTS_ENV: str(jobs_per_gpu)}
    env.update({name: value for name, value in gpu_sharing_env(backend, jobs_per_gpu).items() if name not in environ})
    return gpus * jobs_per_gpu, env


def has_gpu() -> bool:
    """Whether the backend Keras runs on (TensorFlow, JAX or PyTorch) computes on a GPU."""
    from kdbench import runtime

    return runtime.has_gpu()


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
    """Best achieved GFLOP/s of a size x size matrix multiply on the backend's device: its practical peak."""
    from kdbench import runtime

    return runtime.matmul_peak_gflops(dtype, size, repeats)
