"""Figures: written as PNG files, and drawn as asked (checked on matplotlib's objects, not on pixels)."""

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from kdbench import plots


@pytest.fixture
def figures(monkeypatch):
    """Keep each figure instead of writing it, so its axes can be inspected."""
    kept = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: kept.append(figure))
    return kept


def history(epochs, distilled=False, validation=False):
    e = np.arange(1, epochs + 1)
    frame = pd.DataFrame({"epoch": e, "loss": 2.3 * 0.8 ** e, "accuracy": 0.1 + 0.1 * e})
    if distilled:
        frame["hard_loss"], frame["soft_loss"] = 2.0 * 0.8 ** e, 6.0 * 0.8 ** e
    if validation:
        frame["val_accuracy"] = 0.05 + 0.1 * e
    return frame


def cost_table(n):
    rng = np.random.default_rng(0)
    kinds = ["teacher", "teacher", "baseline"] + ["distilled"] * (n - 3)
    return pd.DataFrame({"config": [f"model-{i}" for i in range(n)], "kind": kinds,
                         "params": [24.6e6 if kind == "teacher" else 11.2e6 for kind in kinds],
                         "latency_ms": [30.0 if kind == "teacher" else 12 + rng.normal(0, 0.3) for kind in kinds],
                         "test_accuracy": 0.6 + rng.normal(0, 0.02, n), "test_accuracy_std": np.full(n, 0.01)})


def test_every_figure_is_written_as_png(tmp_path):
    grid = pd.DataFrame([[0.5, 0.6], [0.55, 0.62]], index=[0.3, 0.5], columns=[4, 7])
    confusion = pd.DataFrame(np.eye(3, dtype=int) * 5 + 1, index=list("abc"), columns=list("abc"))
    plots.sweep_heatmap_png({"frozen": grid}, {"frozen": (0.5, 7)}, tmp_path / "heat.png", "alpha", "temperature")
    plots.training_curves_png({"a": history(3, validation=True), "b": history(3, True, True)}, tmp_path / "curves.png")
    plots.accuracy_vs_cost_png(cost_table(6), tmp_path / "cost.png")
    plots.confusion_matrix_png(confusion, "title", tmp_path / "confusion.png")
    for name in ("heat", "curves", "cost", "confusion"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_heat_map_axes_carry_the_given_labels_and_box_the_selection(figures):
    grids = {"frozen": pd.DataFrame([[0.50, 0.60, 0.61], [0.55, np.nan, 0.62]], index=[0.3, 0.5], columns=[2, 4, 7]),
             "finetuned": pd.DataFrame([[0.40, 0.45, 0.42], [0.41, 0.47, 0.44]], index=[0.3, 0.5], columns=[2, 4, 7])}
    plots.sweep_heatmap_png(grids, {"frozen": (0.5, 7), "finetuned": (0.3, 4)}, "unused.png",
                            row_label="alpha (hard-label weight)", col_label="temperature")
    panels = [axis for axis in figures[0].axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == ["frozen", "finetuned"]
    for axis in panels:
        assert axis.get_ylabel() == "alpha (hard-label weight)" and axis.get_xlabel() == "temperature"
        assert [t.get_text() for t in axis.get_xticklabels()] == ["2", "4", "7"]
        assert [t.get_text() for t in axis.get_yticklabels()] == ["0.3", "0.5"]
    frozen, finetuned = panels
    assert frozen.images[0].get_clim() == finetuned.images[0].get_clim() == (40.0, 62.0)  # one colour scale
    box, = frozen.patches
    assert box.get_xy() == (1.5, 0.5) and box.get_edgecolor()[:3] == (1.0, 0.0, 0.0)  # row 0.5, column 7
    assert [t.get_text() for t in frozen.texts] == ["50.0", "60.0", "61.0", "55.0", "–", "62.0"]  # missing: –


def test_a_one_epoch_run_is_drawn_on_an_integer_epoch_axis(figures):
    plots.training_curves_png({"teacher": history(1), "student-kd": history(1, distilled=True)}, "unused.png")
    axes = figures[0].axes
    assert len(axes) == 3  # cross-entropy, distillation, accuracy
    for axis in axes:
        assert axis.get_xlim() == (0.5, 1.5) and list(axis.get_xticks()) == [1]
        assert all(line.get_marker() == "o" for line in axis.lines)  # one point per model stays visible


def test_training_curves_keep_the_kd_terms_apart_and_show_validation_accuracy(figures):
    plots.training_curves_png({"baseline": history(3, validation=True),
                               "student-kd": history(3, distilled=True, validation=True)}, "unused.png")
    cross_entropy, distillation, accuracy = figures[0].axes
    assert "cross-entropy" in cross_entropy.get_ylabel() and "distillation" in distillation.get_ylabel()
    baseline_line, kd_line = cross_entropy.lines
    np.testing.assert_allclose(kd_line.get_ydata(), 2.0 * 0.8 ** np.arange(1, 4))  # hard_loss, not the KD total
    np.testing.assert_allclose(baseline_line.get_ydata(), 2.3 * 0.8 ** np.arange(1, 4))
    (soft_line,) = distillation.lines
    np.testing.assert_allclose(soft_line.get_ydata(), 6.0 * 0.8 ** np.arange(1, 4))
    assert accuracy.get_ylabel() == "validation accuracy (%)"
    np.testing.assert_allclose(accuracy.lines[0].get_ydata(), 100 * (0.05 + 0.1 * np.arange(1, 4)))
    assert list(cross_entropy.get_xticks()) == [1, 2, 3]


def test_every_methods_terms_are_drawn_with_a_marker_per_term_and_a_key(figures):
    def logged(**terms):
        frame = history(3, validation=True)
        frame["hard_loss"] = frame["loss"]
        for term, scale in terms.items():
            frame[term] = scale * 0.8 ** frame["epoch"]
        return frame
    terms = ["inter_loss", "intra_loss", "nckd_loss", "soft_loss", "tckd_loss", "wttm_loss"]
    plots.training_curves_png({"kd": logged(soft_loss=6.0), "dkd": logged(tckd_loss=1.0, nckd_loss=8.0),
                               "dist": logged(inter_loss=0.5, intra_loss=0.7), "wttm": logged(wttm_loss=2.0)},
                              "unused.png", distillation_terms=terms)
    distillation = figures[0].axes[1]
    assert len(distillation.lines) == 6  # all six terms, none dropped
    kd_line = distillation.lines[0]
    np.testing.assert_allclose(kd_line.get_ydata(), 6.0 * 0.8 ** np.arange(1, 4))
    key = {text.get_text(): handle.get_marker()
           for text, handle in zip(distillation.get_legend().get_texts(), distillation.get_legend().legend_handles)}
    assert sorted(key) == sorted(terms) and len(set(key.values())) == 6
    assert kd_line.get_marker() == key["soft_loss"]
    assert distillation.get_ylabel() == "training distillation loss (marker: term)"


def test_without_distilled_models_there_is_no_distillation_panel(figures):
    plots.training_curves_png({"baseline": history(2)}, "unused.png")
    assert [axis.get_ylabel() for axis in figures[0].axes] == ["training cross-entropy on the labels",
                                                                "training accuracy (%)"]


def test_thirty_cost_points_get_numbers_that_do_not_overlap_and_a_key(figures):
    table = cost_table(30)
    plots.accuracy_vs_cost_png(table, "unused.png")
    figure = figures[0]
    figure.canvas.draw()  # the final layout, as saving draws it
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        labels = [text for text in axis.texts if text.get_text().isdigit()]
        assert sorted(int(text.get_text()) for text in labels) == list(range(1, 31))
        boxes = [Text.get_window_extent(text, renderer) for text in labels]  # the text alone, not its leader line
        overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(enumerate(boxes), 2)
                       if box_a.overlaps(box_b)]
        assert not overlapping, [(labels[a].get_text(), labels[b].get_text()) for a, b in overlapping]
        inside = axis.get_window_extent(renderer)
        assert all(inside.y0 - 1 <= box.y0 and box.y1 <= inside.y1 + 1 for box in boxes)
    key = [text.get_text() for text in figure.legends[0].get_texts()]
    assert key[0] == "1  model-0" and key[-1] == "30  model-29"


def test_large_confusion_matrices_drop_cell_counts_and_class_names(figures):
    confusion = pd.DataFrame(np.eye(100, dtype=int) * 10 + 1)
    plots.confusion_matrix_png(confusion, "100 classes", "unused.png")
    axis = figures[0].axes[0]
    assert not axis.texts and [t.get_text() for t in axis.get_xticklabels()][:2] == ["0", "10"]
    plots.confusion_matrix_png(pd.DataFrame(np.eye(10, dtype=int) * 10 + 1), "10 classes", "unused.png")
    assert len(figures[1].axes[0].texts) == 100


def test_top_confused_pairs_lists_the_largest_mistakes_first():
    confusion = pd.DataFrame([[50, 3, 7], [0, 40, 10], [2, 7, 30]], index=["cat", "dog", "car"],
                             columns=["cat", "dog", "car"])
    pairs = plots.top_confused_pairs(confusion, k=3)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [["dog", "car", 10], ["cat", "car", 7],
                                                                      ["car", "dog", 7]]
    assert pairs["share_of_true"].tolist() == pytest.approx([10 / 50, 7 / 60, 7 / 39])
    assert len(plots.top_confused_pairs(confusion, k=10)) == 5  # zero cells are not mistakes


def test_heat_map_labels_default_to_the_grid_axis_names(figures):
    runs = pd.DataFrame({"alpha": [0.3, 0.3, 0.5, 0.5], "temperature": [4, 7, 4, 7], "val": [0.5, 0.6, 0.55, 0.62]})
    grid = runs.pivot_table(index="alpha", columns="temperature", values="val")
    plots.sweep_heatmap_png({"frozen": grid}, {}, "unused.png")
    axis = figures[0].axes[0]
    assert (axis.get_ylabel(), axis.get_xlabel()) == ("alpha", "temperature") and not axis.patches
