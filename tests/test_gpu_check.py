"""benchmarks/gpu_check.py: its table from a run's files, the wheels it carries, and its dry path on the CPU."""

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


BENCHMARK = "s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100.0\n"


def fake_results(results):
    """A finished run's files: a student trained 3 epochs (the first slow: compilation), a frozen teacher on
    cached features, and their evaluations."""
    write(results / "data" / "dataset.json", json.dumps({"train_size": 1000, "val_size": 200}))
    write(results / "benchmarks" / "fetch_data.tsv", BENCHMARK.format(seconds=2.5))
    write(results / "benchmarks" / "train" / "student.tsv", BENCHMARK.format(seconds=40.0))
    write(results / "models" / "student" / "history.csv", "epoch,epoch_seconds\n1,20.0\n2,4.0\n3,6.0\n")
    write(results / "models" / "student" / "train.json", json.dumps({"precision": "mixed_bfloat16"}))
    write(results / "benchmarks" / "evaluate" / "student.tsv", BENCHMARK.format(seconds=7.0))
    write(results / "eval" / "student" / "metrics.json",
          json.dumps({"test": {"accuracy": 0.4567}, "cost": {"flops_per_image": 2e9}}))
    write(results / "benchmarks" / "train" / "teacher.tsv", BENCHMARK.format(seconds=30.0))
    write(results / "models" / "teacher" / "history.csv", "epoch,epoch_seconds\n1,1.0\n")
    write(results / "models" / "teacher" / "train.json", json.dumps({"cache_features": True, "feature_seconds": 8.0}))
    write(results / "eval" / "teacher" / "metrics.json",
          json.dumps({"test": {"accuracy": 0.5}, "cost": {"flops_per_image": 8e9}}))


def test_the_table_gives_each_jobs_time_speed_share_of_peak_memory_and_accuracy(tmp_path):
    fake_results(tmp_path)
    rows = {row["job"]: row for row in gpu_check.job_rows(tmp_path, {("train", "student"): 1234}, peak_tflops=100)}
    student = rows["train student"]
    assert student["wall_s"] == 40.0 and student["gpu_mib"] == 1234
    assert student["images_per_s"] == 1000 / 5.0  # the median epoch after the first (compilation)
    assert student["tflops"] == pytest.approx(3 * 2e9 * 1000 / 5.0 / 1e12)  # forward + backward: 3 passes
    assert student["peak_share"] == pytest.approx(student["tflops"] / 100)
    teacher = rows["train teacher"]  # cached features: one forward pass per train and val image, the head aside
    assert teacher["images_per_s"] == 1200 / 8.0 and teacher["tflops"] == pytest.approx(8e9 * 1200 / 8.0 / 1e12)
    assert rows["evaluate student"]["test_accuracy"] == 0.4567 and rows["fetch_data"]["wall_s"] == 2.5
    run = {"label": "(b) quick", "rows": list(rows.values()), "stopped": True, "unfinished": 2, "returncode": -15,
           "seconds": 91.26, "gpu_total_mib": 5000}
    text = gpu_check.table([run], peak_tflops=100)
    assert "| (b) quick | train student | 40.0 | 200 | 1.2 | 1.2 | 1234 |  |" in text
    assert "| 45.67 |" in text and "stopped at its limit, 2 jobs unfinished" in text and "**91.3**" in text
    assert "5000 MiB in all" in text and "the peak is 100 TFLOP/s" in text


def test_gpu_memory_is_attributed_to_jobs_by_their_output_paths():
    commands = {
        "train": "python scripts/train_student.py --data d.npz --model-out results/gpu-quick/models/kd-s0/model.keras",
        "evaluate": "python scripts/evaluate.py --metrics-out results/gpu-quick/eval/kd-s0/metrics.json --name x",
        "teacher_logits": "python scripts/teacher_logits.py --out results/gpu-quick/logits/teacher-frozen.npy",
    }
    for kind, pattern in gpu_check.GpuMemory.PATTERNS:
        match = pattern.search(commands[kind])
        assert match and match.group(1) == ("teacher-frozen" if kind == "teacher_logits" else "kd-s0")


def test_gpu_memory_is_read_from_nvidia_smi_per_job_process(tmp_path, monkeypatch):
    job = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "--model-out",
                            "results/gpu-quick/models/kd-s0/model.keras"], stdin=subprocess.PIPE)
    try:  # an nvidia-smi that shows 7000 MiB in use, 2500 of them by that job and 99 by a process since gone
        script = tmp_path / "nvidia-smi"
        script.write_text(f"""#!/bin/sh
case "$1" in --query-gpu=*) echo 7000 ;; *) echo "{job.pid}, 2500"; echo "999999999, 99" ;; esac
""")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
        memory = gpu_check.GpuMemory()
        memory.sample()
        assert memory.available and memory.peaks == {("train", "kd-s0"): 2500} and memory.total_peak == 7000
    finally:
        job.communicate(b"")


def test_the_wheels_are_what_the_gpu_image_lacks():
    needed = gpu_check.needed_packages()
    assert {"keras", "snakemake", "optree", "namex", "snakemake-interface-common"} <= set(needed)
    assert not set(needed) & (gpu_check.ON_GPU_IMAGE | {"pulp"})  # numpy, jax... are there; PuLP is not needed
    assert needed["keras"] == importlib.metadata.version("keras")


def run_check(tmp_path, *args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--no-install",
                           "--cores", "2", "--folder", str(tmp_path / "carried"), "--workdir", str(tmp_path / "work"),
                           *args], capture_output=True, text=True, timeout=900)


def test_the_dry_path_runs_the_workflow_on_real_format_data_and_prints_the_table(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)  # an .npz as the real slice is laid out (uint8 images, official keys)
    np.savez(tmp_path / "slice.npz", x_train=rng.integers(0, 256, (120, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(120) % 10, x_test=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(40) % 10)
    backend = "jax" if importlib.util.find_spec("jax") and not importlib.util.find_spec("tensorflow") else "tensorflow"
    result = run_check(tmp_path, "--only", "b", "--limit-b", "850", "--backend", backend,
                       "--data", str(tmp_path / "slice.npz"), "--out", str(tmp_path / "out" / "table.md"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = (tmp_path / "out" / "table.md").read_text()
    assert "| (b) quick | train baseline-resnet18-s0 |" in text and "**all (finished)**" in text
    assert "npz sha256" in (tmp_path / "work" / "results" / "gpu-check-b" / "data" / "dataset.json").read_text()
    assert (tmp_path / "out" / "table-logs.tar.gz").stat().st_size > 0  # the jobs' logs, for a machine given back
    figures = json.loads((tmp_path / "out" / "table.json").read_text())
    accuracy = next(row["test_accuracy"] for row in figures[0]["rows"] if row["job"].startswith("evaluate"))
    assert 0 <= accuracy <= 1


def test_a_run_past_its_limit_is_stopped_and_says_so(tmp_path):
    result = run_check(tmp_path, "--only", "a", "--limit-a", "3")
    assert result.returncode == 1
    assert "stopped at its limit" in result.stdout and "jobs unfinished" in result.stdout
