"""`kdbench compare`: finished runs side by side, on small run folders written here (the files a run writes)."""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from kdbench import KdbenchError, compare, launcher, runs

KD = '{"alpha": 0.3, "temperature": 7.0}'


def write_run(folder, seeds=(0,), accuracy=None, optimizer="adam", labels=None, configs=("baseline", "kd")):
    """A finished run folder: runs.tsv, summary.csv, data/dataset.json, train.json and test predictions per model.

    accuracy(config, seed) -> per-image correctness (a bool array over the test images)."""
    labels = np.arange(20) % 10 if labels is None else np.asarray(labels)
    rows = [dict(id="teacher-frozen", config="teacher-frozen", role="teacher", architecture="resnet50", upsample=1,
                 student="", teacher="frozen", method="", settings="{}", seed=seeds[0])]
    for seed in seeds:
        if "baseline" in configs:
            rows.append(dict(id=f"baseline-resnet18-s{seed}", config="baseline-resnet18", role="baseline",
                             architecture="resnet18", upsample=1, student="resnet18", teacher="", method="",
                             settings="{}", seed=seed))
        if "kd" in configs:
            rows.append(dict(id=f"kd-frozen-resnet18-03efa52d-s{seed}", config="kd-frozen-resnet18-03efa52d",
                             role="distilled", architecture="resnet18", upsample=1, student="resnet18",
                             teacher="frozen", method="kd", settings=KD, seed=seed))
    table = pd.DataFrame(rows, columns=runs.COLUMNS)
    folder.mkdir(parents=True)
    runs.write_tsv(table, folder / "runs.tsv")
    summary = []
    for row in rows:
        correct = accuracy(row["config"], row["seed"])
        predictions = np.where(correct, labels, (labels + 1) % 10)
        (folder / "eval" / row["id"]).mkdir(parents=True)
        pd.DataFrame({"image": range(len(labels)), "label": labels, "prediction": predictions}).to_csv(
            folder / "eval" / row["id"] / "test_predictions.csv", index=False)
        (folder / "models" / row["id"]).mkdir(parents=True)
        (folder / "models" / row["id"] / "train.json").write_text(json.dumps(
            {"optimizer": optimizer, "epochs": 1, "seed": row["seed"], "train_seconds": 10 + row["seed"],
             "feature_seconds": len(optimizer),
             "learning_rate": 0.001, "versions": {"keras": "3.15.1"}}))
        summary.append({"aggregate": "run", "n": 1, "id": row["id"], "config": row["config"],
                        "test_accuracy": float(np.mean(correct))})
    pd.DataFrame(summary).to_csv(folder / "summary.csv", index=False)
    (folder / "data").mkdir()
    (folder / "data" / "dataset.json").write_text(json.dumps(
        {"dataset": "cifar10", "source": "synthetic", "train_size": 64, "val_size": 40, "test_size": len(labels)}))
    return folder


def right_first(k, n=20):
    """The first k of n test images right."""
    return np.arange(n) < k


def test_settings_that_differ_accuracy_and_a_paired_test_over_seeds(tmp_path):
    a = write_run(tmp_path / "A", seeds=(0, 1, 2), accuracy=lambda config, seed: right_first(10 + seed))
    b = write_run(tmp_path / "B", seeds=(0, 1, 2), optimizer="sgd",
                  accuracy=lambda config, seed: right_first(12 + seed + (config == "kd-frozen-resnet18-03efa52d")))
    text, rows = compare.compare([a, b])
    lines = text.splitlines()
    assert lines[0] == "| | A | B |"
    settings = lines[lines.index("| **settings that differ** | | |") + 1:lines.index(
        "| **test accuracy (%), mean ± std over seeds** | | |")]
    # timings (train_seconds, feature_seconds) are outcomes, not settings
    assert settings == ["| teacher.optimizer | adam | sgd |", "| train.optimizer | adam | sgd |"]
    assert "| baseline resnet18 | 55.00 ± 5.00 (n=3) | 65.00 ± 5.00 (n=3) |" in lines
    kd = next(line for line in lines if line.startswith("| kd (alpha 0.3, temperature 7) frozen -> resnet18 | (ref"))
    # B - A: +15 points on every seed, no spread: the paired t-test over seeds is degenerate, said as such
    assert "+15.00 points" in kd and "paired t-test over 3 seeds" in kd and "no test possible (all paired" in kd
    paired = [row for row in rows if row["section"] == "paired" and row["item"] == "baseline resnet18"]
    assert len(paired) == 1 and paired[0]["difference"] == pytest.approx(0.10)
    assert "exact McNemar test pooled over 3 seeds" in paired[0]["detail"]


def test_one_seed_gets_mcnemar_over_the_test_images(tmp_path):
    a = write_run(tmp_path / "A", accuracy=lambda config, seed: right_first(10))
    b = write_run(tmp_path / "B", accuracy=lambda config, seed: right_first(16))  # 6 images only B gets right
    text, rows = compare.compare([a, b])
    (row,) = [row for row in rows if row["section"] == "paired" and row["item"] == "baseline resnet18"]
    assert row["difference"] == pytest.approx(0.30) and row["p_value"] == pytest.approx(2 / 2 ** 6)
    assert row["ci_low"] > 0 and "exact McNemar test over 20 paired test images" in row["test"]
    assert "| (none: the recorded settings are the same) | | |" in text
    assert "+30.00 points [" in text and "p = 0.0312: significant" in text


def test_no_verdict_across_different_test_images_or_configurations_run_in_one_only(tmp_path):
    a = write_run(tmp_path / "A", accuracy=lambda config, seed: right_first(10))
    b = write_run(tmp_path / "B", accuracy=lambda config, seed: right_first(10), labels=np.arange(20) % 5,
                  configs=("baseline",))
    text, _ = compare.compare([a, b])
    assert "| baseline resnet18 | (reference) | different test images: not paired |" in text
    assert "| kd (alpha 0.3, temperature 7) frozen -> resnet18 | (reference) | not run |" in text
    assert "| methods | [kd (alpha 0.3, temperature 7) frozen -> resnet18] | [] |" in text


def test_csv_and_the_console_command(tmp_path, capsys):
    a = write_run(tmp_path / "A", accuracy=lambda config, seed: right_first(10))
    b = write_run(tmp_path / "B", accuracy=lambda config, seed: right_first(12), optimizer="sgd")
    assert launcher.main(["compare", str(a), str(b), "--csv", str(tmp_path / "out" / "c.csv")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| | A | B |") and "| train.optimizer | adam | sgd |" in printed
    with open(tmp_path / "out" / "c.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["section"] == "setting" and {row["section"] for row in rows} == {"setting", "test accuracy",
                                                                                   "paired"}
    accuracy = [row for row in rows if row["section"] == "test accuracy" and row["item"] == "baseline resnet18"]
    assert [(row["run"], float(row["mean"]), row["std"], row["n"]) for row in accuracy] == [("A", 0.5, "", "1"),
                                                                                           ("B", 0.6, "", "1")]


def test_missing_or_unfinished_runs_are_named(tmp_path, capsys):
    a = write_run(tmp_path / "A", accuracy=lambda config, seed: right_first(10))
    with pytest.raises(KdbenchError, match="no such run folder"):
        compare.compare([a, tmp_path / "nowhere"])
    (tmp_path / "half" / "data").mkdir(parents=True)
    (tmp_path / "half" / "runs.tsv").write_text((a / "runs.tsv").read_text())
    with pytest.raises(KdbenchError, match=r"half is not a finished run: it lacks summary.csv, data/dataset.json"):
        compare.compare([a, tmp_path / "half"])
    with pytest.raises(KdbenchError, match="two or more run folders"):
        compare.compare([a])
    assert launcher.main(["compare", str(a), str(tmp_path / "nowhere")]) == 2
    assert "kdbench compare: error:" in capsys.readouterr().err
    (a / "models" / "baseline-resnet18-s0" / "train.json").write_text("{cut short")
    with pytest.raises(KdbenchError, match="cannot read .*baseline-resnet18-s0/train.json"):
        compare.compare([a, a])
