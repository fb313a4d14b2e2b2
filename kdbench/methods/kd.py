"""Hinton KD: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS DL workshop 2015.

loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).
Defaults are the reference notebook's (alpha 0.3 on the hard labels, T 7); the paper sweeps T and puts most
weight on the soft term.

standardize (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024): each image's teacher and
student logits are z-scored over the classes, (z - mean(z)) / (std(z) + 1e-7), before the division by T, so the
student matches the teacher's logit relations rather than their range; T then acts as the paper's "base
temperature" (the authors' CIFAR-100 commands: base temperature 2 or 3, --kd-weight 9). std is the authors'
code's (torch.std: divided by K - 1 over the K classes); the hard term keeps the raw logits. Off by default.
"""

from __future__ import annotations

NEEDS = "logits"
TERMS = ("hard", "soft")
SETTINGS = {
    "alpha": {"default": 0.3, "schema": {"type": "number", "minimum": 0, "maximum": 1},
              "help": "weight of the hard-label cross-entropy; the soft term gets 1 - alpha"},
    "temperature": {"default": 7, "schema": {"type": "number", "minimum": 0.1, "maximum": 1000},
                    "help": "softmax temperature of both distributions in the soft term"},
    "standardize": {"default": False, "schema": {"type": "boolean"}, "optional": True,
                    "help": "z-score each image's teacher and student logits over the classes before dividing "
                            "by the temperature (logit standardisation, Sun et al. CVPR 2024; paper: T 2)"},
}

# Added to the standard deviation, as the logit-standardisation authors' code does: constant logits give zeros.
_STD_EPSILON = 1e-7


def hard_weight(settings: dict) -> float:
    """The factor on the cross-entropy in the "hard" term (the figures divide it out)."""
    return float(settings["alpha"])


def standardized(logits):
    """Each row z-scored over the classes in float32: (z - mean) / (std + 1e-7), std with K - 1 in the
    denominator (the logit-standardisation authors' code). A constant row maps to zeros with a finite gradient."""
    from keras import ops

    logits = ops.cast(logits, "float32")
    centred = logits - ops.mean(logits, axis=-1, keepdims=True)
    classes = ops.cast(ops.shape(logits)[-1], "float32")
    variance = ops.sum(ops.square(centred), axis=-1, keepdims=True) / (classes - 1.0)
    # the floor keeps sqrt's gradient finite where the variance is 0 (there the centred row is 0 anyway)
    return centred / (ops.sqrt(ops.maximum(variance, 1e-24)) + _STD_EPSILON)


def loss_terms(settings: dict, labels, student_logits, teacher_logits, **features) -> dict:
    """{"hard": alpha * CE, "soft": (1 - alpha) * T^2 * KL(teacher_T || student_T)}, the soft term on
    standardised logits when settings["standardize"]."""
    import keras

    alpha, temperature = float(settings["alpha"]), float(settings["temperature"])
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, student_logits)
    if settings.get("standardize", False):
        student_logits, teacher_logits = standardized(student_logits), standardized(teacher_logits)
    # Pass a KLDivergence instance: with the default string 'kl_divergence', Keras 3.15 skips the softmax
    # and the T^2 factor (its isinstance check misses the function that the string resolves to).
    soft = keras.distillation.LogitsDistillation(temperature, loss=keras.losses.KLDivergence()).compute_loss(
        teacher_logits, student_logits)
    return {"hard": alpha * hard, "soft": (1.0 - alpha) * soft}
