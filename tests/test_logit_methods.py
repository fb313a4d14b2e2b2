"""The newer logit methods (dist, wttm, nkd) and logit standardisation (kd/dkd `standardize`): each loss against a
NumPy computation of its paper's formula on random logits, its edge cases, its config checks, and one Distiller
step on cached teacher logits."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kdbench.distill import Distiller, EpochCounter
from kdbench.methods import METHODS, dist, dkd, kd, nkd, setting_grid, settings_errors, wttm
from kdbench.runs import canonical_settings

from test_methods import _train, floats, np_dkd, np_kl, np_softmax

NEW = ("dist", "wttm", "nkd")

# (batch, classes, logit scale): several shapes, a two-class case and logits large enough to saturate a softmax
SHAPES = [(8, 10, 3.0), (32, 100, 2.0), (3, 2, 1.0), (16, 10, 30.0)]


def random_logits(seed, batch, classes, scale):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, classes, batch), rng.normal(0, scale, (batch, classes)).astype("float32"),
            rng.normal(0, scale, (batch, classes)).astype("float32"))


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_cross_entropy(labels, logits):
    return -np_log_softmax(logits.astype(np.float64))[np.arange(len(labels)), labels].mean()


# ---------------------------------------------------------------- NumPy references (float64, from the papers)


def np_standardize(z):
    """Sun et al.'s Z-score as the authors' code computes it: std over the classes with K - 1 (torch.std)."""
    z = z.astype(np.float64)
    return (z - z.mean(axis=-1, keepdims=True)) / (z.std(axis=-1, ddof=1, keepdims=True) + 1e-7)


def np_pearson_rows(a, b):
    return np.array([np.corrcoef(u, v)[0, 1] for u, v in zip(a, b)])


def np_dist(student, teacher, tau):
    """DIST's inter and intra terms before the weights: tau^2 * mean (1 - rho), rows then columns."""
    y_s, y_t = np_softmax(student.astype(np.float64) / tau), np_softmax(teacher.astype(np.float64) / tau)
    inter = (1 - np_pearson_rows(y_s, y_t)).mean()
    intra = (1 - np_pearson_rows(y_s.T, y_t.T)).mean()
    return tau ** 2 * inter, tau ** 2 * intra


def np_wttm(student, teacher, t):
    """mean over images of U_gamma(p) * KL(p^gamma / U_gamma(p) || q), gamma = 1/T, p and q at temperature 1."""
    p = np_softmax(teacher.astype(np.float64))
    powered = p ** (1.0 / t)
    u = powered.sum(axis=-1)
    transformed = powered / u[:, None]
    kl = (transformed * (np.log(transformed) - np_log_softmax(student.astype(np.float64)))).sum(axis=-1)
    return (u * kl).mean()


def np_nkd(labels, student, teacher, t, gamma):
    """The target term -t_y log s_y and the normalised non-target cross-entropy, written from the definitions:
    N(p)_i = p_i / (1 - p_y) over the non-target classes, p at temperature lambda."""
    rows = np.arange(len(labels))
    s, tt = np_softmax(student.astype(np.float64)), np_softmax(teacher.astype(np.float64))
    target = -(tt[rows, labels] * np.log(s[rows, labels])).mean()
    p_s, p_t = np_softmax(student.astype(np.float64) / t), np_softmax(teacher.astype(np.float64) / t)
    others = np.ones_like(p_s, dtype=bool)
    others[rows, labels] = False
    # 1 - p_y summed from the other classes' probabilities (no cancellation when p_y is near 1)
    n_s, n_t = (p[others].reshape(len(labels), -1) for p in (p_s, p_t))
    n_s, n_t = n_s / n_s.sum(axis=-1, keepdims=True), n_t / n_t.sum(axis=-1, keepdims=True)
    nontarget = -gamma * t ** 2 * (n_t * np.log(n_s)).sum(axis=-1).mean()
    return target, nontarget, n_t


# ---------------------------------------------------------------- declarations and config checks


def test_new_methods_are_registered_as_logit_methods():
    for name in NEW:
        assert METHODS[name].NEEDS == "logits" and METHODS[name].TERMS[0] == "hard"
        assert settings_errors(name, {}) == []


def test_standardize_leaves_existing_runs_settings_and_ids_unchanged():
    # an optional setting that the config does not name stays out of the run's settings (so out of its id)
    assert setting_grid("kd", {}) == [{"alpha": 0.3, "temperature": 7}]
    assert setting_grid("dkd", {"beta": 2.0}) == [{"alpha": 1.0, "beta": 2.0, "temperature": 4, "warmup": 1}]
    assert canonical_settings(setting_grid("kd", {})[0]) == '{"alpha": 0.3, "temperature": 7.0}'
    sweep = setting_grid("kd", {"standardize": [False, True], "temperature": 2})
    assert sweep == [{"alpha": 0.3, "temperature": 2, "standardize": False},
                     {"alpha": 0.3, "temperature": 2, "standardize": True}]


@pytest.mark.parametrize("name,settings,words", [
    ("dist", {"beta": -1}, "beta: -1 is less than the minimum of 0"),
    ("dist", {"temperature": 0}, "temperature: 0 is less than the minimum of 0.1"),
    ("dist", {"tau": 4}, "Additional properties are not allowed ('tau' was unexpected)"),
    ("wttm", {"beta": "big"}, "beta: 'big' is not of type 'number'"),
    ("wttm", {"temperature": [4, 0.01]}, "temperature[1]: 0.01 is less than the minimum of 0.1"),
    ("nkd", {"gamma": -0.5}, "gamma: -0.5 is less than the minimum of 0"),
    ("kd", {"standardize": "yes"}, "standardize: 'yes' is not of type 'boolean'"),
    ("dkd", {"standardize": 1}, "standardize: 1 is not of type 'boolean'"),
])
def test_bad_settings_are_refused_with_the_setting_named(name, settings, words):
    errors = settings_errors(name, settings)
    assert len(errors) == 1 and words in errors[0], errors


# ---------------------------------------------------------------- losses against the papers' formulas


@pytest.mark.parametrize("batch,classes,scale", SHAPES)
@pytest.mark.parametrize("beta,gamma,tau", [(1.0, 1.0, 4.0), (2.0, 0.5, 1.0)])
def test_dist_matches_the_paper(batch, classes, scale, beta, gamma, tau):
    labels, student, teacher = random_logits(batch + classes, batch, classes, scale)
    got = floats(dist.loss_terms({"beta": beta, "gamma": gamma, "temperature": tau}, labels, student, teacher))
    inter, intra = np_dist(student, teacher, tau)
    # float32 softmax outputs are centred before the correlation: an absolute floor for saturated logits
    np.testing.assert_allclose([got["hard"], got["inter"], got["intra"]],
                               [np_cross_entropy(labels, student), beta * inter, gamma * intra],
                               rtol=1e-4, atol=1e-5 * tau ** 2)


@pytest.mark.tensorflow
def test_dist_is_zero_for_identical_logits_and_finite_without_spread():
    tf = pytest.importorskip("tensorflow")  # gradients / casts taken with TensorFlow itself
    labels, student, _ = random_logits(1, 8, 10, 3.0)
    terms = floats(dist.loss_terms(setting_grid("dist", {})[0], labels, student, student))
    assert abs(terms["inter"]) < 1e-5 and abs(terms["intra"]) < 1e-5
    # the correlation ignores scale and shift of the probabilities, not of the logits: a sharper student is not 0
    sharper = floats(dist.loss_terms(setting_grid("dist", {})[0], labels, 2 * student, student))
    assert sharper["inter"] > 1e-3
    # one image: no spread across the batch, so the intra term is tau^2 * (1 - 0), with finite gradients
    one = tf.Variable(student[:1])
    with tf.GradientTape() as tape:
        terms = dist.loss_terms({"beta": 1.0, "gamma": 1.0, "temperature": 4.0}, labels[:1], one, student[1:2])
        total = terms["inter"] + terms["intra"]
    np.testing.assert_allclose(float(terms["intra"]), 16.0, rtol=1e-6)
    assert np.all(np.isfinite(tape.gradient(total, one).numpy()))


@pytest.mark.parametrize("batch,classes,scale", SHAPES)
@pytest.mark.parametrize("beta,t", [(1.0, 4.0), (3.0, 1.0), (0.5, 10.0)])
def test_wttm_matches_the_paper(batch, classes, scale, beta, t):
    labels, student, teacher = random_logits(batch * classes, batch, classes, scale)
    got = floats(wttm.loss_terms({"beta": beta, "temperature": t}, labels, student, teacher))
    np.testing.assert_allclose([got["hard"], got["wttm"]],
                               [np_cross_entropy(labels, student), beta * np_wttm(student, teacher, t)],
                               rtol=1e-4, atol=1e-6)


def test_wttm_minimum_is_the_student_at_the_teachers_transformed_logits():
    labels, _, teacher = random_logits(2, 8, 10, 3.0)
    t = 4.0
    # softmax(z_t / T) is the transformed teacher: a student with those logits matches it exactly
    assert abs(float(wttm.loss_terms({"beta": 1.0, "temperature": t}, labels, teacher / t, teacher)["wttm"])) < 1e-5
    assert float(wttm.loss_terms({"beta": 1.0, "temperature": t}, labels, teacher, teacher)["wttm"]) > 0.1
    # the power sum runs from 1 (one-hot teacher) to C^(1 - gamma) (uniform teacher)
    weights = keras.ops.convert_to_numpy(wttm.power_sum(np.array([[100.0, 0, 0, 0], [0, 0, 0, 0]], "float32"), 0.25))
    np.testing.assert_allclose(weights, [1.0, 4 ** 0.75], rtol=1e-5)
    # at T = 1 the weight is 1 and the term is Hinton's KL at temperature 1
    labels, student, teacher = random_logits(3, 8, 10, 3.0)
    got = float(wttm.loss_terms({"beta": 1.0, "temperature": 1.0}, labels, student, teacher)["wttm"])
    np.testing.assert_allclose(got, np_kl(np_softmax(teacher), np_softmax(student)).mean(), rtol=1e-5)


@pytest.mark.parametrize("batch,classes,scale", SHAPES)
@pytest.mark.parametrize("gamma,t", [(3.5, 3.0), (1.5, 1.0)])
def test_nkd_matches_the_paper(batch, classes, scale, gamma, t):
    labels, student, teacher = random_logits(batch + 2 * classes, batch, classes, scale)
    got = floats(nkd.loss_terms({"gamma": gamma, "temperature": t}, labels, student, teacher))
    target, nontarget, _ = np_nkd(labels, student, teacher, t, gamma)
    np.testing.assert_allclose([got["hard"], got["target"], got["nontarget"]],
                               [np_cross_entropy(labels, student), target, nontarget], rtol=1e-4, atol=1e-6)


def test_nkd_with_identical_logits_reaches_the_entropy_floor():
    labels, student, _ = random_logits(4, 8, 10, 3.0)
    gamma, t = 3.5, 3.0
    got = floats(nkd.loss_terms({"gamma": gamma, "temperature": t}, labels, student, student))
    _, _, n_t = np_nkd(labels, student, student, t, gamma)
    entropy = -(n_t * np.log(n_t)).sum(axis=-1).mean()
    np.testing.assert_allclose(got["nontarget"], gamma * t ** 2 * entropy, rtol=1e-5)  # Gibbs: the minimum
    p_y = np_softmax(student.astype(np.float64))[np.arange(8), labels]
    np.testing.assert_allclose(got["target"], -(p_y * np.log(p_y)).mean(), rtol=1e-5)
    moved = student.copy()
    moved[:, 0] += 2.0  # another non-target distribution for the images whose label is not 0
    assert float(nkd.loss_terms({"gamma": gamma, "temperature": t}, labels, moved, student)["nontarget"]) > \
        got["nontarget"] + 1e-3
    # two classes: one non-target class, whose normalised distribution is [1], so the term is 0
    two = floats(nkd.loss_terms({"gamma": gamma, "temperature": t}, *random_logits(5, 6, 2, 3.0)))
    assert abs(two["nontarget"]) < 1e-6


@pytest.mark.parametrize("batch,classes,scale", SHAPES)
def test_standardized_kd_and_dkd_match_the_paper(batch, classes, scale):
    labels, student, teacher = random_logits(7 * batch, batch, classes, scale)
    z_s, z_t = np_standardize(student), np_standardize(teacher)
    for alpha, t in [(0.3, 7.0), (0.1, 2.0)]:
        got = floats(kd.loss_terms({"alpha": alpha, "temperature": t, "standardize": True}, labels, student, teacher))
        soft = (1 - alpha) * t ** 2 * np_kl(np_softmax(z_t / t), np_softmax(z_s / t)).mean()
        np.testing.assert_allclose([got["hard"], got["soft"]],
                                   [alpha * np_cross_entropy(labels, student), soft], rtol=1e-4)
    settings = {"alpha": 1.0, "beta": 8.0, "temperature": 2.0, "warmup": 0, "standardize": True}
    got = floats(dkd.loss_terms(settings, labels, student, teacher))
    tckd, nckd = np_dkd(labels, z_s, z_t, 2.0)
    np.testing.assert_allclose([got["hard"], got["tckd"], got["nckd"]],
                               [np_cross_entropy(labels, student), 4.0 * tckd.mean(), 8.0 * 4.0 * nckd.mean()],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.tensorflow
def test_standardize_off_is_the_unchanged_loss_and_on_ignores_logit_scale_and_shift():
    tf = pytest.importorskip("tensorflow")  # gradients / casts taken with TensorFlow itself
    labels, student, teacher = random_logits(8, 8, 10, 3.0)
    for module, base in ((kd, {"alpha": 0.3, "temperature": 7}),
                         (dkd, {"alpha": 1.0, "beta": 8.0, "temperature": 4, "warmup": 1})):
        plain = floats(module.loss_terms(base, labels, student, teacher))
        assert floats(module.loss_terms({**base, "standardize": False}, labels, student, teacher)) == plain
        on = {**base, "standardize": True}
        # a student whose logits are the teacher's scaled and shifted matches it once both are z-scored
        affine = floats(module.loss_terms(on, labels, 0.2 * teacher - 3.0, teacher))
        assert all(abs(value) < 1e-5 for term, value in affine.items() if term != "hard"), affine
        assert floats(module.loss_terms(base, labels, 0.2 * teacher - 3.0, teacher))[module.TERMS[-1]] > 1e-2
    # constant logits (a freshly zeroed head) standardise to zeros: finite loss and gradient
    flat = tf.Variable(np.zeros((4, 10), "float32"))
    with tf.GradientTape() as tape:
        terms = kd.loss_terms({"alpha": 0.3, "temperature": 2, "standardize": True}, labels[:4], flat, teacher[:4])
        loss = terms["hard"] + terms["soft"]
    assert np.isfinite(float(loss)) and np.all(np.isfinite(tape.gradient(loss, flat).numpy()))


@pytest.mark.tensorflow
def test_terms_are_float32_and_finite_from_bfloat16_logits():
    tf = pytest.importorskip("tensorflow")  # gradients / casts taken with TensorFlow itself
    labels, student, teacher = random_logits(9, 8, 10, 3.0)
    for name, settings in [("dist", {}), ("wttm", {}), ("nkd", {}), ("dkd", {"standardize": True})]:
        terms = METHODS[name].loss_terms(setting_grid(name, settings)[0], labels, tf.cast(student, tf.bfloat16),
                                         tf.cast(teacher, tf.bfloat16), epoch=0.0)
        for term, value in terms.items():
            assert value.dtype == "float32" and np.isfinite(float(value)), (name, term, value)


# ---------------------------------------------------------------- training on each method


@pytest.mark.tensorflow  # _train takes gradients with TensorFlow
@pytest.mark.parametrize("name,overrides,terms,ratio", [
    ("dist", {}, ["inter", "intra"], 0.7),
    ("wttm", {}, ["wttm"], 0.7),
    ("kd", {"standardize": True, "temperature": 2}, ["soft"], 0.7),
    ("dkd", {"standardize": True, "temperature": 2}, ["tckd", "nckd"], 0.7),
])
def test_training_on_the_method_lowers_its_own_term(name, overrides, terms, ratio):
    history = _train(name, overrides)  # tests/test_methods.py's tiny student against a fixed random teacher
    for term in terms:
        values = history[term]
        assert all(np.isfinite(values)), (term, values)
        assert values[-1] < ratio * values[0], (term, values[0], values[-1])


@pytest.mark.tensorflow  # _train takes gradients with TensorFlow
@pytest.mark.parametrize("overrides", [{}, {"temperature": 1, "gamma": 1.5}])
def test_nkd_training_closes_the_gap_to_its_entropy_floor(overrides):
    history, labels, teacher = _train("nkd", overrides, with_batch=True)
    settings = setting_grid("nkd", overrides)[0]
    gamma, t = settings["gamma"], settings["temperature"]
    _, _, n_t = np_nkd(labels, teacher, teacher, t, gamma)
    floor = gamma * t ** 2 * -(n_t * np.log(n_t)).sum(axis=-1).mean()  # the student matching the teacher
    gaps = np.array(history["nontarget"]) - floor
    assert np.all(np.isfinite(gaps)) and gaps.min() > -1e-3, gaps
    assert gaps[-1] < 0.7 * gaps[0], (gaps[0], gaps[-1])
    assert history["target"][-1] < history["target"][0]


@pytest.mark.parametrize("name", NEW + ("kd+standardize",))
def test_distiller_trains_on_cached_teacher_logits_without_a_teacher_model(name):
    method, overrides = (name.split("+")[0], {"standardize": True}) if "+" in name else (name, {})
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    student = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (8, 4, 4, 3)).astype("float32")
    y = {"label": rng.integers(0, 10, 8), "teacher_logits": rng.normal(0, 3, (8, 10)).astype("float32")}
    distiller = Distiller(student, method, setting_grid(method, overrides)[0])  # teacher=None: cached logits only
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.numpy().copy() for w in student.trainable_weights]
    history = distiller.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[EpochCounter()])
    assert {f"{term}_loss" for term in METHODS[method].TERMS} <= set(history.history)
    assert all(np.isfinite(history.history[f"{term}_loss"][0]) for term in METHODS[method].TERMS)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, student.trainable_weights))
