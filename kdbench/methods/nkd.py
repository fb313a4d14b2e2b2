"""NKD: Yang, Zeng, Li, Zhang, Yuan & Li, "From Knowledge Distillation to Self-Knowledge Distillation: A Unified
Approach with Normalized Loss and Customized Soft Labels", ICCV 2023 (normalized KD).

KD's soft term splits into the target class and the non-target classes; NKD keeps the target part as a
cross-entropy weighted by the teacher's target probability and normalises the non-target part to a distribution
(N(p)_i = p_i / (1 - p_y) over i != y, i.e. a softmax over the non-target logits), at temperature lambda:
  hard      = CE(labels, student)
  target    = -mean over images of  t_y * log s_y                 (t, s: softmax at temperature 1)
  nontarget = -gamma * lambda^2 * mean over images of  sum_{i != y} N(t^lambda)_i * log N(s^lambda)_i
  loss      = hard + target + nontarget
as the authors' code computes it (yzd-v/cls_KD, NKDLoss, which the distiller adds to the
student's own cross-entropy at weight 1). The non-target term is a cross-entropy, so its minimum over students is
gamma * lambda^2 times the entropy of N(t^lambda) (reached when the student's non-target distribution equals the
teacher's), not 0.

Defaults: temperature 3, gamma 3.5 are the authors' CIFAR-100 config (configs/distillers/cifar100); their code's
defaults and ImageNet config are temperature 1, gamma 1.5.
"""

from __future__ import annotations

NEEDS = "logits"
TERMS = ("hard", "target", "nontarget")
SETTINGS = {
    "gamma": {"default": 3.5, "schema": {"type": "number", "minimum": 0},
              "help": "weight of the normalised non-target term (authors' CIFAR-100 config: 3.5; ImageNet: 1.5)"},
    "temperature": {"default": 3, "schema": {"type": "number", "minimum": 0.1, "maximum": 1000},
                    "help": "temperature lambda of the non-target distributions; the term carries lambda^2 "
                            "(authors' CIFAR-100 config: 3; ImageNet: 1)"},
}

# Subtracted from the target logit before the non-target softmax (as dkd does with 1000, but relative to the
# logits' own range, so that even very large logits leave the target class no mass).
_MASK = 1e4


def loss_terms(settings: dict, labels, student_logits, teacher_logits, **features) -> dict:
    """{"hard": CE, "target": -mean(t_y log s_y), "nontarget": -gamma lambda^2 mean sum N(t) log N(s)}."""
    import keras
    from keras import ops

    gamma, temperature = float(settings["gamma"]), float(settings["temperature"])
    student_logits = ops.cast(student_logits, "float32")
    teacher_logits = ops.cast(teacher_logits, "float32")
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, student_logits)
    target = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), ops.shape(student_logits)[-1])

    log_s = ops.log_softmax(student_logits, axis=-1)
    t_y = ops.sum(ops.exp(ops.log_softmax(teacher_logits, axis=-1)) * target, axis=-1)
    target_term = -ops.mean(t_y * ops.sum(log_s * target, axis=-1))

    # the mask scales with the largest logit so the target's exp is 0 whatever the logits' size
    mask = (_MASK + ops.max(ops.abs(ops.stop_gradient(ops.concatenate([student_logits, teacher_logits], -1)))))
    log_n_s = ops.log_softmax((student_logits - mask * target) / temperature, axis=-1)
    log_n_t = ops.log_softmax((teacher_logits - mask * target) / temperature, axis=-1)
    cross = ops.sum((1.0 - target) * ops.exp(log_n_t) * log_n_s, axis=-1)
    nontarget = -gamma * temperature ** 2 * ops.mean(cross)
    return {"hard": hard, "target": target_term, "nontarget": nontarget}
