import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from kdbench import stats
from kdbench.sweep import select_settings, validation_grid


def test_welch_comparison_matches_closed_form():
    a, b = [0.61, 0.62, 0.63], [0.64, 0.65, 0.66]
    result = stats.welch_comparison(a, b)
    se = np.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3)  # equal variances here, so df = 4
    t = -0.03 / se
    assert result["difference"] == pytest.approx(-0.03)
    assert result["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), df=4))
    half = scipy_stats.t.ppf(0.975, df=4) * se
    assert result["ci_low"] == pytest.approx(-0.03 - half) and result["ci_high"] == pytest.approx(-0.03 + half)


def test_paired_comparison_counts_discordant_images():
    correct_a = np.array([1] * 10 + [0] * 10, bool)
    correct_b = np.array([1] * 5 + [0] * 5 + [0] * 10, bool)  # a right and b wrong on 5 images, never the reverse
    result = stats.paired_comparison(correct_a, correct_b)
    assert result["difference"] == pytest.approx(5 / 20)
    assert result["p_value"] == pytest.approx(2 * 0.5 ** 5)  # exact McNemar: binomial(5, 0.5), two-sided
    assert result["ci_low"] < 0.25 < result["ci_high"]


def test_describe_says_significant_or_not():
    significant = {"test": "t", "difference": 0.021, "ci_low": 0.005, "ci_high": 0.037, "p_value": 0.01}
    assert stats.describe(significant) == "+2.10 points, 95% CI [+0.50, +3.70], t, p = 0.01: significant at 0.05"
    assert "not significant at 0.05" in stats.describe({**significant, "p_value": 0.2})


def sweep_runs():
    rows = []
    for seed in (0, 1):
        for alpha, temperature, val, test in [(0.1, 2.0, 0.50, 0.70), (0.3, 7.0, 0.55, 0.52), (0.5, 4.0, 0.54, 0.80)]:
            rows.append({"kind": "student-kd", "teacher": "frozen", "alpha": alpha, "temperature": temperature,
                         "seed": seed, "val_accuracy": val + 0.01 * seed, "test_accuracy": test})
        rows.append({"kind": "student-kd", "teacher": "finetuned", "alpha": 0.9, "temperature": 1.0, "seed": seed,
                     "val_accuracy": 0.4, "test_accuracy": 0.4})
    rows.append({"kind": "student-baseline", "teacher": None, "alpha": None, "temperature": None, "seed": 0,
                 "val_accuracy": 0.99, "test_accuracy": 0.99})
    return pd.DataFrame(rows)


def test_selection_uses_validation_and_ignores_test():
    selected = select_settings(sweep_runs())
    assert selected == {"frozen": (0.3, 7.0), "finetuned": (0.9, 1.0)}  # test accuracy favours (0.5, 4)


def test_selection_breaks_ties_towards_smaller_alpha():
    runs = pd.DataFrame([{"kind": "student-kd", "teacher": "frozen", "alpha": a, "temperature": 2.0, "seed": 0,
                          "val_accuracy": 0.5, "test_accuracy": t} for a, t in [(0.5, 0.9), (0.1, 0.1)]])
    assert select_settings(runs) == {"frozen": (0.1, 2.0)}


def test_validation_grid_averages_seeds():
    grid = validation_grid(sweep_runs(), "frozen")
    assert list(grid.index) == [0.1, 0.3, 0.5] and list(grid.columns) == [2.0, 4.0, 7.0]
    assert grid.loc[0.3, 7.0] == pytest.approx(0.555)
    assert np.isnan(grid.loc[0.1, 7.0])
