"""The one Distiller every method trains with: student (+ tapped stages) against the teacher's logits
(cached, or computed online) and, for feature methods, the teacher's stage outputs (online)."""

from __future__ import annotations

import os

import keras
import numpy as np

from kdbench import KdbenchError, architectures, methods, runtime


def load_teacher_logits(path: str | os.PathLike, num_images: int, num_classes: int,
                        epochs: int | None = None) -> np.ndarray:
    """Cached teacher logits, checked: one finite row of `num_classes` per training image or, for an augmented
    run (`epochs` given), per training image and epoch, on that epoch's views (kdbench.augment)."""
    try:
        logits = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise KdbenchError(f"cannot read teacher logits {path} ({err}); rerun teacher_logits") from err
    expected = (num_images, num_classes) if epochs is None else (epochs, num_images, num_classes)
    if logits.shape != expected:
        if epochs is not None and logits.shape == expected[1:]:
            raise KdbenchError(f"{path} holds the teacher's logits on the unaugmented images, and this run trains "
                               f"on augmented views: compute them on every epoch's views (teacher_logits.py "
                               f"--augment --epochs {epochs}) or run the teacher online (--teacher-model)")
        if epochs is None and logits.shape[1:] == expected:
            raise KdbenchError(f"{path} holds the teacher's logits on {logits.shape[0]} epochs of augmented views, "
                               "and this run trains on the unaugmented images: pass --augment or recompute them "
                               "without --augment")
        raise KdbenchError(f"{path} has shape {logits.shape}, expected {expected}: it was computed for other "
                           "data or another number of epochs; rerun teacher_logits")
    if not np.isfinite(logits).all():
        raise KdbenchError(f"{path} holds {int((~np.isfinite(logits)).sum())} NaN/inf values; the teacher "
                           "diverged or the file is damaged: retrain the teacher, then rerun teacher_logits")
    return logits


class Distiller(keras.Model):
    """Trains `student` with `method`'s loss terms; the teacher only runs in inference mode and never updates.

    Targets `y` are a dict: {"label": int labels, "teacher_logits": cached logits} (with augmentation, the
    pipeline joins each image's row for the current epoch: see kdbench.augment.EpochViews). With an online
    `teacher`, "teacher_logits" is ignored and the teacher runs on every batch. Feature methods need the
    online teacher and both architectures' names (to tap their stages). Trainable pieces of a method
    (e.g. a FitNets connector) train with the student and are not part of it: save `distiller.student`.
    """

    def __init__(self, student: keras.Model, method: str, settings: dict, teacher: keras.Model | None = None,
                 student_architecture: str | None = None, teacher_architecture: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.method = methods.get(method)
        self.settings = dict(settings)
        self.pairs = self.method.stage_pairs(self.settings) if self.method.NEEDS == "features" else []
        self.connectors = []
        if self.pairs:
            if teacher is None or not (student_architecture and teacher_architecture):
                raise KdbenchError(f"method '{method}' needs the teacher's features: run the teacher online "
                                   "and name both architectures")
            self.student_taps = architectures.get(student_architecture).stage_model(
                student, [s for s, _ in self.pairs])
            self.teacher_taps = architectures.get(teacher_architecture).stage_model(
                teacher, [t for _, t in self.pairs])
            if hasattr(self.method, "connectors"):
                self.connectors = self.method.connectors(
                    self.settings, [tuple(o.shape[1:]) for o in self.student_taps.outputs[1:]],
                    [tuple(o.shape[1:]) for o in self.teacher_taps.outputs[1:]])
        # 0-based index of the epoch being trained, for methods with a schedule (set by EpochCounter)
        self.epoch = keras.Variable(0.0, trainable=False, dtype="float32", name="epoch")
        self.term_trackers = {term: keras.metrics.Mean(name=f"{term}_loss") for term in self.method.TERMS}
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def call(self, inputs, training=False):
        if self.pairs:
            return self.student_taps(inputs, training=training)
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        features = {}
        if self.pairs:
            student_logits, *student_features = y_pred
            teacher_logits, *teacher_features = self.teacher_taps(x, training=False)
            features = {"student_features": student_features, "teacher_features": teacher_features,
                        "connectors": self.connectors}
        else:
            student_logits = y_pred
            teacher_logits = self.teacher(x, training=False) if self.teacher is not None else y["teacher_logits"]
        terms = self.method.loss_terms(self.settings, y["label"], student_logits, teacher_logits,
                                       epoch=self.epoch, **features)
        # Under tf.distribute, Keras losses come back divided by the replica count (so that summed
        # gradients average over the global batch); undo that for the logged values, as Keras does for `loss`.
        replicas = runtime.replicas_in_sync()
        for term, value in terms.items():
            self.term_trackers[term].update_state(value * replicas)
        total = None
        for value in terms.values():
            total = value if total is None else total + value
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.accuracy_metric.update_state(y["label"], y_pred[0] if self.pairs else y_pred)
        return self.get_metrics_result()

    @property
    def metrics(self):
        return [*super().metrics, *self.term_trackers.values(), self.accuracy_metric]


class EpochCounter(keras.callbacks.Callback):
    """Tells the Distiller which epoch it trains (a resumed run starts at its next epoch)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch))
