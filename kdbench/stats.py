"""Is a distilled student really better than the baseline? Differences with confidence intervals and tests."""

from __future__ import annotations

import numpy as np
from scipy import stats


def welch_comparison(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """Mean of a minus mean of b over independent seeds, Welch's t-test and its confidence interval."""
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return {"test": f"Welch's t-test over seeds (n={len(a)} vs {len(b)})",
            "difference": float(np.mean(a) - np.mean(b)), "ci_low": float(interval.low),
            "ci_high": float(interval.high), "p_value": float(result.pvalue)}


def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95) -> dict:
    """Accuracy of a minus b on the same test images: exact McNemar test and a normal-approximation CI.

    For a single seed, where seed-to-seed variation cannot be estimated, this asks only whether the two
    trained models differ on this test set.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    per_image = correct_a.astype(float) - correct_b.astype(float)
    difference = float(per_image.mean())
    half_width = stats.norm.ppf(0.5 + confidence / 2) * per_image.std(ddof=1) / np.sqrt(len(per_image))
    p_value = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"test": f"exact McNemar test over {len(per_image)} paired test images (one seed)",
            "difference": difference, "ci_low": difference - half_width, "ci_high": difference + half_width,
            "p_value": float(p_value)}


def describe(comparison: dict, confidence: float = 0.95, level: float = 0.05) -> str:
    """One sentence: '+2.10 points, 95% CI [+0.50, +3.70], Welch's ..., p = 0.030: significant at 0.05'."""
    verdict = "significant" if comparison["p_value"] < level else "not significant"
    return (f"{100 * comparison['difference']:+.2f} points, {100 * confidence:.0f}% CI "
            f"[{100 * comparison['ci_low']:+.2f}, {100 * comparison['ci_high']:+.2f}], {comparison['test']}, "
            f"p = {comparison['p_value']:.3g}: {verdict} at {level:g}")
