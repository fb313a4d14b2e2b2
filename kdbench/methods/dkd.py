"""Decoupled KD: Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge Distillation", CVPR 2022.

Hinton's KD loss splits into a target-class term and a non-target-class term (the paper's eq. 5:
KD = TCKD + (1 - p_t^T) NCKD); DKD weights the two independently and drops the coupling factor:
  TCKD = T^2 * KL([p_t^T, 1 - p_t^T] || [p_t^S, 1 - p_t^S])   (binary: target vs all other classes)
  NCKD = T^2 * KL(p^T over non-targets || p^S over non-targets)   (softmax with the target class masked out)
  loss = CE(labels, student) + w(epoch) * (alpha * TCKD + beta * NCKD),  w(epoch) = min((epoch + 1) / warmup, 1)
with every softmax at temperature T and each KL averaged over the batch.

Defaults: alpha 1, beta 8, T 4 are the paper's CIFAR-100 values (CIFAR-10 is not in the paper; mdistiller's
CIFAR configs use the same). The warm-up counts epochs from 1, as the paper's code does, so the first epoch gets
weight 1/warmup, never 0. The paper ramps over 20 of 240 epochs (1/12 of training); scaled to this project's
5-epoch runs that is 0.4 of an epoch, below the one-epoch step at which the weight changes, so the default is
warmup 1: full weight from the first epoch. warmup 20 reproduces the paper on its schedule; warmup 2 gives a
half-weight first epoch; 0 also means no warm-up. `epoch` is the 0-based index of the current epoch (a float
tensor; a fractional value ramps smoothly); without one (evaluation) the full weight applies.

standardize: both logits z-scored per image before the temperature, as for kd (kdbench.methods.kd.standardized;
Sun et al., CVPR 2024, whose DKD runs use base temperature 2). The hard term keeps the raw logits.
"""

from __future__ import annotations

NEEDS = "logits"
TERMS = ("hard", "tckd", "nckd")
SETTINGS = {
    "alpha": {"default": 1.0, "schema": {"type": "number", "minimum": 0},
              "help": "weight of TCKD, the target-vs-non-target term (paper: 1.0)"},
    "beta": {"default": 8.0, "schema": {"type": "number", "minimum": 0},
             "help": "weight of NCKD, the among-non-target-classes term (paper, CIFAR-100: 8.0)"},
    "temperature": {"default": 4, "schema": {"type": "number", "minimum": 0.1, "maximum": 1000},
                    "help": "softmax temperature of both distributions in TCKD and NCKD (paper: 4)"},
    "warmup": {"default": 1, "schema": {"type": "number", "minimum": 0},
               "help": "epochs over which the KD weight rises linearly to 1, the first epoch at 1/warmup "
                       "(paper: 20 of 240 epochs; default 1 = no ramp, see docs/methods.md)"},
    "standardize": {"default": False, "schema": {"type": "boolean"}, "optional": True,
                    "help": "z-score each image's teacher and student logits over the classes before dividing "
                            "by the temperature (logit standardisation, Sun et al. CVPR 2024; paper: T 2)"},
}

# Subtracted from the target logit before the non-target softmax, as the paper's code does: exp(-1000) is 0.
_MASK = 1000.0


def warmup_factor(warmup: float, epoch=None):
    """min((epoch + 1) / warmup, 1): 1/warmup in the first epoch, 1 from epoch warmup - 1 on."""
    import keras

    if epoch is None or warmup <= 0:
        return keras.ops.convert_to_tensor(1.0, "float32")
    return keras.ops.minimum((keras.ops.cast(epoch, "float32") + 1.0) / float(warmup), 1.0)


def loss_terms(settings: dict, labels, student_logits, teacher_logits, *, epoch=None, **features) -> dict:
    """{"hard": CE, "tckd": w * alpha * TCKD, "nckd": w * beta * NCKD}, w the warm-up factor."""
    import keras
    from keras import ops

    alpha, beta = float(settings["alpha"]), float(settings["beta"])
    temperature = float(settings["temperature"])
    student_logits = ops.cast(student_logits, "float32")
    teacher_logits = ops.cast(teacher_logits, "float32")
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, student_logits)

    target = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), ops.shape(student_logits)[-1])
    if settings.get("standardize", False):
        from kdbench.methods.kd import standardized

        student_logits, teacher_logits = standardized(student_logits), standardized(teacher_logits)
    s, t = student_logits / temperature, teacher_logits / temperature

    def binary_log_probs(z):
        # log p_target and log(1 - p_target) from log-sum-exps, finite even when one mass underflows
        everything = ops.logsumexp(z, axis=-1)
        return ops.sum(z * target, axis=-1) - everything, ops.logsumexp(z - _MASK * target, axis=-1) - everything

    s_in, s_out = binary_log_probs(s)
    t_in, t_out = binary_log_probs(t)
    tckd = ops.exp(t_in) * (t_in - s_in) + ops.exp(t_out) * (t_out - s_out)

    log_q_s = ops.log_softmax(s - _MASK * target, axis=-1)
    log_q_t = ops.log_softmax(t - _MASK * target, axis=-1)
    nckd = ops.sum((1.0 - target) * ops.exp(log_q_t) * (log_q_t - log_q_s), axis=-1)

    weight = warmup_factor(float(settings["warmup"]), epoch) * temperature ** 2
    return {"hard": hard, "tckd": weight * alpha * ops.mean(tckd), "nckd": weight * beta * ops.mean(nckd)}
