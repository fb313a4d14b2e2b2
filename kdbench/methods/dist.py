"""DIST: Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.

Match relations, not values: with Y = softmax(z / tau) for a batch (B images x C classes) and
d(u, v) = 1 - Pearson correlation of u and v,
  inter = tau^2 * mean over images i of d(Y_s[i, :], Y_t[i, :])     (each image's class distribution)
  intra = tau^2 * mean over classes j of d(Y_s[:, j], Y_t[:, j])    (each class's scores across the batch)
  loss  = CE(labels, student) + beta * inter + gamma * intra
The tau^2 factor on both terms is the authors' code's (hunto/DIST_KD, as in the TTM authors' CIFAR-100 copy of
it, zkxufo/TTM distiller_zoo/dist.py); whether the paper's printed equations carry it was not checked here.
Defaults beta 1, gamma 1, tau 4 are that CIFAR-100 code's (the paper's
ImageNet runs use tau 1). The intra-class term is a statistic of the whole batch: it depends on the batch size
(and under tf.distribute it is taken per replica); a batch of one image has no spread, so its intra term is 1.
"""

from __future__ import annotations

NEEDS = "logits"
TERMS = ("hard", "inter", "intra")
SETTINGS = {
    "beta": {"default": 1.0, "schema": {"type": "number", "minimum": 0},
             "help": "weight of the inter-class relation term (per image across classes; CIFAR-100 code: 1)"},
    "gamma": {"default": 1.0, "schema": {"type": "number", "minimum": 0},
              "help": "weight of the intra-class relation term (per class across the batch; CIFAR-100 code: 1)"},
    "temperature": {"default": 4, "schema": {"type": "number", "minimum": 0.1, "maximum": 1000},
                    "help": "softmax temperature tau of both distributions; both terms carry tau^2 (CIFAR: 4)"},
}

# Floor under the product of the two squared norms (the authors add 1e-8 to the product of the norms): a
# vector with no spread gives correlation 0 with finite gradients instead of 0/0.
_EPSILON = 1e-8


def pearson_distance(a, b, axis):
    """1 - Pearson correlation of a and b along `axis`, one value per slice (float32)."""
    from keras import ops

    a = a - ops.mean(a, axis=axis, keepdims=True)
    b = b - ops.mean(b, axis=axis, keepdims=True)
    norms = ops.sqrt(ops.maximum(ops.sum(a * a, axis=axis) * ops.sum(b * b, axis=axis), _EPSILON ** 2))
    return 1.0 - ops.sum(a * b, axis=axis) / norms


def loss_terms(settings: dict, labels, student_logits, teacher_logits, **features) -> dict:
    """{"hard": CE, "inter": beta * tau^2 * inter-class distance, "intra": gamma * tau^2 * intra-class distance}."""
    import keras
    from keras import ops

    beta, gamma, tau = float(settings["beta"]), float(settings["gamma"]), float(settings["temperature"])
    student_logits = ops.cast(student_logits, "float32")
    teacher_logits = ops.cast(teacher_logits, "float32")
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, student_logits)
    y_s = ops.exp(ops.log_softmax(student_logits / tau, axis=-1))
    y_t = ops.exp(ops.log_softmax(teacher_logits / tau, axis=-1))
    inter = ops.mean(pearson_distance(y_s, y_t, axis=1))
    intra = ops.mean(pearson_distance(y_s, y_t, axis=0))
    return {"hard": hard, "inter": beta * tau ** 2 * inter, "intra": gamma * tau ** 2 * intra}
