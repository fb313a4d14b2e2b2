"""Killed training resumes, stops are clean, NaN losses stop the job, and runs are reproducible."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_script, run_snakemake

from kdbench import KdbenchError
from kdbench import train
from kdbench.datasets import get, make_synthetic, save_dataset

TINY = str(ROOT / "presets" / "tiny.yaml")
EPOCHS = 8  # long enough that a kill right after epoch 1 always lands mid-run


@contextlib.contextmanager
def started(command: list[str], **kwargs):
    """Popen in its own process group, which is killed whole if the test fails before the run ends."""
    process = subprocess.Popen(command, start_new_session=True, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, **kwargs)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 600) -> None:
    """Poll until `path` exists (the first finished epoch's backup); fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended (status {process.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def training_processes(workdir: Path) -> list[int]:
    """Ids of the Python processes running scripts/train_student.py in `workdir` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if (entry.name.isdigit() and len(argv) > 1 and argv[1].endswith(b"train_student.py")
                    and os.readlink(entry / "cwd") == str(workdir)):
                pids.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return pids


def assert_full_history(history_csv: Path) -> None:
    history = pd.read_csv(history_csv)
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert np.isfinite(history["loss"]).all()


@pytest.fixture
def tiny_data(tmp_path):
    path = tmp_path / "data.npz"
    save_dataset(path, make_synthetic(64, 20, seed=0), get("cifar10").class_names)
    return path


def student_args(data: Path, out: Path, epochs: int = EPOCHS, seed: int = 0) -> list:
    return ["--data", data, "--upsample", 1, "--epochs", epochs, "--batch-size", 32, "--seed", seed,
            "--resume-dir", out / "resume", "--model-out", out / "model.keras",
            "--history-out", out / "history.csv", "--info-out", out / "train.json"]


def test_sigterm_stops_cleanly_and_the_rerun_resumes(tiny_data, tmp_path):
    out = tmp_path / "run"
    args = student_args(tiny_data, out)
    command = [sys.executable, str(ROOT / "scripts" / "train_student.py"), *map(str, args)]
    with started(command, env={**os.environ, "PYTHONPATH": str(ROOT)}) as process:
        wait_for(out / "resume" / "backup" / "training_metadata.json", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=600)

    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert not (out / "model.keras").exists() and not (out / "history.csv").exists()
    assert (out / "resume" / "backup" / "latest.weights.h5").exists()

    rerun = run_script("train_student.py", *args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from the last finished epoch" in rerun.stdout
    assert f"epoch 1/{EPOCHS} started" not in rerun.stdout  # epoch 1 was not trained again
    assert_full_history(out / "history.csv")
    assert (out / "model.keras").exists() and not (out / "resume").exists()


def test_sigkill_under_snakemake_keeps_resume_state_and_rerun_finishes(tmp_path):
    longer = tmp_path / "longer.yaml"
    longer.write_text(f"train:\n  epochs: {EPOCHS}\n")
    target = "results/tiny/models/baseline-resnet18-s0/model.keras"
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", TINY, str(longer), "--cores", "1", target]
    resume = tmp_path / "results" / "tiny" / ".resume" / "baseline-resnet18-s0"
    with started(command) as process:
        wait_for(resume / "backup" / "training_metadata.json", process)
        pids = training_processes(tmp_path)
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=600)

    assert process.returncode != 0 and "Error in rule train_student" in stderr, stderr[-2000:]
    assert not (tmp_path / target).exists()  # Snakemake removed the failed job's outputs ...
    assert (resume / "backup" / "latest.weights.h5").exists()  # ... but not the undeclared resume state

    rerun = run_snakemake(tmp_path, "--configfile", TINY, longer, "--cores", "1", target)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = (tmp_path / "results" / "tiny" / "logs" / "train" / "baseline-resnet18-s0.log").read_text()
    assert "resuming from the last finished epoch" in log and f"epoch 1/{EPOCHS} started" not in log
    assert_full_history(tmp_path / "results" / "tiny" / "models" / "baseline-resnet18-s0" / "history.csv")
    assert not resume.exists()


def test_resume_state_of_a_run_with_other_flags_is_discarded(tmp_path):
    import keras

    x, y = np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32)
    resume = tmp_path / "resume"
    (resume / "backup").mkdir(parents=True)
    (resume / "run.json").write_text('{"flags": {"learning_rate": 0.1}}')
    (resume / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = train.fit_resumable(model, train.make_dataset(x, y, 4, shuffle=False), 2, resume,
                                  run_key={"flags": {"learning_rate": 0.01}}, verbose=0)
    assert history["epoch"].tolist() == [1, 2]  # epoch 1 was trained, not skipped


def test_nan_loss_stops_training_with_a_clear_error(tmp_path):
    import keras

    x = np.ones((8, 2), np.float32)
    y = np.full((8, 1), np.nan, np.float32)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(KdbenchError, match="training loss became nan at batch 0"):
        train.fit_resumable(model, train.make_dataset(x, y, 4, shuffle=False), 3, tmp_path / "resume", verbose=0)


def test_deferred_signal_arrives_after_the_block():
    events = []

    def handler(signum, frame):
        events.append("handled")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with train.deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            events.append("block finished")
        assert events == ["block finished", "handled"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_same_flags_and_seed_give_identical_training(tiny_data, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        result = run_script("train_student.py", *student_args(tiny_data, out, epochs=2), "--threads", 2)
        assert result.returncode == 0, result.stderr[-2000:]
    first, second = (pd.read_csv(out / "history.csv") for out in runs)
    pd.testing.assert_frame_equal(first.drop(columns="epoch_seconds"), second.drop(columns="epoch_seconds"))
    assert first["loss"].iloc[1] != first["loss"].iloc[0]  # it trained
    from kdbench.architectures import load_model  # registers kdbench's layers (the test alone has not imported them)

    weights = [load_model(out / "model.keras").get_weights() for out in runs]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_runtime_turns_on_op_determinism():
    code = ("from kdbench import train; from tensorflow.python.framework import config; "
            "train.configure_runtime(1, 0); print(config.is_op_determinism_enabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "True", result.stderr[-2000:]
