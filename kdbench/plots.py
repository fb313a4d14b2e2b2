"""Figures for the summary and the Snakemake report (matplotlib, written as PNG), and one confusion table."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kdbench.io import atomic_path  # noqa: E402

DPI = 110
# Beyond this many classes a confusion matrix draws no per-cell counts and no class names.
ANNOTATED_CLASSES = 20


def _save(figure, path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight")
    plt.close(figure)


def _colours(n: int) -> list:
    """n colours: tab10 up to 10, else tab20 (repeating beyond 20; lines then differ by style too)."""
    palette = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [palette(i % palette.N) for i in range(n)]


def _line_styles(n: int) -> list[str]:
    """Solid for the first 20 lines, then dashed, then dotted: with tab20, no two lines look alike up to 60."""
    return [("-", "--", ":")[min(i // 20, 2)] for i in range(n)]


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _text_colour(rgba) -> str:
    red, green, blue = rgba[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"


# ---------------------------------------------------------------------------------------------- confusion


def confusion_matrix_png(table: pd.DataFrame, title: str, path, max_annotated: int = ANNOTATED_CLASSES) -> None:
    """Row-normalised confusion matrix (true classes as rows, as in `table`).

    Up to `max_annotated` classes: class names on the axes and counts in the cells. More classes
    (CIFAR-100): neither, ticks every tenth class index, and a square-root colour scale so that the
    off-diagonal confusions stay visible; `top_confused_pairs` gives the numbers.
    """
    counts = table.to_numpy()
    n = len(counts)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    small = n <= max_annotated
    figure, axis = plt.subplots(figsize=(6.4, 5.6) if small else (7.2, 6.4))
    norm = mcolors.Normalize(0, 1) if small else mcolors.PowerNorm(0.5, 0, 1)
    image = axis.imshow(rates, cmap="Blues", norm=norm, interpolation="nearest")
    if small:
        axis.set_xticks(range(n), [str(c) for c in table.columns], rotation=45, ha="right")
        axis.set_yticks(range(n), [str(c) for c in table.index])
        for (row, col), count in np.ndenumerate(counts):
            axis.text(col, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if rates[row, col] > 0.5 else "black")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
    else:
        ticks = list(range(0, n, 10))
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.set_yticks(ticks, [str(t) for t in ticks])
        axis.set_xlabel("predicted class (index)")
        axis.set_ylabel("true class (index)")
    figure.colorbar(image, ax=axis, label="fraction of the true class" + ("" if small else " (square-root scale)"))
    axis.set_title(title)
    _save(figure, path)


def top_confused_pairs(confusion: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k most frequent mistakes: true class, predicted class, count and share of the true class's images.

    Readable at any number of classes, where a 100 x 100 matrix is not. Ties go to the earlier class.
    """
    counts = confusion.to_numpy()
    totals = counts.sum(axis=1)
    rows = [(true, predicted, int(counts[i, j]), counts[i, j] / totals[i] if totals[i] else float("nan"), i, j)
            for i, true in enumerate(confusion.index) for j, predicted in enumerate(confusion.columns)
            if i != j and counts[i, j] > 0]
    rows.sort(key=lambda row: (-row[2], row[4], row[5]))
    return pd.DataFrame([row[:4] for row in rows[:k]], columns=["true", "predicted", "count", "share_of_true"])


# ------------------------------------------------------------------------------------------------- sweeps


def sweep_heatmap_png(grids: dict[str, pd.DataFrame], selected: dict[str, tuple], path,
                      row_label: str | None = None, col_label: str | None = None,
                      value_label: str = "validation accuracy (%)", scale: float = 100.0,
                      title: str | None = None) -> None:
    """One heat map per grid (e.g. per teacher): a setting on rows, another on columns, a value per cell.

    Axis labels default to the grids' index and column names (what `pivot_table` sets).
    Every panel shares one colour scale (so colours compare across panels); missing cells are grey;
    `selected[name]` = (row value, column value) is boxed in red. Values are multiplied by `scale`.
    Meant for real sweeps only: with one cell per grid there is nothing to see.
    """
    first = next(iter(grids.values()))
    row_label = row_label or str(first.index.name or "")
    col_label = col_label or str(first.columns.name or "")
    values = {name: scale * grid.to_numpy(dtype=float) for name, grid in grids.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] + [np.array([])])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    widest = max(len(grid.columns) for grid in grids.values())
    tallest = max(len(grid.index) for grid in grids.values())
    figure, axes = plt.subplots(1, len(grids), squeeze=False, layout="constrained",
                                figsize=(len(grids) * (1.6 + 0.75 * widest) + 1.2, 1.4 + 0.55 * tallest))
    image = None
    for axis, (name, grid) in zip(axes[0], grids.items()):
        data = values[name]
        image = axis.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=low, vmax=high, aspect="auto")
        axis.set_xticks(range(len(grid.columns)), [_tick(c) for c in grid.columns])
        axis.set_yticks(range(len(grid.index)), [_tick(r) for r in grid.index])
        axis.set_xlabel(col_label)
        axis.set_ylabel(row_label)
        for (row, col), value in np.ndenumerate(data):
            if np.isfinite(value):
                axis.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=8,
                          color=_text_colour(cmap((value - low) / (high - low))))
            else:
                axis.text(col, row, "–", ha="center", va="center", fontsize=8, color="0.4")
        if name in selected and selected[name] is not None:
            row_value, col_value = selected[name]
            if row_value in list(grid.index) and col_value in list(grid.columns):
                row, col = list(grid.index).index(row_value), list(grid.columns).index(col_value)
                axis.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red",
                                             linewidth=2.5))
        axis.set_title(str(name), fontsize=10)
    figure.colorbar(image, ax=list(axes[0]), label=value_label, shrink=0.9)
    figure.suptitle(title or f"{value_label} over {row_label} x {col_label}" + (
        "; red box: the selected setting" if any(v is not None for v in selected.values()) else ""), fontsize=10)
    _save(figure, path)


# ---------------------------------------------------------------------------------------- training curves


def _epoch_axis(axis, last_epoch: int) -> None:
    """Integer epochs from 1; a single epoch is one tick with room either side, not 0.96 to 1.04."""
    last_epoch = max(1, last_epoch)
    axis.set_xlim(0.5, last_epoch + 0.5)
    if last_epoch <= 12:
        axis.set_xticks(range(1, last_epoch + 1))
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.grid(alpha=0.3)


def training_curves_png(histories: dict[str, pd.DataFrame], path,
                        distillation_terms: Sequence[str] = ("soft_loss",)) -> None:
    """Per-epoch curves of every model, one colour per model across the panels.

    Panels: cross-entropy on the labels (the `hard_loss` term of a distilled model, else its `loss`);
    the distillation terms (`soft_loss`: T² x KL to the teacher), only when a model logged them, apart
    from cross-entropy because their scale differs, a marker per term and a key when there are several;
    validation accuracy where the histories have `val_accuracy` (else training accuracy). Markers on every
    point, so a one-epoch run is visible.
    Readable up to about ten models: for a sweep, pass the teachers, the baselines and the selected
    setting of each method rather than every grid point.
    """
    names = list(histories)
    colours = dict(zip(names, _colours(len(names))))
    styles = dict(zip(names, _line_styles(len(names))))
    distilled = [name for name in names if any(term in histories[name] for term in distillation_terms)]
    logged = [term for term in distillation_terms if any(term in histories[name] for name in distilled)]
    markers = dict(zip(logged, itertools.cycle("osD^vPX*<>")))  # one marker per term, a colour per model
    validation = any("val_accuracy" in history for history in histories.values())
    panels = ["cross-entropy"] + (["distillation"] if distilled else []) + ["accuracy"]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False,
                                layout="constrained")
    axes = dict(zip(panels, axes[0]))
    last_epoch = 1
    for name, history in histories.items():
        epochs = history["epoch"].to_numpy()
        last_epoch = max(last_epoch, int(epochs.max()) if len(epochs) else 1)
        style = {"color": colours[name], "linestyle": styles[name], "marker": "o", "markersize": 4, "linewidth": 1.3}
        cross_entropy = history["hard_loss"] if "hard_loss" in history else history["loss"]
        axes["cross-entropy"].plot(epochs, cross_entropy, **style)
        if name in distilled:
            for term in distillation_terms:
                if term in history:
                    axes["distillation"].plot(epochs, history[term], **{**style, "marker": markers[term]})
        accuracy = "val_accuracy" if validation else "accuracy"
        if accuracy in history:
            axes["accuracy"].plot(epochs, 100 * history[accuracy], **style)
    axes["cross-entropy"].set_ylabel("training cross-entropy on the labels")
    if distilled:
        axes["distillation"].set_ylabel("training distillation loss" + (f" ({logged[0]})" if len(logged) == 1 else
                                                                           " (marker: term)"))
        if len(logged) > 1:
            axes["distillation"].legend(
                handles=[Line2D([], [], color="0.3", linestyle="none", marker=markers[term], label=term)
                         for term in logged], fontsize=7, loc="best", ncols=2, framealpha=0.8)
        values = np.concatenate([line.get_ydata() for line in axes["distillation"].lines]).astype(float)
        values = values[np.isfinite(values)]
        if len(values) and values.min() > 0 and values.max() / values.min() > 100:  # e.g. fitnets' hint beside KL
            axes["distillation"].set_yscale("log")
    axes["accuracy"].set_ylabel("validation accuracy (%)" if validation else "training accuracy (%)")
    for axis in axes.values():
        _epoch_axis(axis, last_epoch)
    handles = [Line2D([], [], color=colours[name], linestyle=styles[name], marker="o", markersize=4, label=name)
               for name in names]
    columns = max(1, math.ceil(len(names) / 18))
    figure.legend(handles=handles, loc="outside right upper", fontsize=7, ncols=columns, frameon=False)
    _save(figure, path)


# ---------------------------------------------------------------------------------------- accuracy vs cost


def _spread_labels(axis, xs, ys, fontsize: float) -> list[tuple[float, float, str]]:
    """Where to put a number label beside each point: (dx, dy) in points from the point, and alignment.

    Points closer than a label's width horizontally form a column (e.g. every student of one
    architecture has the same parameter count). A lone point is labelled just right of it; in a
    column the labels alternate right and left of the column in order of height, keep a line apart,
    stay centred on their points and inside the axes, and get leader lines (drawn by the caller).
    """
    figure = axis.figure
    figure.canvas.draw()  # fixes the layout, hence the data-to-pixel transform
    pixels = axis.transData.transform(np.column_stack([xs, ys])) if len(xs) else np.zeros((0, 2))
    bottom, top = axis.get_window_extent().y0, axis.get_window_extent().y1
    to_points = 72.0 / figure.dpi
    # pixels: a line of text; the gap between points that still puts them in one column (two labels of
    # two digits and their gaps); the gap between a column and its labels
    line, width, gap = 1.3 * fontsize / to_points, 3.5 * fontsize / to_points, 4 / to_points
    placements = [(5.0, 0.0, "left")] * len(xs)
    columns, current = [], []
    for i in sorted(range(len(xs)), key=lambda i: pixels[i][0]):
        if current and pixels[i][0] - pixels[current[-1]][0] > width:  # chains of near points: one column
            columns.append(current)
            current = []
        current.append(i)
    if current:
        columns.append(current)
    for column in (c for c in columns if len(c) > 1):
        column.sort(key=lambda i: pixels[i][1])
        left_edge, right_edge = min(pixels[i][0] for i in column), max(pixels[i][0] for i in column)
        for right, side in ((True, column[0::2]), (False, column[1::2])):
            placed = []
            for i in side:
                placed.append(max(pixels[i][1], placed[-1] + line) if placed else pixels[i][1])
            placed = np.array(placed) + np.mean([pixels[i][1] for i in side]) - np.mean(placed)
            placed += max(0.0, bottom + line / 2 - placed.min()) - max(0.0, placed.max() - (top - line / 2))
            label_x = right_edge + gap if right else left_edge - gap
            for i, y in zip(side, placed):
                placements[i] = ((label_x - pixels[i][0]) * to_points, (y - pixels[i][1]) * to_points,
                                 "left" if right else "right")
    return placements


def accuracy_vs_cost_png(table: pd.DataFrame, path, label_column: str = "config",
                         accuracy_column: str = "test_accuracy", std_column: str | None = "test_accuracy_std",
                         group_column: str | None = "kind",
                         costs: Sequence[tuple[str, str, float]] = (("params", "parameters (millions)", 1e-6),
                                                                    ("latency_ms", "latency at batch 1 (ms)", 1.0)),
                         accuracy_label: str = "test accuracy (%)") -> None:
    """Accuracy (mean ± std) against each cost column, one numbered point per row of `table`.

    Points are numbered and the key (number, label) is a legend beside the panels, so 30 points stay
    readable; stacked points get their numbers spread apart with leader lines. Colour by `group_column`
    (e.g. teacher / baseline / distilled) when the table has it. `costs`: (column, axis label, scale).
    """
    table = table.reset_index(drop=True)
    groups = (list(dict.fromkeys(table[group_column].astype(str)))
              if group_column and group_column in table else [None])
    group_colour = dict(zip(groups, _colours(len(groups))))
    group_of = [str(row[group_column]) if groups != [None] else None for _, row in table.iterrows()]
    colour_of = [group_colour[group] for group in group_of]
    group_size = [group_of.count(group) for group in group_of]
    costs = [cost for cost in costs if cost[0] in table]
    below = len(table) > 24  # a long key goes under the panels, in columns, instead of squeezing them
    key_rows = math.ceil(len(table) / 3) if below else 0
    figure, axes = plt.subplots(1, len(costs), figsize=(5.2 * len(costs) + (0 if below else 2.0),
                                                         4.6 + 0.16 * key_rows),
                                sharey=True, squeeze=False, layout="constrained")
    fontsize = 7
    accuracy = 100 * table[accuracy_column].to_numpy(dtype=float)
    spread = (100 * table[std_column].fillna(0).to_numpy(dtype=float)
              if std_column and std_column in table else np.zeros(len(table)))
    # the key first: the layout that places the number labels must already make room for it
    handles = [Line2D([], [], linestyle="", marker="o", markersize=5, color=colour_of[i],
                      label=f"{i + 1}  {row[label_column]}") for i, row in table.iterrows()]
    figure.legend(handles=handles, loc="outside lower center" if below else "outside right upper",
                  fontsize=fontsize, frameon=False, ncols=3 if below else 1, handletextpad=0.3)
    points = []
    for axis, (column, label, scale) in zip(axes[0], costs):
        x = scale * table[column].to_numpy(dtype=float)
        shown = np.flatnonzero(np.isfinite(x) & np.isfinite(accuracy))
        for i in shown:  # small groups (teachers, the baseline) drawn over large ones
            axis.errorbar(x[i], accuracy[i], yerr=spread[i], fmt="o", color=colour_of[i], markersize=5,
                          capsize=2, elinewidth=0.8, zorder=3 + 1 / group_size[i])
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
        axis.margins(x=0.12, y=0.08)
        points.append((axis, x, shown))
    axes[0][0].set_ylabel(accuracy_label + (", mean ± std over seeds" if spread.any() else ""))
    for axis, x, shown in points:  # after every panel has its data: they share the accuracy axis
        for i, (dx, dy, align) in zip(shown, _spread_labels(axis, x[shown], accuracy[shown], fontsize)):
            moved = abs(dy) > 2 or abs(dx) > 8
            axis.annotate(str(i + 1), (x[i], accuracy[i]), xytext=(dx, dy), textcoords="offset points",
                          fontsize=fontsize, va="center", ha=align, color="0.15", zorder=5,
                          arrowprops={"arrowstyle": "-", "color": "0.65", "linewidth": 0.5,
                                      "shrinkA": 0, "shrinkB": 2} if moved else None)
    _save(figure, path)
