"""Hinton knowledge distillation on logits, with the teacher's soft targets cached or computed online."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from kdbench import KdbenchError
from kdbench.datasets import get as _dataset

NUM_CLASSES = _dataset("cifar10").num_classes  # until callers pass the data set's

HARD_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def kd_loss(labels, student_logits, teacher_logits, alpha: float, temperature: float):
    """alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T)).

    Returns (total, hard, soft) as scalars averaged over the batch.
    """
    hard = HARD_LOSS(labels, student_logits)
    # Pass a KLDivergence instance: with the default string 'kl_divergence', Keras 3.15 skips the softmax
    # and the T^2 factor (its isinstance check misses the function that the string resolves to).
    soft_loss = keras.distillation.LogitsDistillation(temperature, loss=keras.losses.KLDivergence())
    soft = soft_loss.compute_loss(teacher_logits, student_logits)
    return alpha * hard + (1.0 - alpha) * soft, hard, soft


def load_teacher_logits(path: str | os.PathLike, num_images: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Cached teacher logits, checked: one finite row of `num_classes` per training image."""
    try:
        logits = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise KdbenchError(f"cannot read teacher logits {path} ({err}); rerun teacher_logits") from err
    if logits.shape != (num_images, num_classes):
        raise KdbenchError(f"{path} has shape {logits.shape}, expected ({num_images}, {num_classes}): "
                           "it was computed for other data; rerun teacher_logits")
    if not np.isfinite(logits).all():
        raise KdbenchError(f"{path} holds {int((~np.isfinite(logits)).sum())} NaN/inf values; the teacher "
                           "diverged or the file is damaged: retrain the teacher, then rerun teacher_logits")
    return logits


class Distiller(keras.Model):
    """Trains `student` with kd_loss; the teacher (when given) only runs in inference mode and never updates.

    The targets `y` are a dict: {"label": int labels, "teacher_logits": cached logits}. With an online
    `teacher`, "teacher_logits" is ignored and the teacher runs on every batch instead.
    """

    def __init__(self, student: keras.Model, alpha: float, temperature: float,
                 teacher: keras.Model | None = None, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = self.teacher(x, training=False) if self.teacher is not None else y["teacher_logits"]
        total, hard, soft = kd_loss(y["label"], y_pred, teacher_logits, self.alpha, self.temperature)
        # Under tf.distribute, Keras losses come back divided by the replica count (so that summed
        # gradients average over the global batch); undo that for the logged values, as Keras does for `loss`.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.hard_loss_tracker.update_state(hard * replicas)
        self.soft_loss_tracker.update_state(soft * replicas)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.accuracy_metric.update_state(y["label"], y_pred)
        return self.get_metrics_result()

    @property
    def metrics(self):
        return [*super().metrics, self.hard_loss_tracker, self.soft_loss_tracker, self.accuracy_metric]
