import numpy as np
import pytest
from scipy import stats as scipy_stats

from kdbench import stats


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
    # p = 0.0625 > 0.05, so the exact interval reaches past 0; b is never the better one, so its top is the
    # observed difference (every discordant image already favours a)
    assert result["ci_low"] < 0 < result["ci_high"] == pytest.approx(0.25)


@pytest.mark.parametrize("pooled", [False, True])
def test_paired_interval_excludes_zero_exactly_when_mcnemar_rejects(pooled):
    # every split of up to 40 discordant images among 60 paired ones: the interval and the test never disagree
    # (a normal-approximation interval does, e.g. 7 against 1: p = 0.07 with the interval above 0)
    for discordant in range(41):
        for only_a in range(discordant + 1):
            correct_a = np.zeros(60, bool)
            correct_b = np.zeros(60, bool)
            correct_a[:only_a] = True
            correct_b[only_a:discordant] = True
            if pooled:
                result = stats.pooled_mcnemar([(correct_a[:30], correct_b[:30]), (correct_a[30:], correct_b[30:])])
            else:
                result = stats.paired_comparison(correct_a, correct_b)
            excludes_zero = result["ci_low"] > 0 or result["ci_high"] < 0
            assert excludes_zero == (result["p_value"] < 0.05), (only_a, discordant - only_a, result)
            assert result["ci_low"] <= result["difference"] <= result["ci_high"]


def test_paired_interval_maps_clopper_pearson_onto_the_difference():
    result = stats.mcnemar_interval(12, 4, 100)
    pi = scipy_stats.binomtest(12, 16).proportion_ci(0.95, method="exact")
    assert result["difference"] == pytest.approx(0.08)
    assert result["ci_low"] == pytest.approx(0.16 * (2 * pi.low - 1))
    assert result["ci_high"] == pytest.approx(0.16 * (2 * pi.high - 1))
    no_discordant = stats.mcnemar_interval(0, 0, 50)
    assert (no_discordant["ci_low"], no_discordant["ci_high"], no_discordant["p_value"]) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="sum to at most"):
        stats.mcnemar_interval(30, 30, 50)


def test_describe_says_significant_or_not():
    significant = {"test": "t", "difference": 0.021, "ci_low": 0.005, "ci_high": 0.037, "p_value": 0.01}
    assert stats.describe(significant) == "+2.10 points, 95% CI [+0.50, +3.70], t, p = 0.01: significant at 0.05"
    assert "not significant at 0.05" in stats.describe({**significant, "p_value": 0.2})


# Paired comparisons over seeds -------------------------------------------------------------------------

METHOD = [0.412, 0.398, 0.455, 0.371, 0.430]
BASELINE = [0.401, 0.395, 0.431, 0.362, 0.425]  # shares each seed's luck with METHOD: pairing should see it


def test_paired_seed_comparison_matches_the_paired_t_formula():
    d = np.array(METHOD) - np.array(BASELINE)
    n, mean, sd = len(d), d.mean(), d.std(ddof=1)
    t = mean / (sd / np.sqrt(n))
    half = scipy_stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    result = stats.paired_seed_comparison(METHOD, BASELINE)
    assert result["difference"] == pytest.approx(mean)
    assert result["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), n - 1))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert result["n"] == 5 and result["diff_std"] == pytest.approx(sd)
    assert result["test"] == "paired t-test over 5 seeds"


def test_pairing_removes_the_seed_noise_that_welch_keeps():
    paired, welch = stats.paired_seed_comparison(METHOD, BASELINE), stats.welch_comparison(METHOD, BASELINE)
    assert paired["difference"] == pytest.approx(welch["difference"])
    assert paired["p_value"] < 0.05 < welch["p_value"]
    assert paired["ci_high"] - paired["ci_low"] < (welch["ci_high"] - welch["ci_low"]) / 3


def test_wilcoxon_check_is_the_exact_signed_rank_p():
    # differences +1, -2, +3, +4, +5 points: ranks 1..5, W- = 2; P(W <= 2) counts the subsets {}, {1}, {2}
    # of {1..5} out of 2^5, so the exact two-sided p is 2 * 3 / 32
    result = stats.paired_seed_comparison([0.51, 0.48, 0.53, 0.54, 0.55], [0.5] * 5)
    assert result["wilcoxon_p"] == pytest.approx(2 * 3 / 32)
    assert any("cannot go below p = 0.0625" in note for note in result["notes"])
    all_up = stats.paired_seed_comparison([0.51, 0.52, 0.53, 0.54, 0.55, 0.56], [0.5] * 6)
    assert all_up["wilcoxon_p"] == pytest.approx(2 / 2 ** 6) and all_up["notes"] == []


def test_identical_runs_and_constant_differences_are_flagged_not_tested():
    same = stats.paired_seed_comparison([0.4, 0.5, 0.6], [0.4, 0.5, 0.6])
    assert same["difference"] == 0 and same["p_value"] == 1.0
    assert np.isnan(same["wilcoxon_p"]) and np.isnan(same["mdd"])
    shifted = stats.paired_seed_comparison([0.41, 0.42], [0.40, 0.41])  # 0.41 - 0.40 is not exactly 0.01
    assert np.isnan(shifted["p_value"]) and np.isnan(shifted["mdd"])
    assert "no test possible" in stats.describe(shifted)


def test_paired_seed_comparison_refuses_what_it_cannot_pair():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.paired_seed_comparison([0.4], [0.3])
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_seed_comparison([0.4, 0.5], [0.3, 0.4, 0.5])


def simulated_power(delta: float, sd: float, n: int, trials: int = 40_000) -> float:
    """Share of paired t-tests (written out with numpy) that reject when the true mean difference is delta."""
    diffs = np.random.default_rng(0).normal(delta, sd, size=(trials, n))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / np.sqrt(n))
    return float(np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, n - 1)))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_minimum_detectable_difference_has_80_percent_power(n):
    mdd = stats.minimum_detectable_difference(0.02, n)
    assert simulated_power(mdd, 0.02, n) == pytest.approx(0.8, abs=0.01)
    assert simulated_power(0.8 * mdd, 0.02, n) < 0.75  # and it is the smallest such difference


def test_minimum_detectable_difference_against_known_values():
    # the normal approximation (z_.975 + z_.8) * sd / sqrt(n) is too optimistic at few seeds, right at many
    normal = (scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)) / np.sqrt(np.array([5, 400]))
    assert stats.minimum_detectable_difference(1.0, 5) > 1.3 * normal[0]
    assert stats.minimum_detectable_difference(1.0, 400) == pytest.approx(normal[1], rel=0.01)
    assert stats.minimum_detectable_difference(1.0, 5) == pytest.approx(1.68, abs=0.01)  # G*Power: dz = 1.68
    assert stats.minimum_detectable_difference(2.0, 5) == pytest.approx(2 * stats.minimum_detectable_difference(1.0, 5))


def test_minimum_detectable_difference_is_nan_without_a_spread():
    assert np.isnan(stats.minimum_detectable_difference(0.02, 1))
    assert np.isnan(stats.minimum_detectable_difference(0.0, 5))
    assert np.isnan(stats.minimum_detectable_difference(float("nan"), 5))


def test_paired_result_carries_its_minimum_detectable_difference():
    result = stats.paired_seed_comparison(METHOD, BASELINE)
    assert result["mdd"] == pytest.approx(stats.minimum_detectable_difference(result["diff_std"], 5))


def test_pooled_mcnemar_sums_discordant_images_over_seeds():
    seed_1 = (np.array([1, 1, 1, 1, 0, 1, 0, 0], bool), np.array([0, 0, 0, 1, 1, 1, 0, 0], bool))  # 3 vs 1
    seed_2 = (np.array([1, 1, 1, 1, 0, 0, 0, 0], bool), np.array([0, 0, 0, 0, 0, 0, 0, 0], bool))  # 4 vs 0
    result = stats.pooled_mcnemar([seed_1, seed_2])
    assert (result["only_a"], result["only_b"], result["n"]) == (7, 1, 2)
    assert result["p_value"] == pytest.approx(2 * (1 + 8) / 2 ** 8)  # binomial(8, 0.5): P(X <= 1), two-sided
    assert result["difference"] == pytest.approx((7 - 1) / 16)
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert stats.paired_comparison(*seed_1)["p_value"] == pytest.approx(2 * (1 + 4) / 16)  # one seed: 3 vs 1


def test_pooled_mcnemar_rejects_mismatched_seeds():
    with pytest.raises(ValueError, match="same test images"):
        stats.pooled_mcnemar([(np.ones(4, bool), np.ones(5, bool))])


def test_describe_gives_the_paired_verdict_with_its_sharpness():
    comparison = {"test": "paired t-test over 5 seeds", "difference": 0.012, "ci_low": -0.004, "ci_high": 0.028,
                  "p_value": 0.12, "wilcoxon_p": 0.19, "mdd": 0.021, "power": 0.8, "n": 5, "notes": []}
    assert stats.describe(comparison) == (
        "+1.20 points, 95% CI [-0.40, +2.80], paired t-test over 5 seeds, p = 0.12 (Wilcoxon p = 0.19): "
        "not significant at 0.05; with these 5 seeds only a difference of ±2.1 points or more would be "
        "detected with 80% power")
    assert stats.describe({**comparison, "notes": ["a note"]}).endswith("80% power; a note")


# Degenerate-model warnings -----------------------------------------------------------------------------

def predictions_with_share(share: float, n: int = 500, num_classes: int = 10) -> np.ndarray:
    top = int(round(share * n))
    return np.concatenate([np.full(top, 3), np.arange(n - top) % (num_classes - 1) + 4]) % num_classes


# (top-class share, test loss, fit's training loss, inference-mode training loss) measured by
# benchmarks/collapse.py (docs/results.md): kdbench's ResNet18 at momentum 0.99, the same weights with
# BatchNorm momentum 0.9, and the notebook's code under Keras 3 (no BatchNorm in training mode)
COLLAPSED = [(0.800, 8.158, 0.421, 6.264), (0.320, 4.713, 0.513, 3.154), (0.450, 3.630, 0.452, 2.515),
             (0.658, 6.354, 0.416, 4.457), (0.500, 8.151, 0.446, 7.262)]
HEALTHY = [(0.184, 3.124, 0.421, 0.397), (0.204, 3.159, 0.513, 0.671), (0.238, 2.656, 0.452, 0.635),
           (0.258, 3.214, 0.416, 0.589), (0.230, 3.199, 0.446, 0.712), (0.358, 2.087, 2.071, 1.881)]


@pytest.mark.parametrize("share, test_loss, train_loss, train_eval_loss", COLLAPSED)
def test_every_measured_collapse_is_warned_about(share, test_loss, train_loss, train_eval_loss):
    assert stats.degenerate_warnings(predictions_with_share(share), test_loss, train_loss, 10, train_eval_loss)
    # the inference-mode training loss alone catches each of them
    assert any("own training images" in w for w in stats.degenerate_warnings(
        predictions_with_share(0.1), 1.0, train_loss, 10, train_eval_loss))


@pytest.mark.parametrize("share, test_loss, train_loss, train_eval_loss", HEALTHY)
def test_no_warning_for_the_measured_healthy_models(share, test_loss, train_loss, train_eval_loss):
    assert stats.degenerate_warnings(predictions_with_share(share), test_loss, train_loss, 10, train_eval_loss) == []


def test_one_class_warning_names_the_class_and_share():
    warnings = stats.degenerate_warnings(predictions_with_share(0.8), 2.0, 1.9, 10)
    assert len(warnings) == 1 and "class 3 for 80 % of the 500 test images" in warnings[0]
    assert stats.degenerate_warnings(predictions_with_share(0.39), 2.0, 1.9, 10) == []
    assert stats.degenerate_warnings(predictions_with_share(0.41), 2.0, 1.9, 10) != []
    two_classes = np.array([0] * 65 + [1] * 35)  # limit for K = 2 is 1/2 + 1/6 = 67 %
    assert stats.degenerate_warnings(two_classes, 0.6, 0.5, 2) == []
    logits = np.eye(10)[np.zeros(100, int)]  # (N, K) scores are reduced to their argmax
    assert "class 0 for 100 %" in stats.degenerate_warnings(logits, 2.0, 1.9, 10)[0]


def test_loss_warning_needs_both_a_bad_loss_and_a_gap_to_training():
    balanced = predictions_with_share(0.1)
    assert "test loss 6.00" in stats.degenerate_warnings(balanced, 6.0, 0.5, 10)[0]
    assert "test loss 6.00" in stats.degenerate_warnings(balanced, 6.0, None, 10)[0]
    assert stats.degenerate_warnings(balanced, 6.0, 2.0, 10) == []  # bad on training images too: not a gap
    assert stats.degenerate_warnings(balanced, 4.0, 0.1, 10) == []  # overfit, but below 2 ln 10 = 4.61
    assert "not finite" in stats.degenerate_warnings(balanced, float("nan"), 0.5, 10)[0]
