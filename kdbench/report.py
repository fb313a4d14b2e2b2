"""Build results/summary.md, summary.csv and the summary figures from the evaluate step's files."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from kdbench import plots, stats
from kdbench.sweep import select_settings, validation_grids

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

# Columns of results/summary.csv, in order (documented in the README).
RUN_COLUMNS = ["model", "config", "kind", "teacher", "alpha", "temperature", "seed", "test_accuracy",
               "test_loss", "test_f1_macro", "val_accuracy", "params", "size_mb", "flops_per_image",
               "latency_ms", "throughput_images_per_s", "train_seconds", "train_peak_rss_mb", "epochs_run"]
NUMERIC_COLUMNS = RUN_COLUMNS[RUN_COLUMNS.index("test_accuracy"):]


def config_name(model: str) -> str:
    """A model's name without its seed: what is averaged over seeds."""
    return re.sub(r"-s\d+$", "", model)


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per trained model (and seed), in the RUN_COLUMNS layout."""
    rows = []
    for record in records:
        train, cost = record["train"], record.get("cost", {})
        rows.append({
            "model": record["model"], "config": config_name(record["model"]), "kind": train["kind"],
            "teacher": train.get("teacher"), "alpha": train.get("alpha"), "temperature": train.get("temperature"),
            "seed": train["seed"], "test_accuracy": record["test"]["accuracy"], "test_loss": record["test"]["loss"],
            "test_f1_macro": record["test"]["f1_macro"], "val_accuracy": record.get("val", {}).get("accuracy"),
            "params": train["params"], "size_mb": cost.get("size_mb"), "flops_per_image": cost.get("flops_per_image"),
            "latency_ms": cost.get("latency_ms"), "throughput_images_per_s": cost.get("throughput_images_per_s"),
            "train_seconds": train["train_seconds"], "train_peak_rss_mb": cost.get("train_peak_rss_mb"),
            "epochs_run": train["epochs_run"],
        })
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    runs[NUMERIC_COLUMNS] = runs[NUMERIC_COLUMNS].apply(pd.to_numeric)  # None (not measured) -> NaN
    return runs


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one seed) and n per config, in first-seen order."""
    grouped = runs.groupby("config", sort=False)
    table = grouped[["kind", "teacher", "alpha", "temperature"]].first()
    table["n"] = grouped.size()
    means = grouped[NUMERIC_COLUMNS].mean()
    stds = grouped[NUMERIC_COLUMNS].std(ddof=1).fillna(0.0)
    table = table.join(means).join(stds.add_suffix("_std"))
    return table.reset_index()


def seed_accuracy(row) -> float | None:
    """The seed notebook's reported accuracy for the same kind of model, if it ran that setting."""
    if row["kind"] == "student-kd" and (row["alpha"], row["temperature"]) != SEED_KD_SETTING:
        return None
    teacher = row["teacher"] if row["kind"] == "student-kd" else None
    return SEED_ACCURACY.get((row["kind"], teacher))


def compare_to_baseline(runs: pd.DataFrame, config: str, correct: dict[str, np.ndarray]) -> dict | None:
    """KD config vs baseline: Welch over seeds when both have two or more, else paired over test images."""
    kd = runs[runs["config"] == config]
    base = runs[runs["kind"] == "student-baseline"]
    if base.empty:
        return None
    if len(kd) >= 2 and len(base) >= 2:
        return stats.welch_comparison(kd["test_accuracy"].tolist(), base["test_accuracy"].tolist())
    common = sorted(set(kd["seed"]) & set(base["seed"]))
    if not common:
        return None
    kd_model, base_model = (frame.loc[frame["seed"] == common[0], "model"].iloc[0] for frame in (kd, base))
    if kd_model not in correct or base_model not in correct:
        return None
    return stats.paired_comparison(correct[kd_model], correct[base_model])


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _pm(mean: float, std: float, n: int, scale: float = 100, digits: int = 2) -> str:
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if n > 1 else "")


def _optional(value, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def accuracy_markdown(table: pd.DataFrame) -> str:
    rows = [{
        "model": row["config"], "n": row["n"],
        "test accuracy (%)": _pm(row["test_accuracy"], row["test_accuracy_std"], row["n"]),
        "seed notebook (%)": _optional(seed_accuracy(row), ".2f"),
        "val accuracy (%)": "" if pd.isna(row["val_accuracy"]) else
        _pm(row["val_accuracy"], row["val_accuracy_std"], row["n"]),
        "test loss": _pm(row["test_loss"], row["test_loss_std"], row["n"], scale=1, digits=3),
        "macro F1": _pm(row["test_f1_macro"], row["test_f1_macro_std"], row["n"], scale=1, digits=3),
    } for _, row in table.iterrows()]
    return pd.DataFrame(rows).to_markdown(index=False, colalign=["left"] + ["right"] * 6)


def cost_markdown(table: pd.DataFrame) -> str:
    rows = [{
        "model": row["config"], "params": f"{int(row['params']):,}", "size (MB)": _optional(row["size_mb"], ".1f"),
        "GFLOPs / image": _optional(row["flops_per_image"] / 1e9 if pd.notna(row["flops_per_image"]) else None,
                                    ".2f"),
        "latency, batch 1 (ms)": _optional(row["latency_ms"], ".1f"),
        "throughput (images/s)": _optional(row["throughput_images_per_s"], ".0f"),
        "training time": format_seconds(row["train_seconds"]),
        "training peak memory (MB)": _optional(row["train_peak_rss_mb"], ".0f"),
    } for _, row in table.iterrows()]
    return pd.DataFrame(rows).to_markdown(index=False, colalign=["left"] + ["right"] * 7)


def grid_markdown(grid: pd.DataFrame, selected: tuple[float, float] | None) -> str:
    """Validation accuracy (%) with the selected cell marked * and the seed's setting marked (seed)."""
    cells = {}
    for temperature in grid.columns:
        column = []
        for alpha in grid.index:
            value = grid.loc[alpha, temperature]
            text = "" if pd.isna(value) else f"{100 * value:.2f}"
            if (alpha, temperature) == selected:
                text += " *"
            if (alpha, temperature) == SEED_KD_SETTING:
                text += " (seed)"
            column.append(text)
        cells[f"T={temperature:g}"] = column
    frame = pd.DataFrame(cells, index=[f"alpha={a:g}" for a in grid.index])
    return frame.to_markdown(colalign=["left"] + ["right"] * len(grid.columns))


def run_header(title: str, data_info: dict, runs: pd.DataFrame, first_train: dict) -> list[str]:
    """What was run: data, image size, schedule, KD setting, seeds, versions and device."""
    source = data_info["source"]
    if source == "synthetic":
        source = "synthetic (generated images, NOT CIFAR-10: numbers say nothing about real accuracy)"
    elif data_info.get("path"):
        source = f"{source} ({data_info['path']})"
    seeds = sorted(runs.loc[runs["kind"] != "teacher-frozen", "seed"].unique().tolist())
    versions = first_train["versions"]
    return [
        f"# kdbench summary: {title}", "",
        f"- data: {source}; {data_info['train_size']:,} train / {data_info.get('val_size', 0):,} validation / "
        f"{data_info['test_size']:,} test images",
        f"- input: 32 px upsampled x{first_train['upsample']} to {32 * first_train['upsample']} px inside each model",
        f"- training: {first_train['epochs']} epochs, batch {first_train['batch_size']}, Adam; teacher backbone "
        f"weights: {first_train.get('weights', 'n/a')}; teachers trained once, students once per seed {seeds}",
        f"- software: Python {versions['python']}, TensorFlow {versions['tensorflow']}, Keras {versions['keras']}",
        f"- device: {first_train['device']}", "",
    ]


def kd_sentences(runs: pd.DataFrame, selected: dict, correct: dict) -> list[str]:
    """Selected setting per teacher (and the seed's setting, when swept but not selected) against the baseline."""
    lines = []
    for teacher, (alpha, temperature) in selected.items():
        swept = runs[(runs["kind"] == "student-kd") & (runs["teacher"] == teacher)]
        grid_size = len(swept[["alpha", "temperature"]].drop_duplicates())
        why = "selected on validation accuracy" if grid_size > 1 else "the only setting run"
        settings = [((alpha, temperature), why)]
        if SEED_KD_SETTING != (alpha, temperature):
            settings.append((SEED_KD_SETTING, "the seed's setting"))
        for (a, t), why in settings:
            config = f"student-kd-{teacher}-a{a:g}-t{t:g}"
            if config not in set(runs["config"]):
                continue
            comparison = compare_to_baseline(runs, config, correct)
            if comparison:
                lines.append(f"- KD from the {teacher} teacher (alpha {a:g}, T {t:g}, {why}) vs the baseline: "
                             f"{stats.describe(comparison)}.")
    return lines


def build_summary(title: str, data_info: dict, records: list[dict], correct: dict[str, np.ndarray],
                  figures: dict[str, str] | None = None) -> tuple[str, pd.DataFrame]:
    """The markdown document and the summary.csv table (runs plus per-config mean and std rows)."""
    if not records:
        raise ValueError("no metric files to summarise")
    runs = runs_table(records)
    table = aggregate(runs)
    selected = select_settings(runs)
    lines = run_header(title, data_info, runs, records[0]["train"])
    lines += ["## Accuracy", "", "Mean ± standard deviation over seeds (n). 'seed notebook' is what the original "
              "notebook reported for the same kind of model (10,000/2,000 images, 256 px, 5 epochs); it is "
              "comparable only when this run uses that setting.", "", accuracy_markdown(table), ""]
    sentences = kd_sentences(runs, selected, correct)
    if sentences:
        lines += ["## Does distillation beat the baseline?", "", *sentences, ""]
    lines += ["## Cost", "", "Latency and throughput are measured on this run's device by the evaluate step; "
              "training time and peak memory come from the training jobs.", "", cost_markdown(table), ""]
    grids = validation_grids(runs)
    if any(grid.size > 1 for grid in grids.values()):
        lines += ["## Alpha x temperature sweep", "",
                  "Validation accuracy (%), mean over seeds; * marks the setting selected on validation, whose "
                  "test accuracy is the one reported above; (seed) marks alpha 0.3, T 7.", ""]
        for teacher, grid in grids.items():
            lines += [f"KD from the {teacher} teacher:", "", grid_markdown(grid, selected.get(teacher)), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{caption}]({path})" for caption, path in figures.items()] + [""]
    return "\n".join(lines), summary_csv(runs, table)


def summary_csv(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Rows per run (aggregate 'run') plus 'mean' and 'std' rows per config, with stable columns."""
    keys = ["config", "kind", "teacher", "alpha", "temperature", "n"]
    means = table[keys + NUMERIC_COLUMNS].assign(aggregate="mean")
    stds = table[keys].join(table[[f"{c}_std" for c in NUMERIC_COLUMNS]].set_axis(NUMERIC_COLUMNS, axis=1))
    combined = pd.concat([runs.assign(aggregate="run", n=1), means, stds.assign(aggregate="std")],
                         ignore_index=True)
    combined["model"] = combined["model"].fillna(combined["config"])
    return combined[["aggregate", "n", *RUN_COLUMNS]]


def write_figures(records: list[dict], histories: dict[str, pd.DataFrame], paths: dict[str, str]) -> None:
    """accuracy_vs_cost, training_curves and sweep_heatmap PNGs."""
    runs = runs_table(records)
    plots.accuracy_vs_cost_png(aggregate(runs), paths["accuracy_vs_cost"])
    plots.training_curves_png(histories, paths["training_curves"])
    grids = validation_grids(runs)
    plots.sweep_heatmap_png(grids, select_settings(runs), paths["sweep_heatmap"])
