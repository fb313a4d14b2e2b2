import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, run_script

SCRIPTS = ["fetch_data.py", "train_teacher.py", "teacher_logits.py", "train_student.py", "evaluate.py",
           "summarize.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help(script):
    result = run_script(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


def test_fetch_data_from_official_archive(official_archive, tmp_path):
    path, expected = official_archive
    out, info = tmp_path / "d.npz", tmp_path / "d.json"
    result = run_script("fetch_data.py", "--source", "archive", "--path", path, "--train-size", 12,
                        "--test-size", 5, "--no-verify-checksum", "--out", out, "--info-out", info)
    assert result.returncode == 0, result.stderr
    with np.load(out) as arrays:
        np.testing.assert_array_equal(arrays["x_train"], expected["x_train"][:12])
        np.testing.assert_array_equal(arrays["y_test"], expected["y_test"][:5])
    assert json.loads(info.read_text())["source"] == "archive"


def test_fetch_data_error_is_one_clear_line(official_archive, tmp_path):
    path, _ = official_archive
    out = tmp_path / "d.npz"
    result = run_script("fetch_data.py", "--source", "archive", "--path", path, "--train-size", 10,
                        "--test-size", 5, "--out", out, "--info-out", tmp_path / "d.json")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "sha256" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_augmented_student_refuses_teacher_logits_of_unaugmented_images(tmp_path):
    from kdbench.datasets import get, make_synthetic, save_dataset

    save_dataset(tmp_path / "d.npz", make_synthetic(8, 4, val_size=4), get("cifar10").class_names)
    np.save(tmp_path / "t.npy", np.zeros((8, 10), np.float32))  # one row per image: no per-epoch views
    result = run_script("train_student.py", "--teacher-logits", tmp_path / "t.npy", "--augment", "--method", "kd",
                        "--data", tmp_path / "d.npz", "--epochs", 2, "--resume-dir", tmp_path / "r",
                        "--model-out", tmp_path / "m.keras", "--history-out", tmp_path / "h.csv",
                        "--info-out", tmp_path / "i.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ") and "unaugmented images" in result.stderr
    assert "--augment --epochs 2" in result.stderr and "--teacher-model" in result.stderr


@pytest.mark.parametrize("script, says", [("speed.py", "seed's way"), ("precision.py", "mixed_bfloat16"),
                                          ("augment_cost.py", "cached once on every epoch's views"),
                                          ("method_cost.py", "every distillation method")])
def test_benchmarks_have_help(script, says):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and says in result.stdout
