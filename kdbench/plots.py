"""Figures for the summary and the Snakemake report (matplotlib, written as PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kdbench.io import atomic_path  # noqa: E402


def _save(figure, path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def confusion_matrix_png(table: pd.DataFrame, title: str, path) -> None:
    """Row-normalised confusion matrix with counts in the cells."""
    counts = table.to_numpy()
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(6.4, 5.6))
    image = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    axis.set_yticks(range(len(table.index)), table.index)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for (row, col), count in np.ndenumerate(counts):
        axis.text(col, row, str(count), ha="center", va="center", fontsize=7,
                  color="white" if rates[row, col] > 0.5 else "black")
    figure.colorbar(image, ax=axis, label="fraction of the true class")
    axis.set_title(title)
    _save(figure, path)


def accuracy_vs_cost_png(table: pd.DataFrame, path) -> None:
    """Test accuracy (mean ± std over seeds) against parameters and batch-1 latency, one point per model."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, column, label in ((axes[0], "params", "parameters (millions)"),
                                (axes[1], "latency_ms", "latency at batch 1 (ms)")):
        scale = 1e-6 if column == "params" else 1.0
        for _, row in table.iterrows():
            axis.errorbar(row[column] * scale, 100 * row["test_accuracy"], yerr=100 * row["test_accuracy_std"],
                          fmt="o", capsize=3)
            axis.annotate(row["config"], (row[column] * scale, 100 * row["test_accuracy"]), fontsize=7,
                          xytext=(4, 4), textcoords="offset points")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    figure.suptitle("Accuracy against cost")
    _save(figure, path)


def training_curves_png(histories: dict[str, pd.DataFrame], path) -> None:
    """Training loss and accuracy per epoch for every model."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, history in histories.items():
        axes[0].plot(history["epoch"], history["loss"], marker="o", label=name)
        axes[1].plot(history["epoch"], 100 * history["accuracy"], marker="o", label=name)
    axes[0].set_ylabel("training loss (KD students: combined KD loss)")
    axes[1].set_ylabel("training accuracy (%)")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    _save(figure, path)


def sweep_heatmap_png(grids: dict[str, pd.DataFrame], selected: dict[str, tuple[float, float]], path) -> None:
    """Validation accuracy over alpha x temperature, one panel per teacher; the selected cell is boxed."""
    figure, axes = plt.subplots(1, len(grids), figsize=(5.5 * len(grids), 4.2), squeeze=False)
    for axis, (teacher, grid) in zip(axes[0], grids.items()):
        values = 100 * grid.to_numpy(dtype=float)
        image = axis.imshow(values, cmap="viridis", aspect="auto")
        axis.set_xticks(range(len(grid.columns)), [f"{t:g}" for t in grid.columns])
        axis.set_yticks(range(len(grid.index)), [f"{a:g}" for a in grid.index])
        axis.set_xlabel("temperature")
        axis.set_ylabel("alpha (hard-label weight)")
        for (row, col), value in np.ndenumerate(values):
            axis.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=8, color="white")
        if teacher in selected:
            alpha, temperature = selected[teacher]
            row, col = list(grid.index).index(alpha), list(grid.columns).index(temperature)
            axis.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        axis.set_title(f"KD from the {teacher} teacher: validation accuracy (%)")
        figure.colorbar(image, ax=axis)
    _save(figure, path)
