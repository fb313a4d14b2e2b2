import json

from conftest import run_script


def metrics_record(model, accuracy, kind, seed=0, teacher=None, alpha=None, temperature=None):
    train = {"kind": kind, "seed": seed, "params": 11_196_042, "epochs_run": 5, "train_seconds": 125.0,
             "upsample": 8, "epochs": 5, "batch_size": 32, "weights": "imagenet", "device": "CPU: test",
             "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1"}}
    if kind == "student-kd":
        train.update(teacher=teacher, alpha=alpha, temperature=temperature, soft_targets="cached")
    return {"model": model, "accuracy": accuracy, "loss": 1.0, "f1_macro": accuracy - 0.01, "train": train}


def test_summary_lists_every_model_with_seed_numbers_and_verdicts(tmp_path):
    records = [
        metrics_record("teacher-frozen", 0.80, "teacher-frozen"),
        metrics_record("student-baseline-s0", 0.60, "student-baseline"),
        metrics_record("student-kd-frozen-a0.3-t7-s0", 0.625, "student-kd", teacher="frozen", alpha=0.3,
                       temperature=7.0),
        metrics_record("student-kd-frozen-a0.5-t2-s0", 0.55, "student-kd", teacher="frozen", alpha=0.5,
                       temperature=2.0),
    ]
    paths = []
    for record in records:
        path = tmp_path / f"{record['model']}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    info = tmp_path / "data.json"
    info.write_text(json.dumps({"source": "npz", "path": "x.npz", "train_size": 10000, "test_size": 2000}))
    out = tmp_path / "summary.md"
    result = run_script("summarize.py", "--metrics", *paths, "--data-info", info, "--title", "unit", "--out", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert set(rows) >= {r["model"] for r in records}
    assert "80" in rows["teacher-frozen"] and "78.15" in rows["teacher-frozen"]
    assert "62.95" in rows["student-kd-frozen-a0.3-t7-s0"]  # the seed ran alpha 0.3, T 7
    assert "62.95" not in rows["student-kd-frozen-a0.5-t2-s0"]
    assert "2m05s" in rows["student-baseline-s0"] and "11,196,042" in rows["student-baseline-s0"]
    assert "student-kd-frozen-a0.3-t7-s0 vs student-baseline-s0: +2.50 points" in text
    assert "10,000 train / 2,000 test" in text and "256 px" in text


def test_summary_marks_synthetic_data(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(metrics_record("teacher-frozen", 0.1, "teacher-frozen")))
    info = tmp_path / "data.json"
    info.write_text(json.dumps({"source": "synthetic", "train_size": 64, "test_size": 40}))
    out = tmp_path / "summary.md"
    assert run_script("summarize.py", "--metrics", path, "--data-info", info, "--out", out).returncode == 0
    assert "NOT CIFAR-10" in out.read_text()
