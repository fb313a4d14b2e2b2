"""Hinton KD: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS DL workshop 2015.

loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).
Defaults are the reference notebook's (alpha 0.3 on the hard labels, T 7); the paper sweeps T and puts most
weight on the soft term.
"""

from __future__ import annotations

NEEDS = "logits"
TERMS = ("hard", "soft")
SETTINGS = {
    "alpha": {"default": 0.3, "schema": {"type": "number", "minimum": 0, "maximum": 1},
              "help": "weight of the hard-label cross-entropy; the soft term gets 1 - alpha"},
    "temperature": {"default": 7, "schema": {"type": "number", "minimum": 0.1, "maximum": 1000},
                    "help": "softmax temperature of both distributions in the soft term"},
}


def hard_weight(settings: dict) -> float:
    """The factor on the cross-entropy in the "hard" term (the figures divide it out)."""
    return float(settings["alpha"])


def loss_terms(settings: dict, labels, student_logits, teacher_logits, **features) -> dict:
    """{"hard": alpha * CE, "soft": (1 - alpha) * T^2 * KL(teacher_T || student_T)}."""
    import keras

    alpha, temperature = float(settings["alpha"]), float(settings["temperature"])
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, student_logits)
    # Pass a KLDivergence instance: with the default string 'kl_divergence', Keras 3.15 skips the softmax
    # and the T^2 factor (its isinstance check misses the function that the string resolves to).
    soft = keras.distillation.LogitsDistillation(temperature, loss=keras.losses.KLDivergence()).compute_loss(
        teacher_logits, student_logits)
    return {"hard": alpha * hard, "soft": (1.0 - alpha) * soft}
