"""Is a distilled student really better than the baseline? Differences with confidence intervals and tests."""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

ZERO_SPREAD = 1e-12  # a std of accuracy differences below this is floating-point noise (0.41 - 0.40 != 0.01)


def welch_comparison(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """Mean of a minus mean of b over independent seeds, Welch's t-test and its confidence interval."""
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return {"test": f"Welch's t-test over seeds (n={len(a)} vs {len(b)})",
            "difference": float(np.mean(a) - np.mean(b)), "ci_low": float(interval.low),
            "ci_high": float(interval.high), "p_value": float(result.pvalue)}


def mcnemar_interval(only_a: int, only_b: int, total: int, confidence: float = 0.95) -> dict:
    """Accuracy of a minus b from paired counts: exact McNemar test and the interval that inverts it.

    only_a / only_b: the images only a / only b gets right (the discordant pairs); total: every paired
    image, N. Given the n = only_a + only_b discordant images, only_a ~ Binomial(n, pi), and the exact
    McNemar test is the two-sided binomial test of pi = 1/2: p = min(1, 2 * the smaller tail). The
    Clopper-Pearson interval for pi inverts that equal-tailed test, and the accuracy difference is
    (only_a - only_b) / N = (n / N) * (2 pi - 1), so mapping the interval through it gives an interval for
    the difference that excludes 0 exactly when p < 1 - confidence. (A normal-approximation interval on the
    per-image differences can exclude 0 beside p = 0.125.) It is conditional: the share of discordant
    images, n / N, is taken as observed, so only the split of the discordant images is uncertain; with no
    discordant image it is [0, 0], with p = 1.
    """
    if min(only_a, only_b) < 0 or only_a + only_b > total:
        raise ValueError(f"discordant counts {only_a} and {only_b} must be >= 0 and sum to at most the "
                         f"{total} paired images")
    discordant = only_a + only_b
    difference = (only_a - only_b) / total if total else 0.0
    if discordant == 0:
        return {"difference": difference, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "discordant": 0,
                "notes": ["the two models get exactly the same test images right: no discordant image, "
                          "so the interval conditional on them is [0, 0]"]}
    result = stats.binomtest(only_a, discordant, 0.5)
    pi = result.proportion_ci(confidence, method="exact")  # Clopper-Pearson
    share = discordant / total
    return {"difference": difference, "ci_low": float(share * (2 * pi.low - 1)),
            "ci_high": float(share * (2 * pi.high - 1)), "p_value": float(result.pvalue),
            "discordant": discordant, "notes": []}


def _interval_wording(discordant: int) -> str:
    return (f"exact CI from it (Clopper-Pearson, given the {discordant} images only one of the two gets right)"
            if discordant else "no discordant image")


def paired_comparison(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95) -> dict:
    """Accuracy of a minus b on the same test images: exact McNemar test and the exact interval that inverts
    it (mcnemar_interval: Clopper-Pearson given the discordant images), so the two never disagree.

    For a single seed, where seed-to-seed variation cannot be estimated, this asks only whether the two
    trained models differ on this test set.
    """
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"the two correctness arrays differ in shape: {correct_a.shape} and {correct_b.shape}; "
                         "both must cover the same test images")
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    result = mcnemar_interval(only_a, only_b, len(correct_a), confidence)
    return {"test": f"exact McNemar test over {len(correct_a)} paired test images (one seed; "
                    f"{_interval_wording(result['discordant'])})", **result, "only_a": only_a, "only_b": only_b}


def describe(comparison: dict, confidence: float = 0.95, level: float = 0.05) -> str:
    """One sentence a reader can act on: the difference, its CI, the test and, for paired seeds, how sharp it is.

    '+2.10 points, 95% CI [+0.50, +3.70], Welch's ..., p = 0.030: significant at 0.05'; a paired comparison
    adds the Wilcoxon p after the t-test's and ends with the minimum detectable difference, e.g.
    '...; with these 5 seeds only a difference of ±2.1 points or more would be detected with 80% power'.
    """
    p_value = comparison["p_value"]
    if np.isnan(p_value):
        verdict = "no test possible"
    else:
        verdict = f"{'significant' if p_value < level else 'not significant'} at {level:g}"
    text = (f"{100 * comparison['difference']:+.2f} points, {100 * confidence:.0f}% CI "
            f"[{100 * comparison['ci_low']:+.2f}, {100 * comparison['ci_high']:+.2f}], {comparison['test']}, "
            f"p = {p_value:.3g}")
    if "wilcoxon_p" in comparison:
        wilcoxon_p = comparison["wilcoxon_p"]
        text += " (Wilcoxon undefined)" if np.isnan(wilcoxon_p) else f" (Wilcoxon p = {wilcoxon_p:.3g})"
    text += f": {verdict}"
    if "mdd" in comparison:
        seeds = f"{comparison['n']} seeds"
        if np.isfinite(comparison["mdd"]):
            text += (f"; with these {seeds} only a difference of ±{100 * comparison['mdd']:.1f} points or more "
                     f"would be detected with {100 * comparison.get('power', 0.8):.0f}% power")
        else:
            text += f"; the paired differences of these {seeds} show no spread, so no detectable difference is given"
    notes = comparison.get("notes") or []
    return text + "".join(f"; {note}" for note in notes)


def minimum_detectable_difference(diff_std: float, n: int, power: float = 0.8, level: float = 0.05) -> float:
    """How small a true mean paired difference n seeds can resolve: the answer every verdict is judged by.

    The smallest delta > 0 at which a two-sided paired t-test at `level` over n pairs rejects with
    probability `power`, given the standard deviation s of the paired differences:
        power = P(T > t*) + P(T < -t*),  T ~ noncentral t(df = n - 1, nc = delta * sqrt(n) / s),
        t* = t_{1 - level/2, n - 1},
    solved exactly for delta (scipy.stats.nct, brentq), not by the normal approximation
    (z_{1-level/2} + z_{power}) * s / sqrt(n), which is too optimistic at a handful of seeds.
    Same unit as diff_std. nan when n < 2 or diff_std is not a finite number above ZERO_SPREAD (with no
    measured spread there is no basis for a power statement, so none is made).
    """
    if n < 2 or not np.isfinite(diff_std) or diff_std <= ZERO_SPREAD:
        return float("nan")
    if not level < power < 1:
        raise ValueError(f"power is {power}; it must lie between the level ({level}) and 1")
    df, critical = n - 1, stats.t.ppf(1 - level / 2, n - 1)

    def shortfall(effect: float) -> float:  # effect = delta / s
        nc = effect * np.sqrt(n)
        # P(T < -t*) written as the upper tail of T with -nc: scipy's nct.cdf returns nan far in that tail
        return stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc) - power

    upper = 1.0
    while shortfall(upper) < 0:  # power grows with the effect; widen until the root is bracketed
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-10) * diff_std)


def paired_seed_comparison(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """Method minus baseline seed by seed (same initial weights and batches): seed noise cancels in the pairs.

    a[i] and b[i] are the accuracies of the method and the baseline for the same seed. Paired t-test with
    the confidence interval of the mean paired difference; the Wilcoxon signed-rank test (zero differences
    dropped) as a check that does not assume normal differences; the minimum detectable difference at
    80% power (two-sided 0.05) from the observed std of the differences. `notes` says when a test is
    degenerate (identical differences, or too few nonzero differences for Wilcoxon to reach p < 0.05).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired accuracies need one value per seed on both sides; got {a.shape} and {b.shape}")
    n = len(a)
    if n < 2:
        raise ValueError(f"a paired test over seeds needs at least 2 seeds, got {n}; "
                         "with one seed use paired_comparison (McNemar on the test images)")
    diff = a - b
    mean, diff_std = float(diff.mean()), float(diff.std(ddof=1))
    notes = []
    if diff_std <= ZERO_SPREAD:  # the t statistic is 0/0 or x/0: report the degenerate case plainly
        p_value, ci_low, ci_high = (1.0 if mean == 0 else float("nan")), mean, mean
        notes.append("every paired difference is zero: the two sides are identical" if mean == 0 else
                     "all paired differences are equal: the t-test is undefined (zero spread)")
    else:
        result = stats.ttest_rel(a, b)
        interval = result.confidence_interval(confidence)
        p_value, ci_low, ci_high = float(result.pvalue), float(interval.low), float(interval.high)
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        wilcoxon_p = float("nan")
        notes.append("Wilcoxon undefined: every paired difference is zero")
    else:
        wilcoxon_p = float(stats.wilcoxon(diff).pvalue)
        if nonzero < 6:
            notes.append(f"Wilcoxon over {nonzero} nonzero differences cannot go below p = "
                         f"{2 / 2 ** nonzero:.3g}, so it cannot confirm significance at 0.05")
    return {"test": f"paired t-test over {n} seeds", "difference": mean, "ci_low": ci_low, "ci_high": ci_high,
            "p_value": p_value, "wilcoxon_p": wilcoxon_p, "mdd": minimum_detectable_difference(diff_std, n),
            "power": 0.8, "n": n, "diff_std": diff_std, "notes": notes}


def pooled_mcnemar(correct_pairs: list[tuple[np.ndarray, np.ndarray]], confidence: float = 0.95) -> dict:
    """McNemar over every seed's test images at once, for when there are too few seeds for a test over seeds.

    Each pair holds per-image correctness of the method and of the baseline for one seed. Discordant
    counts (method right and baseline wrong, and the reverse) are summed over seeds and tested with the
    exact binomial test; the interval is the one that inverts it (mcnemar_interval: Clopper-Pearson given
    the discordant predictions). Both treat every (seed, image) pair as independent, so they ignore
    seed-to-seed variation: they say whether these trained models differ, not whether the method does.
    """
    if not correct_pairs:
        raise ValueError("pooled_mcnemar needs at least one seed's (method, baseline) correctness arrays")
    total, only_a, only_b = 0, 0, 0
    for correct_a, correct_b in correct_pairs:
        correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
        if correct_a.shape != correct_b.shape:
            raise ValueError(f"a seed's two correctness arrays differ in shape: {correct_a.shape} and "
                             f"{correct_b.shape}; both must cover the same test images")
        only_a += int(np.sum(correct_a & ~correct_b))
        only_b += int(np.sum(~correct_a & correct_b))
        total += len(correct_a)
    result = mcnemar_interval(only_a, only_b, total, confidence)
    return {"test": f"exact McNemar test pooled over {len(correct_pairs)} seeds ({total} paired predictions; "
                    f"{_interval_wording(result['discordant'])})", **result, "n": len(correct_pairs),
            "only_a": only_a, "only_b": only_b}


ONE_CLASS_MARGIN = 1 / 3  # warn when one class takes more than 1/K + (1 - 1/K) / 3 of the predictions (40 % at K = 10)
LOSS_OVER_UNIFORM = 2.0  # ... or the test loss exceeds twice a uniform guess's, ln K
LOSS_OVER_TRAIN = 5.0  # ... and 5x the training loss
EVAL_OVER_TRAIN = 2.0  # ... or the training images, scored in inference mode, lose 2x what fit logged


def degenerate_warnings(predictions: np.ndarray, test_loss: float, train_loss: float | None, num_classes: int,
                        train_eval_loss: float | None = None) -> list[str]:
    """Say when an accuracy is not a measurement of what a model learned, so the summary warns instead of testing.

    predictions: predicted class per test image (or a (N, K) array of logits/probabilities). train_loss:
    the last epoch's training loss as fit logs it (training-mode BatchNorm); train_eval_loss, optional:
    the loss on training images in inference mode, as the test set is scored. Thresholds are calibrated
    on the collapse benchmark (docs/results.md, "Why the baseline collapsed": ResNet18, 1,000 CIFAR-10
    images, 64 px, 3 epochs, 5 seeds). Healthy models there put at most 26 % of predictions on one class,
    had a test loss of at most 3.2 nats (up to 7.7x the training loss: overfitting alone) and an
    inference-mode training loss at most 1.6x fit's; the collapsed ones put 32-80 % on one class, had a
    test loss of 3.6-8.2 (8-19x) and an inference-mode training loss 5.6-16x fit's. A warning is given when
    - one class takes more than 1/K + (1 - 1/K) * ONE_CLASS_MARGIN of the predictions (40 % for K = 10);
    - the test loss is above LOSS_OVER_UNIFORM * ln K (a uniform guess scores ln K; 4.6 for K = 10) and
      above LOSS_OVER_TRAIN times the training loss (the ratio alone cannot tell overfitting from collapse);
    - the inference-mode training loss is above EVAL_OVER_TRAIN times fit's and 0.5 nats more: the model
      does not recognise its own training images once BatchNorm uses its moving statistics (the sharpest
      sign: it flagged all 5 collapsed runs and none of the 10 others);
    - the test loss is not finite.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)
    warnings = []
    counts = np.bincount(predictions.astype(int), minlength=num_classes)
    top, share = int(counts.argmax()), counts.max() / max(len(predictions), 1)
    share_limit = 1 / num_classes + (1 - 1 / num_classes) * ONE_CLASS_MARGIN
    if share > share_limit:
        warnings.append(f"predicts class {top} for {100 * share:.0f} % of the {len(predictions)} test images "
                        f"(a balanced test set has {100 / num_classes:.0f} % per class; warning above "
                        f"{100 * share_limit:.0f} %): its accuracy does not measure what it learned")
    uniform_loss = float(np.log(num_classes))
    if not np.isfinite(test_loss):
        warnings.append(f"its test loss is {test_loss}, not finite: the model diverged or its outputs overflow")
    elif (test_loss > LOSS_OVER_UNIFORM * uniform_loss
          and (train_loss is None or test_loss > LOSS_OVER_TRAIN * train_loss)):
        versus_train = ("" if train_loss is None
                        else f", {test_loss / train_loss:.0f}x its training loss {train_loss:.2f}")
        warnings.append(f"its test loss {test_loss:.2f} is over {LOSS_OVER_UNIFORM:g}x that of a uniform guess "
                        f"(ln {num_classes} = {uniform_loss:.2f}){versus_train}: confidently wrong on the test set")
    if (train_eval_loss is not None and train_loss is not None and np.isfinite(train_eval_loss)
            and train_eval_loss > EVAL_OVER_TRAIN * train_loss and train_eval_loss > train_loss + 0.5):
        warnings.append(f"on its own training images it loses {train_eval_loss:.2f} in inference mode against "
                        f"{train_loss:.2f} during training: its BatchNorm moving statistics do not match the "
                        "batch statistics it trained with (too few steps for the BatchNorm momentum?)")
    return warnings
