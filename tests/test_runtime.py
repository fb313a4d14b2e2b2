"""kdbench.runtime, the one room where a Keras backend is named: the same views, batches and determinism on
TensorFlow, JAX and PyTorch. Runs under any backend (CI runs it in .venv-jax too); the cross-backend tests
compare with every other backend whose interpreter this checkout has (a second venv: make setup BACKEND=jax)."""

import hashlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_script

from kdbench import KdbenchError, augment, runtime
from kdbench.datasets import get, make_synthetic, save_dataset

BACKEND = keras.backend.backend()

# Computes, on the backend of KERAS_BACKEND, every image's view of epochs 0 and 1 through the training pipeline
# (shuffled, batched) and through augment.epoch_views, as {"<pipeline> <epoch>": views in index order}.
VIEWS_PROGRAM = """
import json, sys
import numpy as np
from kdbench import augment, runtime, train
runtime.select(None)
import keras
x = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3)).astype("float32")
views = augment.EpochViews(7)
ds = train.make_dataset(x, {"label": np.arange(10)}, 4, shuffle=True, seed=3, views=views)
out = {}
for epoch in (0, 1):
    views.on_epoch_begin(epoch)
    seen = np.zeros_like(x)
    for images, targets in ds:
        seen[keras.ops.convert_to_numpy(targets["label"])] = keras.ops.convert_to_numpy(images)
    out[f"pipeline {epoch}"] = seen.tolist()
    out[f"epoch_views {epoch}"] = np.concatenate([np.asarray(b) for b in augment.epoch_views(x, 7, epoch, 3)]).tolist()
json.dump({"backend": runtime.name(), "views": out}, sys.stdout)
"""


def _interpreters() -> dict[str, str]:
    """backend -> a Python that has it: this one where it imports the backend, else the checkout's venvs."""
    found = {}
    for backend in runtime.BACKENDS:
        venv = ROOT / (".venv" if backend == "tensorflow" else f".venv-{backend}") / "bin" / "python"
        probe = subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True)
        if probe.returncode == 0:
            found[backend] = sys.executable
        elif venv.exists():
            found[backend] = str(venv)
    return found


def _views_on(backend: str, python: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([python, "-c", VIEWS_PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["backend"] == backend
    return {key: np.asarray(value, np.float32) for key, value in record["views"].items()}


def test_the_views_are_a_numpy_function_of_seed_epoch_and_index():
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype("float32")
    params = augment.view_params(7, 1, np.arange(6))
    np.testing.assert_array_equal(augment.view_params(7, 1, [4, 2]), params[[4, 2]])  # each image on its own
    assert params[:, :2].min() >= 0 and params[:, :2].max() <= 2 * augment.PAD and set(params[:, 2]) <= {0, 1}
    many = augment.view_params(0, 0, np.arange(20000))
    for column, values in ((0, 9), (1, 9), (2, 2)):  # every shift and both flips, about equally often
        counts = np.bincount(many[:, column], minlength=values)
        assert len(counts) == values and counts.min() > 0.9 * len(many) / values
    dy, dx, flip = params[0]
    padded = np.pad(x[0], [(4, 4), (4, 4), (0, 0)])
    expected = padded[dy:dy + 32, dx:dx + 32][:, ::-1 if flip else 1]
    np.testing.assert_array_equal(augment.view(x[0], 7, 1, 0), expected)
    # pinned: cached teacher logits stay paired with these views (a change needs augment.VERSION raised)
    assert hashlib.sha256(augment.view_params(7, 3, np.arange(64)).tobytes()).hexdigest()[:16] == PINNED_PARAMS
    with pytest.raises(KdbenchError, match="non-negative"):
        augment.view_params(-1, 0, [0])


PINNED_PARAMS = "bdc83f5b8db41aa1"


def test_views_are_bit_identical_on_every_backend_at_hand():
    interpreters = _interpreters()
    others = sorted(set(interpreters) - {BACKEND})
    if not others:
        pytest.skip(f"only {BACKEND} here: make setup BACKEND=jax adds a second backend to compare with")
    mine = _views_on(BACKEND, interpreters.get(BACKEND, sys.executable))
    x = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3)).astype("float32")
    for epoch in (0, 1):  # the pipeline delivers exactly augment's views, in any shuffle order
        np.testing.assert_array_equal(mine[f"pipeline {epoch}"], augment.views(x, 7, epoch, np.arange(10)))
        np.testing.assert_array_equal(mine[f"epoch_views {epoch}"], mine[f"pipeline {epoch}"])
    assert not np.array_equal(mine["pipeline 0"], mine["pipeline 1"])
    for backend in others:
        theirs = _views_on(backend, interpreters[backend])
        for key, views in mine.items():
            np.testing.assert_array_equal(theirs[key], views, err_msg=f"{key}: {BACKEND} vs {backend}")


def test_the_numpy_pipeline_shuffles_per_epoch_and_keeps_every_image():
    from kdbench.runtime._arrays import ArrayBatches

    x = np.arange(10, dtype="float32").reshape(10, 1, 1, 1) * np.ones((1, 32, 32, 3), "float32")
    ds = ArrayBatches(x, {"label": np.arange(10)}, 4, shuffle=True, seed=1)
    orders = []
    for epoch in (0, 1, 0):
        ds.set_epoch(epoch)
        batches = [ds[i] for i in range(len(ds))]
        assert [len(b[1]["label"]) for b in batches] == [4, 4, 2]
        order = np.concatenate([b[1]["label"] for b in batches])
        np.testing.assert_array_equal(np.concatenate([b[0][:, 0, 0, 0] for b in batches]), order)
        orders.append(order)
    assert sorted(orders[0]) == list(range(10)) and not np.array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(orders[0], orders[2])  # the order is a function of (seed, epoch)
    assert runtime.dataset_batch_size(ds) == 4
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_backend_choice_is_checked_before_keras_starts():
    assert runtime.select(None) == BACKEND  # keras is loaded: the same backend is fine
    other = next(b for b in runtime.BACKENDS if b != BACKEND)
    with pytest.raises(KdbenchError, match="before importing keras"):
        runtime.select(other)
    with pytest.raises(KdbenchError, match="not one of tensorflow, jax, torch"):
        runtime.select("numpy")
    assert runtime.software_line({"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1"}) == (
        "Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1")  # records from before the backend was recorded
    assert runtime.software_line(runtime.versions()).startswith(f"Python 3.") and runtime.LABELS[BACKEND] in (
        runtime.software_line(runtime.versions()))


def test_a_missing_backend_says_how_to_install_it():
    program = ("import importlib.util, sys; from kdbench import runtime, KdbenchError\n"
               "missing = [b for b in runtime.BACKENDS if importlib.util.find_spec(b) is None]\n"
               "if not missing: print('none missing'); sys.exit(0)\n"
               "try:\n    runtime.select(missing[0])\nexcept KdbenchError as err:\n    print(err)\n")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | {"PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True).stdout
    assert out.strip() == "none missing" or "pip install -e '.[" in out and "make setup BACKEND=" in out, out


def _tiny_data(tmp_path):
    data = tmp_path / "data.npz"
    save_dataset(data, make_synthetic(24, 8, seed=0), get("cifar10").class_names)
    return data


def _train(tmp_path, name, data, *extra):
    out = tmp_path / name
    out.mkdir()
    result = run_script("train_student.py", "--architecture", "resnet8", "--data", data, "--epochs", "2",
                        "--batch-size", "8", "--seed", "3", "--precision", "float32", "--augment",
                        "--resume-dir", out / "resume", "--model-out", out / "model.keras",
                        "--history-out", out / "history.csv", "--info-out", out / "train.json", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "train.json").read_text()), pd.read_csv(out / "history.csv")


def test_same_config_and_seed_give_the_same_numbers_and_paired_starts(tmp_path):
    """On this backend: two runs of one config and seed train identically, and a distilled student starts from
    the baseline's weights (the digest); train.json names the backend."""
    data = _tiny_data(tmp_path)
    first, first_history = _train(tmp_path, "a", data)
    second, second_history = _train(tmp_path, "b", data)
    assert first["backend"] == BACKEND and first["versions"]["backend"] == BACKEND
    np.testing.assert_array_equal(first_history.drop(columns="epoch_seconds"),  # every number but wall time
                                  second_history.drop(columns="epoch_seconds"))
    logits = tmp_path / "logits.npy"
    np.save(logits, np.random.default_rng(0).normal(size=(2, 24, 10)).astype("float32"))
    distilled, _ = _train(tmp_path, "kd", data, "--method", "kd", "--teacher-logits", logits)
    assert distilled["initial_weights_sha256"] == first["initial_weights_sha256"] == second["initial_weights_sha256"]


def test_a_summary_never_mixes_backends():
    """The summary refuses a run trained on another backend than the config's (records from before the backend
    was recorded ran on TensorFlow), and names the backend in its software line."""
    from test_report import DATA, RECORDS, RUNS, summary

    from kdbench import report

    expected = {"dataset": "cifar10", "train_size": 10000, "val_size": 2000, "test_size": 2000, "epochs": 5,
                "batch_size": 32, "precision": "auto"}
    assert report.mismatches(RUNS, RECORDS, DATA, expected) == []  # no backend recorded: TensorFlow
    on_jax = {run_id: {**r, "train": {**r["train"], "backend": "jax"}} for run_id, r in RECORDS.items()}
    assert report.mismatches(RUNS, on_jax, DATA, {**expected, "backend": "jax"}) == []
    mixed = {**RECORDS, "kd-a-s1": on_jax["kd-a-s1"]}
    assert report.mismatches(RUNS, mixed, DATA, expected) == [
        "kd-a-s1 was trained with backend 'jax', the config asks for 'tensorflow'"]
    assert report.mismatches(RUNS, RECORDS, DATA, {**expected, "backend": "jax"})[0] == (
        "teacher-frozen was trained with backend 'tensorflow', the config asks for 'jax'")
    versions = {"python": "3.11.7", "keras": "3.15.1", "backend": "jax", "jax": "0.10.2"}
    jax_records = {run_id: {**r, "train": {**r["train"], "versions": versions}} for run_id, r in RECORDS.items()}
    assert "- software: Python 3.11.7, JAX 0.10.2, Keras 3.15.1" in summary(jax_records)[0]
