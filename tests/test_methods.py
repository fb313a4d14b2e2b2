"""Distillation methods: each loss against a NumPy computation from its paper's formula, and each term falls when a
tiny student trains on it."""

from __future__ import annotations

import os
import subprocess
import sys

import jsonschema
import keras
import numpy as np
import pytest

from kdbench import KdbenchError
from kdbench.methods import METHODS, at, dkd, fitnets, kd, setting_grid, settings_schema

from conftest import ROOT

# ---------------------------------------------------------------- NumPy references (float64, from the papers)


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_cross_entropy(labels, logits):
    return -np.log(np_softmax(logits)[np.arange(len(labels)), labels]).mean()


def np_kl(p, q):
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


def np_dkd(labels, student, teacher, t):
    """Per-sample TCKD and NCKD from the paper's definitions (eqs. 1-4), before T^2 and the weights."""
    p_s, p_t = np_softmax(student / t), np_softmax(teacher / t)
    rows = np.arange(len(labels))
    b_s = np.stack([p_s[rows, labels], 1 - p_s[rows, labels]], axis=1)
    b_t = np.stack([p_t[rows, labels], 1 - p_t[rows, labels]], axis=1)
    others = np.ones_like(p_s, dtype=bool)
    others[rows, labels] = False
    hat_s = p_s[others].reshape(len(labels), -1) / b_s[:, 1:]
    hat_t = p_t[others].reshape(len(labels), -1) / b_t[:, 1:]
    return np_kl(b_t, b_s), np_kl(hat_t, hat_s)


def np_pool(x, size):
    """Non-overlapping average pooling of (batch, H, W, ...) to (batch, h, w, ...)."""
    b, h, w = x.shape[:3]
    return x.reshape(b, size[0], h // size[0], size[1], w // size[1], *x.shape[3:]).mean(axis=(2, 4))


def np_attention(features, size):
    maps = np_pool((features.astype(np.float64) ** 2).mean(axis=-1), size).reshape(len(features), -1)
    return maps / np.linalg.norm(maps, axis=1, keepdims=True)


def logits_batch(seed=0, batch=8, classes=10, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, classes, batch), rng.normal(0, scale, (batch, classes)).astype("float32"),
            rng.normal(0, scale, (batch, classes)).astype("float32"))


def floats(terms):
    # through NumPy: on PyTorch a term that depends on trainable weights (fitnets' connector) still has a graph
    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in terms.items()}


# ---------------------------------------------------------------- declarations


def test_registry_lists_the_four_methods_and_their_defaults_fit_their_schemas():
    assert set(METHODS) >= {"kd", "dkd", "fitnets", "at"}
    for name, module in METHODS.items():
        assert module.NEEDS in {"logits", "features"}
        for setting, spec in module.SETTINGS.items():
            jsonschema.validate(spec["default"], spec["schema"])
            assert spec["help"], f"{name}.{setting} has no help"
        jsonschema.validate({}, settings_schema(name))
        if module.NEEDS == "features":
            assert module.stage_pairs(setting_grid(name, {})[0])


def test_stage_settings_reject_what_the_architectures_lack():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"stages": "stage1,stage5"}, settings_schema("at"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"student_stage": "conv3"}, settings_schema("fitnets"))
    jsonschema.validate({"stages": ["stage4", "stage2,stage3,stage4"]}, settings_schema("at"))
    sweep = setting_grid("at", {"stages": ["stage4", "stage2,stage3,stage4"]})
    assert [at.stage_pairs(run) for run in sweep] == [
        [("stage4", "stage4")], [("stage2", "stage2"), ("stage3", "stage3"), ("stage4", "stage4")]]
    assert at.stage_pairs({"stages": "stage2, stage4"}) == [("stage2", "stage2"), ("stage4", "stage4")]
    with pytest.raises(KdbenchError, match="distinct"):
        at.stage_pairs({"stages": "stage2,stage2"})


def test_declarations_import_without_tensorflow_or_keras():
    code = ("import sys, kdbench.methods as m; assert {'kd', 'dkd', 'fitnets', 'at'} <= set(m.METHODS); "
            "heavy = sorted(n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras')); "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- losses against hand computations


def test_kd_matches_hand_computation():
    labels, student, teacher = logits_batch(0)
    for alpha, t in [(0.3, 7.0), (0.9, 1.0)]:
        got = floats(kd.loss_terms({"alpha": alpha, "temperature": t}, labels, student, teacher))
        soft = np_kl(np_softmax(teacher / t), np_softmax(student / t)).mean() * t ** 2
        np.testing.assert_allclose([got["hard"], got["soft"]],
                                   [alpha * np_cross_entropy(labels, student), (1 - alpha) * soft], rtol=1e-5)


@pytest.mark.parametrize("alpha,beta,t", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.5, 10.0)])
def test_dkd_matches_hand_computation(alpha, beta, t):
    labels, student, teacher = logits_batch(1)
    settings = {"alpha": alpha, "beta": beta, "temperature": t, "warmup": 0}
    got = floats(dkd.loss_terms(settings, labels, student, teacher, epoch=0.0))
    tckd, nckd = np_dkd(labels, student.astype(np.float64), teacher.astype(np.float64), t)
    np.testing.assert_allclose([got["hard"], got["tckd"], got["nckd"]],
                               [np_cross_entropy(labels, student), alpha * t ** 2 * tckd.mean(),
                                beta * t ** 2 * nckd.mean()], rtol=1e-5)


def test_dkd_terms_recombine_into_hinton_kd():
    """The paper's eq. 5: KD = TCKD + (1 - p_target^teacher) * NCKD, image by image."""
    labels, student, teacher = logits_batch(2)
    t = 4.0
    for i in range(len(labels)):
        one = (labels[i:i + 1], student[i:i + 1], teacher[i:i + 1])
        terms = floats(dkd.loss_terms({"alpha": 1.0, "beta": 1.0, "temperature": t, "warmup": 0}, *one))
        soft = float(kd.loss_terms({"alpha": 0.0, "temperature": t}, *one)["soft"])
        p_target = np_softmax(teacher[i] / t)[labels[i]]
        np.testing.assert_allclose(terms["tckd"] + (1 - p_target) * terms["nckd"], soft, rtol=1e-4)


def test_dkd_terms_vanish_when_the_student_matches_the_teacher():
    labels, student, _ = logits_batch(3, scale=5.0)
    terms = floats(dkd.loss_terms(dict(setting_grid("dkd", {})[0]), labels, student, student, epoch=5.0))
    assert abs(terms["tckd"]) < 1e-5 and abs(terms["nckd"]) < 1e-5


def test_dkd_warmup_ramps_the_kd_weight_from_the_first_epoch():
    labels, student, teacher = logits_batch(4)
    base = {"alpha": 1.0, "beta": 8.0, "temperature": 4.0}
    full = floats(dkd.loss_terms({**base, "warmup": 0}, labels, student, teacher, epoch=0.0))
    # epochs count from 1 as in the paper's code: the first epoch (index 0) gets 1/warmup, never 0
    for epoch, factor in [(0.0, 0.25), (1.0, 0.5), (2.0, 0.75), (3.0, 1.0), (11.0, 1.0), (None, 1.0)]:
        epoch_tensor = None if epoch is None else keras.ops.convert_to_tensor(epoch, "float32")
        got = floats(dkd.loss_terms({**base, "warmup": 4}, labels, student, teacher, epoch=epoch_tensor))
        np.testing.assert_allclose([got["tckd"], got["nckd"]], [factor * full["tckd"], factor * full["nckd"]],
                                   rtol=1e-6)
        np.testing.assert_allclose(got["hard"], full["hard"], rtol=1e-6)
    # the default (warmup 1) is full weight from the first epoch
    default = floats(dkd.loss_terms(setting_grid("dkd", {})[0], labels, student, teacher, epoch=0.0))
    np.testing.assert_allclose(default["nckd"], full["nckd"], rtol=1e-6)


def _fitnets_by_hand(settings, connector, student, teacher):
    size = (min(student.shape[1], teacher.shape[1]), min(student.shape[2], teacher.shape[2]))
    conv, bn = connector.get_layer("fitnets_conv"), connector.get_layer("fitnets_bn")
    kernel = keras.ops.convert_to_numpy(conv.kernel).astype(np.float64)
    gamma, beta = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in (bn.gamma, bn.beta))
    projected = np_pool(student.astype(np.float64), size) @ kernel[0, 0]
    # batch normalisation in training mode: this batch's mean and (biased) variance per channel
    mean, var = projected.mean(axis=(0, 1, 2)), projected.var(axis=(0, 1, 2))
    guided = (projected - mean) / np.sqrt(var + bn.epsilon) * gamma + beta
    return settings["weight"] * ((guided - np_pool(teacher.astype(np.float64), size)) ** 2).mean()


@pytest.mark.parametrize("student_hw,teacher_hw", [(4, 4), (8, 4), (4, 8)])
def test_fitnets_matches_hand_computation(student_hw, teacher_hw):
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    student = rng.normal(0, 1, (8, student_hw, student_hw, 6)).astype("float32")
    teacher = np.maximum(rng.normal(0, 2, (8, teacher_hw, teacher_hw, 12)), 0).astype("float32")
    labels, student_logits, teacher_logits = logits_batch(5)
    settings = {"weight": 100.0, "student_stage": "stage2", "teacher_stage": "stage2"}
    (connector,) = fitnets.connectors(settings, [student.shape[1:]], [teacher.shape[1:]])
    assert len(connector.trainable_weights) == 3  # kernel, gamma, beta: built before the first step
    bn = connector.get_layer("fitnets_bn")  # non-trivial affine parameters, so the test reads them back
    bn.gamma.assign(rng.uniform(0.5, 2.0, 12).astype("float32"))
    bn.beta.assign(rng.normal(0, 1, 12).astype("float32"))
    got = floats(fitnets.loss_terms(settings, labels, student_logits, teacher_logits, student_features=[student],
                                    teacher_features=[teacher], connectors=[connector]))
    np.testing.assert_allclose([got["hard"], got["hint"]],
                               [np_cross_entropy(labels, student_logits),
                                _fitnets_by_hand(settings, connector, student, teacher)], rtol=1e-5)


def test_fitnets_without_its_connector_says_what_to_pass():
    labels, s_logits, t_logits = logits_batch(6)
    with pytest.raises(KdbenchError, match="connector"):
        fitnets.loss_terms({"weight": 1.0}, labels, s_logits, t_logits, student_features=[np.ones((8, 4, 4, 6))],
                           teacher_features=[np.ones((8, 4, 4, 12))])


def test_fitnets_refuses_sizes_that_do_not_divide():
    (connector,) = fitnets.connectors({}, [(6, 6, 6)], [(4, 4, 12)])
    labels, s_logits, t_logits = logits_batch(6)
    with pytest.raises(KdbenchError, match="multiples"):
        fitnets.loss_terms({"weight": 1.0}, labels, s_logits, t_logits, student_features=[np.ones((8, 6, 6, 6))],
                           teacher_features=[np.ones((8, 4, 4, 12))], connectors=[connector])


@pytest.mark.parametrize("beta", [1000.0, 3.0])
def test_at_matches_hand_computation(beta):
    rng = np.random.default_rng(7)
    # two pairs of equal size with different channel counts, and one pair whose student map is twice as large
    students = [rng.normal(0, 1, (8, 4, 4, 6)), rng.normal(0, 1, (8, 2, 2, 8)), rng.normal(0, 1, (8, 8, 8, 5))]
    teachers = [rng.normal(0, 1, (8, 4, 4, 12)), rng.normal(0, 1, (8, 2, 2, 16)), rng.normal(0, 1, (8, 4, 4, 20))]
    students = [np.maximum(f, 0).astype("float32") for f in students]
    teachers = [np.maximum(f, 0).astype("float32") for f in teachers]
    labels, student_logits, teacher_logits = logits_batch(7)
    got = floats(at.loss_terms({"beta": beta, "stages": "stage1,stage2,stage3"}, labels, student_logits,
                               teacher_logits, student_features=students, teacher_features=teachers))
    expected = 0.0
    for s, t in zip(students, teachers):
        size = (min(s.shape[1], t.shape[1]), min(s.shape[2], t.shape[2]))
        expected += ((np_attention(s, size) - np_attention(t, size)) ** 2).mean()
    np.testing.assert_allclose([got["hard"], got["at"]], [np_cross_entropy(labels, student_logits), beta * expected],
                               rtol=1e-5)


def test_at_takes_cached_teacher_maps_for_teacher_features():
    rng = np.random.default_rng(10)
    student = np.abs(rng.normal(0, 1, (8, 8, 8, 6))).astype("float32")
    teacher = np.abs(rng.normal(0, 1, (8, 4, 4, 12))).astype("float32")
    labels, s_logits, t_logits = logits_batch(10)
    online = at.loss_terms({"beta": 1000.0}, labels, s_logits, t_logits, student_features=[student],
                           teacher_features=[teacher])["at"]
    cached = at.loss_terms({"beta": 1000.0}, labels, s_logits, t_logits, student_features=[student],
                           teacher_features=[at.attention_map(teacher)])["at"]
    np.testing.assert_allclose(float(cached), float(online), rtol=1e-6)


@pytest.mark.tensorflow
def test_at_is_zero_for_proportional_maps_and_finite_for_dead_ones():
    tf = pytest.importorskip("tensorflow")  # gradients taken with TensorFlow; the formula tests need none
    rng = np.random.default_rng(8)
    teacher = np.abs(rng.normal(0, 1, (4, 4, 4, 3))).astype("float32")
    student = np.concatenate([3 * teacher, 3 * teacher], axis=-1)  # same attention, other channels and scale
    labels, s_logits, t_logits = logits_batch(8, batch=4)
    got = floats(at.loss_terms({"beta": 1000.0}, labels, s_logits, t_logits, student_features=[student],
                               teacher_features=[teacher]))
    assert abs(got["at"]) < 1e-4
    dead = tf.Variable(np.zeros((4, 4, 4, 6), "float32"))  # an all-zero map: no NaN in the loss or its gradient
    with tf.GradientTape() as tape:
        loss = at.loss_terms({"beta": 1000.0}, labels, s_logits, t_logits, student_features=[dead],
                             teacher_features=[teacher])["at"]
    assert np.isfinite(float(loss)) and np.all(np.isfinite(tape.gradient(loss, dead).numpy()))


@pytest.mark.tensorflow
def test_terms_are_float32_from_bfloat16_features_and_logits():
    tf = pytest.importorskip("tensorflow")  # gradients taken with TensorFlow; the formula tests need none
    labels, student_logits, teacher_logits = logits_batch(9)
    rng = np.random.default_rng(9)
    s_feat = np.abs(rng.normal(0, 1, (8, 4, 4, 6))).astype("float32")
    t_feat = np.abs(rng.normal(0, 1, (8, 4, 4, 12))).astype("float32")
    bf16 = lambda a: tf.cast(a, tf.bfloat16)  # noqa: E731
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        for name in ("kd", "dkd", "fitnets", "at"):
            module = METHODS[name]
            settings = setting_grid(name, {"stages": "stage1"} if name == "at" else {})[0]
            conns = (module.connectors(settings, [s_feat.shape[1:]], [t_feat.shape[1:]])
                     if hasattr(module, "connectors") else [])
            features = {} if module.NEEDS == "logits" else {
                "student_features": [bf16(s_feat)], "teacher_features": [bf16(t_feat)], "connectors": conns}
            terms = module.loss_terms(settings, labels, bf16(student_logits), bf16(teacher_logits), epoch=0.0,
                                      **features)
            for term, value in terms.items():
                if name != "kd":  # kd is the existing module, which leaves the dtype to its inputs
                    assert value.dtype == "float32", (name, term, value.dtype)
                assert np.isfinite(float(value)), (name, term)
    finally:
        keras.config.set_dtype_policy(previous)


# ---------------------------------------------------------------- a tiny student learns from each term


def _tiny_net(name: str, widths, strides, logit_scale: float):
    """16x16 images -> [logits, stage1, stage2]: two conv stages named as the architectures name theirs."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(widths[0], 3, strides=strides[0], padding="same", name=f"{name}_conv1")(inputs)
    stage1 = keras.layers.ReLU(name="stage1")(x)
    x = keras.layers.Conv2D(widths[1], 3, strides=strides[1], padding="same", name=f"{name}_conv2")(stage1)
    stage2 = keras.layers.ReLU(name="stage2")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(stage2)
    logits = keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(0, logit_scale))(pooled)
    return keras.Model(inputs, [logits, stage1, stage2], name=name)


def _train(name: str, overrides: dict, steps: int = 20, lr: float = 1e-2, with_batch: bool = False):
    """Train a tiny student on the method's loss on one fixed batch; every term's value at every step (and,
    with_batch, also the batch's labels and the teacher's logits, for terms whose minimum is not 0)."""
    tf = pytest.importorskip("tensorflow")  # gradients taken with TensorFlow; the formula tests need none
    keras.utils.set_random_seed(0)
    module = METHODS[name]
    settings = setting_grid(name, overrides)[0]
    # the teacher is fixed and random: its stage2 is 4x4 against the student's 8x8, so pooling is exercised
    student = _tiny_net("student", (6, 8), (1, 2), logit_scale=0.05)
    teacher = _tiny_net("teacher", (12, 16), (1, 4), logit_scale=1.0)
    rng = np.random.default_rng(0)
    images = rng.normal(0, 1, (16, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 10, 16)
    teacher_logits, *teacher_stages = teacher(images, training=False)
    stage_index = {"stage1": 0, "stage2": 1}
    pairs = module.stage_pairs(settings) if module.NEEDS == "features" else []
    teacher_features = [teacher_stages[stage_index[t]] for _, t in pairs]
    student_shapes = [tuple(student.get_layer(s).output.shape[1:]) for s, _ in pairs]
    conns = (module.connectors(settings, student_shapes, [tuple(f.shape[1:]) for f in teacher_features])
             if hasattr(module, "connectors") else [])
    weights = student.trainable_weights + [w for c in conns for w in c.trainable_weights]
    optimizer = keras.optimizers.Adam(lr)

    @tf.function  # graph mode, as the Distiller's train step runs
    def step(epoch):
        with tf.GradientTape() as tape:
            logits, *stages = student(images, training=True)
            features = {} if module.NEEDS == "logits" else {
                "student_features": [stages[stage_index[s]] for s, _ in pairs],
                "teacher_features": teacher_features, "connectors": conns}
            terms = module.loss_terms(settings, labels, logits, teacher_logits, epoch=epoch, **features)
            loss = tf.add_n(list(terms.values()))
        optimizer.apply(tape.gradient(loss, weights), weights)
        return terms

    history: dict[str, list[float]] = {}
    for _ in range(steps):
        for term, value in step(tf.constant(0.0)).items():
            history.setdefault(term, []).append(float(value))
    return (history, labels, keras.ops.convert_to_numpy(teacher_logits)) if with_batch else history


@pytest.mark.tensorflow
@pytest.mark.parametrize("name,overrides,terms", [
    ("kd", {}, ["soft"]),
    ("dkd", {}, ["tckd", "nckd"]),
    ("fitnets", {}, ["hint"]),
    ("fitnets", {"student_stage": "stage1", "teacher_stage": "stage1"}, ["hint"]),
    ("at", {"stages": "stage1,stage2"}, ["at"]),
])
def test_training_on_the_method_lowers_its_own_term(name, overrides, terms):
    history = _train(name, overrides)
    for term in terms:  # measured at lr 1e-2 over 20 steps: last / first <= 0.45 for every case here
        values = history[term]
        assert all(np.isfinite(values)), (term, values)
        assert values[-1] < 0.7 * values[0], (term, values[0], values[-1])
