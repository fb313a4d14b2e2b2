"""Build results/summary.md from the metric files the evaluate step wrote (reads files only)."""

from __future__ import annotations

import pandas as pd

# Test accuracies (%) the seed notebook reported: 10,000 train / 2,000 test images, 256 px, 5 epochs,
# softmax outputs, KD at alpha 0.3 and T 7. Keyed by (kind, teacher).
SEED_ACCURACY = {
    ("teacher-frozen", None): 78.15,
    ("teacher-finetuned", None): 63.80,
    ("student-baseline", None): 64.09,
    ("student-kd", "frozen"): 62.95,
    ("student-kd", "finetuned"): 60.90,
}
SEED_KD_SETTING = (0.3, 7.0)


def seed_accuracy(record: dict) -> float | None:
    """The seed's reported accuracy for the same kind of model, if the seed ran that setting."""
    train = record["train"]
    if train["kind"] == "student-kd" and (train["alpha"], train["temperature"]) != SEED_KD_SETTING:
        return None
    return SEED_ACCURACY.get((train["kind"], train.get("teacher")))


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def results_table(records: list[dict]) -> pd.DataFrame:
    """One row per model: test metrics, cost, and the seed's number beside ours."""
    rows = []
    for record in records:
        train = record["train"]
        seed = seed_accuracy(record)
        rows.append({
            "model": record["model"],
            "test accuracy (%)": round(100 * record["accuracy"], 2),
            "seed notebook (%)": seed if seed is not None else "",
            "test loss": round(record["loss"], 4),
            "macro F1": round(record["f1_macro"], 4),
            "params": f"{train['params']:,}",
            "epochs": train["epochs_run"],
            "training time": format_seconds(train["train_seconds"]),
        })
    return pd.DataFrame(rows)


def kd_verdicts(records: list[dict]) -> list[str]:
    """One sentence per distilled student: accuracy difference against the baseline with the same seed."""
    baselines = {r["train"]["seed"]: r for r in records if r["train"]["kind"] == "student-baseline"}
    lines = []
    for record in records:
        train = record["train"]
        baseline = baselines.get(train["seed"])
        if train["kind"] != "student-kd" or baseline is None:
            continue
        diff = 100 * (record["accuracy"] - baseline["accuracy"])
        lines.append(f"- {record['model']} vs {baseline['model']}: {diff:+.2f} points of test accuracy "
                     f"({'better' if diff > 0 else 'not better'} than the baseline on this single run)")
    return lines


def run_header(title: str, data_info: dict, records: list[dict]) -> list[str]:
    """What was run: data, image size, schedule, KD setting, versions and device."""
    first = records[0]["train"]
    teacher = next((r["train"] for r in records if r["train"]["kind"].startswith("teacher")), first)
    kd = next((r["train"] for r in records if r["train"]["kind"] == "student-kd"), None)
    source = data_info["source"]
    if source == "synthetic":
        source = "synthetic (generated images, NOT CIFAR-10: numbers say nothing about real accuracy)"
    elif data_info.get("path"):
        source = f"{source} ({data_info['path']})"
    lines = [
        f"# kdbench summary: {title}",
        "",
        f"- data: {source}; {data_info['train_size']:,} train / {data_info['test_size']:,} test images",
        f"- input: 32 px upsampled x{first['upsample']} to {32 * first['upsample']} px inside each model",
        f"- training: {first['epochs']} epochs, batch {first['batch_size']}, Adam; "
        f"teacher backbone weights: {teacher.get('weights', 'n/a')}",
    ]
    if kd:
        lines.append(f"- distillation: alpha {kd['alpha']} (hard-label weight), temperature {kd['temperature']}, "
                     f"{kd['soft_targets']} teacher logits")
    versions = first["versions"]
    lines += [f"- software: Python {versions['python']}, TensorFlow {versions['tensorflow']}, "
              f"Keras {versions['keras']}",
              f"- device: {first['device']}", ""]
    return lines


def build_summary(title: str, data_info: dict, records: list[dict]) -> str:
    """The whole markdown document."""
    if not records:
        raise ValueError("no metric files to summarise")
    lines = run_header(title, data_info, records)
    lines += [results_table(records).to_markdown(index=False), ""]
    lines += ["'seed notebook' is the accuracy the original notebook reported for the same kind of model "
              "(10,000/2,000 images, 256 px, 5 epochs); it is comparable only when this run uses that setting.",
              ""]
    verdicts = kd_verdicts(records)
    if verdicts:
        lines += ["## Does distillation beat the baseline?", "", *verdicts, ""]
    return "\n".join(lines)
