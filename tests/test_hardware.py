import os
import stat

import keras
import numpy as np
import pytest

from kdbench import KdbenchError, architectures, hardware


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("flags, gpu, expected", [
    ({"avx512f", "avx512_bf16"}, False, "mixed_bfloat16"),
    ({"amx_bf16"}, False, "mixed_bfloat16"),
    ({"avx512f", "avx2"}, False, "float32"),  # bf16 would be emulated: slower
    ({"avx512_bf16"}, True, "float32"),  # on a GPU the CPU's flags do not matter
])
def test_auto_precision_uses_bfloat16_only_on_a_cpu_with_native_bf16(monkeypatch, flags, gpu, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "has_gpu", lambda: gpu)
    assert hardware.resolve_precision("auto") == expected
    assert hardware.resolve_precision("mixed_float16") == "mixed_float16"  # explicit choices are kept


def test_unknown_precision_is_refused():
    with pytest.raises(KdbenchError, match="mixed_bfloat16"):
        hardware.resolve_precision("bfloat16")


def test_mixed_precision_computes_in_bfloat16_and_returns_float32_logits(restore_policy):
    assert hardware.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    for model in (architectures.build("resnet18", 10, 1),
                  architectures.build("resnet50", 10, 1, weights=None, train_backbone=False)):
        x = np.zeros((2, 32, 32, 3), "float32")
        assert model(x).dtype == "float32"
    assert architectures.build("resnet18", 10, 1).get_layer("stem_conv").compute_dtype == "bfloat16"


def test_jit_compile_flag_maps_cli_text_to_keras_values():
    assert hardware.jit_compile_flag("auto") == "auto"
    assert hardware.jit_compile_flag("true") is True and hardware.jit_compile_flag("false") is False


TWO_GPUS = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1a2b3c4d-0000-1111-2222-333344445555)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-9f8e7d6c-0000-1111-2222-333344445555)
"""
ONE_MIG_GPU = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa0000-0000-1111-2222-333344445555)
  MIG 3g.20gb     Device  0: (UUID: MIG-bbbb0000-0000-1111-2222-333344445555)
  MIG 3g.20gb     Device  1: (UUID: MIG-cccc0000-0000-1111-2222-333344445555)
"""


def fake_nvidia_smi(monkeypatch, tmp_path, listing="", status=0):
    """Put an `nvidia-smi` that prints `listing` and exits with `status` first on PATH."""
    script = tmp_path / "nvidia-smi"
    (tmp_path / "listing.txt").write_text(listing)
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'listing.txt'}\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_gpu_count_counts_the_gpus_nvidia_smi_lists(monkeypatch, tmp_path):
    fake_nvidia_smi(monkeypatch, tmp_path, TWO_GPUS)
    assert hardware.gpu_count() == 2
    fake_nvidia_smi(monkeypatch, tmp_path, ONE_MIG_GPU)
    assert hardware.gpu_count() == 1  # MIG instances are not extra GPUs


@pytest.mark.parametrize("visible, expected", [
    ("0", 1), ("1,0", 2), ("", 0), ("-1", 0), ("0,-1,1", 1),  # CUDA stops at the first invalid entry
    ("0,5", 1), ("GPU-9f8e", 1), ("GPU-9f8e,GPU-1a2b", 2), ("GPU-ffff", 0),
])
def test_gpu_count_honours_cuda_visible_devices(monkeypatch, tmp_path, visible, expected):
    fake_nvidia_smi(monkeypatch, tmp_path, TWO_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert hardware.gpu_count() == expected


def test_gpu_count_is_zero_without_a_working_nvidia_smi(monkeypatch, tmp_path):
    fake_nvidia_smi(monkeypatch, tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the "
                    "NVIDIA driver.\n", status=9)
    assert hardware.gpu_count() == 0
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi at all
    assert hardware.gpu_count() == 0


def test_gpu_count_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys; from kdbench import hardware; hardware.gpu_count(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(__import__("conftest").ROOT)})
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_gpu_count_gives_up_on_a_hanging_nvidia_smi(monkeypatch, tmp_path):
    fake_nvidia_smi(monkeypatch, tmp_path)
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nexec sleep 30\n")
    assert hardware.gpu_count(timeout=0.5) == 0


CLAIM = """
import sys, time
from kdbench import hardware
try:
    print(hardware.claim_gpus(int(sys.argv[1]), sys.argv[2], wait_seconds=float(sys.argv[3]),
                              jobs_per_gpu=int(sys.argv[5])), flush=True)
except Exception as err:
    print("error:", err, flush=True)
    sys.exit(2)
time.sleep(float(sys.argv[4]))
"""


def test_concurrent_jobs_each_get_a_gpu_of_their_own(monkeypatch, tmp_path):
    import subprocess
    import sys

    fake_nvidia_smi(monkeypatch, tmp_path, TWO_GPUS)
    env = {**os.environ, "PYTHONPATH": str(__import__("conftest").ROOT)}
    locks = str(tmp_path / "locks")

    def start(count, wait, hold):
        return subprocess.Popen([sys.executable, "-c", CLAIM, str(count), locks, str(wait), str(hold), "1"],
                                stdout=subprocess.PIPE, text=True, env=env)
    first = start(1, 5, 30)
    assert first.stdout.readline().strip() == "['0']"
    second = start(1, 5, 0)
    assert second.communicate(timeout=30)[0].strip() == "['1']"  # the other GPU, while the first holds GPU 0
    third = start(2, 0.5, 0)  # both GPUs: one is held by the first job
    out, _ = third.communicate(timeout=30)
    assert third.returncode == 2 and "no free GPU among 0, 1" in out
    first.kill()  # even SIGKILL releases its lock
    first.wait()
    assert start(2, 5, 0).communicate(timeout=30)[0].strip() == "['0', '1']"


def test_jobs_share_a_gpu_up_to_its_slots_and_fill_every_gpu_first(monkeypatch, tmp_path):
    import subprocess
    import sys

    fake_nvidia_smi(monkeypatch, tmp_path, TWO_GPUS)
    env = {**os.environ, "PYTHONPATH": str(__import__("conftest").ROOT)}
    locks = str(tmp_path / "locks")

    def start(wait, hold):  # a one-GPU job on a machine whose GPUs take 2 jobs each
        return subprocess.Popen([sys.executable, "-c", CLAIM, "1", locks, str(wait), str(hold), "2"],
                                stdout=subprocess.PIPE, text=True, env=env)
    holders = [start(5, 30) for _ in range(4)]
    try:
        claimed = sorted(holder.stdout.readline().strip() for holder in holders)
        assert claimed == ["['0']", "['0']", "['1']", "['1']"]  # two jobs on each GPU, no more
        fifth = start(0.5, 0)
        out, _ = fifth.communicate(timeout=30)
        assert fifth.returncode == 2 and "no free GPU among 0, 1" in out
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_local_gpu_jobs_count_slots_and_share_memory_unless_the_user_chose():
    jobs, env = hardware.local_gpu_jobs(2, 1, "jax", environ={})
    assert jobs == 2 and env == {hardware.GPU_LOCKS_ENV: "1", hardware.GPU_SLOTS_ENV: "1"}  # defaults kept
    jobs, env = hardware.local_gpu_jobs(2, 3, "jax", environ={})
    assert jobs == 6 and env[hardware.GPU_SLOTS_ENV] == "3"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.300" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
    _, env = hardware.local_gpu_jobs(1, 3, "jax", environ={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in env and "XLA_PYTHON_CLIENT_MEM_FRACTION" in env
    assert hardware.local_gpu_jobs(1, 4, "tensorflow", environ={})[1]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert hardware.local_gpu_jobs(1, 4, "torch", environ={})[1]["KDBENCH_TORCH_MEMORY_FRACTION"] == "0.225"


def test_gpus_are_claimed_only_when_the_workflow_asks(monkeypatch, tmp_path):
    fake_nvidia_smi(monkeypatch, tmp_path, TWO_GPUS)
    monkeypatch.delenv(hardware.GPU_LOCKS_ENV, raising=False)
    assert hardware.claim_gpus_if_asked() == [] and "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # a job that SLURM (or the user) gave GPU 1
    assert hardware.visible_gpus() == ["1"]
    fake_nvidia_smi(monkeypatch, tmp_path, "")  # no GPUs: nothing to claim, whatever is asked
    monkeypatch.setenv(hardware.GPU_LOCKS_ENV, "1")
    assert hardware.claim_gpus_if_asked() == []


NO_TENSORFLOW = """
import sys


class NoTensorFlow:  # as on a machine without TensorFlow: importing it fails
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError("No module named 'tensorflow'")


sys.meta_path.insert(0, NoTensorFlow())
from kdbench import hardware

hardware.gpu_count(), hardware.visible_gpus(), hardware.claim_gpus_if_asked()
print(hardware.resolve_precision("float32"), hardware.jit_compile_flag("auto"))
"""


def run_without_tensorflow(code, python=None, **env):
    import subprocess
    import sys

    return subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(__import__("conftest").ROOT), **env})


def jax_python() -> str:
    """A Python with JAX: this one, else the checkout's JAX venv (make setup BACKEND=jax; CI builds it first)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("jax") is not None:
        return sys.executable
    venv = __import__("conftest").ROOT / ".venv-jax" / "bin" / "python"
    if not venv.exists():
        pytest.skip("JAX is not installed here and there is no .venv-jax (make setup BACKEND=jax)")
    return str(venv)


def test_gpu_listing_locks_and_flags_work_without_tensorflow():
    result = run_without_tensorflow(NO_TENSORFLOW, KDBENCH_GPU_LOCKS="")
    assert result.returncode == 0 and result.stdout.split() == ["float32", "auto"], result.stderr[-2000:]


def test_auto_precision_on_jax_needs_no_tensorflow():
    code = NO_TENSORFLOW + "print(hardware.has_gpu(), hardware.resolve_precision('auto'))\n"
    result = run_without_tensorflow(code, jax_python(), KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[2] == "False" and result.stdout.split()[3] in ("float32", "mixed_bfloat16")


def test_the_backends_gpu_and_matmul_peak_are_asked_of_kdbench_runtime(monkeypatch):
    from kdbench import runtime

    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    monkeypatch.setattr(runtime, "matmul_peak_gflops", lambda dtype, size, repeats: (dtype, size, repeats))
    assert hardware.has_gpu() is True
    assert hardware.matmul_peak_gflops("bfloat16", 64, 2) == ("bfloat16", 64, 2)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512_bf16"})
    assert hardware.resolve_precision("auto") == "float32"  # a GPU: the CPU's bf16 does not matter


def test_matmul_peak_is_measured_on_this_backend():
    assert hardware.matmul_peak_gflops("float32", size=64, repeats=2) > 0
