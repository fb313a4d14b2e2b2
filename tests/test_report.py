import json

import numpy as np
import pandas as pd
from conftest import run_script

from kdbench import report


def record(model, test, val, kind, seed=0, teacher=None, alpha=None, temperature=None):
    train = {"kind": kind, "seed": seed, "params": 11_196_042, "epochs_run": 5, "train_seconds": 125.0,
             "upsample": 8, "epochs": 5, "batch_size": 32, "weights": "imagenet", "device": "CPU: test",
             "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1"}}
    if kind == "student-kd":
        train.update(teacher=teacher, alpha=alpha, temperature=temperature, soft_targets="cached")
    return {"model": model, "train": train,
            "test": {"accuracy": test, "loss": 1.0, "f1_macro": test - 0.01},
            "val": {"accuracy": val, "loss": 1.0, "f1_macro": val - 0.01},
            "cost": {"size_mb": 42.7, "flops_per_image": 2.4e9, "latency_ms": 12.5, "throughput_images_per_s": 300.0,
                     "train_peak_rss_mb": 2048.0}}


RECORDS = [
    record("teacher-frozen", 0.80, 0.79, "teacher-frozen"),
    *[record(f"student-baseline-s{s}", acc, acc, "student-baseline", seed=s)
      for s, acc in enumerate([0.60, 0.61, 0.62])],
    *[record(f"student-kd-frozen-a0.3-t7-s{s}", acc, 0.70, "student-kd", s, "frozen", 0.3, 7.0)
      for s, acc in enumerate([0.64, 0.65, 0.66])],
    *[record(f"student-kd-frozen-a0.5-t2-s{s}", 0.90, 0.60, "student-kd", s, "frozen", 0.5, 2.0)
      for s in range(3)],
]


def test_aggregate_gives_mean_std_and_n_per_config():
    table = report.aggregate(report.runs_table(RECORDS)).set_index("config")
    assert table.loc["student-baseline", "n"] == 3
    assert table.loc["student-baseline", "test_accuracy"] == np.mean([0.60, 0.61, 0.62])
    assert np.isclose(table.loc["student-baseline", "test_accuracy_std"], 0.01)
    assert table.loc["teacher-frozen", "n"] == 1 and table.loc["teacher-frozen", "test_accuracy_std"] == 0


def test_summary_selects_on_validation_and_tests_against_baseline():
    text, csv = report.build_summary("unit", {"source": "npz", "path": "x.npz", "train_size": 10000,
                                              "val_size": 2000, "test_size": 2000}, RECORDS, correct={})
    # (0.5, 2) has the best test accuracy but the worse validation accuracy: (0.3, 7) must be selected
    assert "alpha 0.3, T 7, selected on validation accuracy" in text
    assert "alpha 0.5, T 2, selected" not in text
    assert "+4.00 points" in text and "Welch's t-test over seeds (n=3 vs 3)" in text
    assert "significant at 0.05" in text
    assert "62.95" in text and "78.15" in text  # the seed's numbers beside ours
    assert "65.00 ± 1.00" in text  # mean ± std of the three seeds
    assert "70.00 *" in text and "(seed)" in text  # the grid marks the selected point and the seed's
    means = csv[(csv["aggregate"] == "mean")].set_index("config")
    assert means.loc["student-kd-frozen-a0.3-t7", "test_accuracy"] == np.mean([0.64, 0.65, 0.66])
    assert len(csv[csv["aggregate"] == "run"]) == len(RECORDS)
    assert list(csv.columns[:3]) == ["aggregate", "n", "model"]


def test_single_seed_uses_paired_test_over_images():
    records = [record("student-baseline-s0", 0.5, 0.5, "student-baseline"),
               record("student-kd-frozen-a0.3-t7-s0", 0.75, 0.6, "student-kd", 0, "frozen", 0.3, 7.0)]
    correct = {"student-baseline-s0": np.array([1, 1, 0, 0] * 5, bool),
               "student-kd-frozen-a0.3-t7-s0": np.array([1, 1, 1, 0] * 5, bool)}
    text, _ = report.build_summary("unit", {"source": "synthetic", "train_size": 1, "test_size": 20}, records,
                                   correct)
    assert "exact McNemar test over 20 paired test images" in text and "+25.00 points" in text
    assert "the only setting run" in text and "selected on validation" not in text


def test_summarize_script_writes_markdown_csv_and_figures(tmp_path):
    metrics, predictions, histories = [], [], []
    rng = np.random.default_rng(0)
    for rec in RECORDS:
        folder = tmp_path / "eval" / rec["model"]
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(rec))
        labels = rng.integers(0, 10, 50)
        pd.DataFrame({"label": labels, "prediction": labels}).to_csv(folder / "test_predictions.csv")
        model_dir = tmp_path / "models" / rec["model"]
        model_dir.mkdir(parents=True)
        pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.5], "accuracy": [0.3, 0.5]}).to_csv(
            model_dir / "history.csv", index=False)
        metrics.append(folder / "metrics.json")
        predictions.append(folder / "test_predictions.csv")
        histories.append(model_dir / "history.csv")
    info = tmp_path / "data.json"
    info.write_text(json.dumps({"source": "npz", "path": "x.npz", "train_size": 10, "val_size": 5, "test_size": 50}))
    figures = {name: tmp_path / "figures" / f"{name}.png" for name in ("acc", "curves", "heat")}
    result = run_script("summarize.py", "--metrics", *metrics, "--predictions", *predictions, "--histories",
                        *histories, "--data-info", info, "--out", tmp_path / "summary.md", "--csv-out",
                        tmp_path / "summary.csv", "--accuracy-vs-cost", figures["acc"], "--training-curves",
                        figures["curves"], "--sweep-heatmap", figures["heat"])
    assert result.returncode == 0, result.stderr
    for path in figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    text = (tmp_path / "summary.md").read_text()
    assert "](figures/acc.png)" in text and "](eval/teacher-frozen/confusion_matrix.png)" in text
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert set(csv["aggregate"]) == {"run", "mean", "std"}


def test_summary_marks_synthetic_data():
    text, _ = report.build_summary("t", {"source": "synthetic", "train_size": 64, "test_size": 40},
                                   [record("teacher-frozen", 0.1, 0.1, "teacher-frozen")], {})
    assert "NOT CIFAR-10" in text
