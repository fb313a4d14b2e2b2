"""Data augmentation whose views can be cached: image i's view in epoch e is a pure function of
(augmentation seed, e, i), never of the run's seed, the shuffle order or how often the pipeline was restarted.

So every run of a teacher sees the same views, a teacher's logits on each epoch's views can be computed once
(teacher_logits) and shared by every method, setting and seed, and a resumed run sees in its next epoch the
views an uninterrupted run would have seen. The view: zero padding of 4 px on each side, a random 32x32 crop
(shifts of -4..4 px, uncovered pixels black as in torchvision's RandomCrop(32, padding=4)) and a random
horizontal flip, drawn with TensorFlow's stateless Philox generator.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kdbench import KdbenchError

PAD = 4


def view_seed(seed, epoch, index) -> tf.Tensor:
    """The stateless RNG seed of image `index` in `epoch` (shape [2], int64)."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x6B64, tf.int64)])  # 'kd': any fixed second word
    per_epoch = tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int64), alg="philox")
    return tf.random.experimental.stateless_fold_in(per_epoch, tf.cast(index, tf.int64), alg="philox")


def view(image: tf.Tensor, seed, epoch, index) -> tf.Tensor:
    """One image's augmented view (HxWxC, any float dtype): padded crop, then a flip, by (seed, epoch, index)."""
    height, width = image.shape[0], image.shape[1]
    draws = tf.random.stateless_uniform([3], view_seed(seed, epoch, index), alg="philox")
    dy = tf.cast(tf.floor(draws[0] * (2 * PAD + 1)), tf.int32)
    dx = tf.cast(tf.floor(draws[1] * (2 * PAD + 1)), tf.int32)
    padded = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]])
    cropped = tf.slice(padded, tf.stack([dy, dx, 0]), [height, width, image.shape[2]])
    return tf.cond(draws[2] < 0.5, lambda: tf.reverse(cropped, axis=[1]), lambda: cropped)


def epoch_views(x: np.ndarray, seed: int, epoch: int, batch_size: int = 256) -> tf.data.Dataset:
    """Every image's view in `epoch`, in index order, batched (what teacher_logits runs the teacher on)."""
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(len(x), dtype=np.int64)))
    ds = ds.map(lambda image, index: view(image, seed, epoch, index), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class EpochViews(keras.callbacks.Callback):
    """Tells a training pipeline (train.make_dataset) which epoch's views and cached targets to produce.

    Keras creates each epoch's dataset iterator after the epochs' on_epoch_begin, and a run resumed by
    BackupAndRestore starts at its own epoch number, so the pipeline reads the right epoch at every start.
    epoch_targets: per-epoch targets, name -> array of shape (epochs, images, ...), e.g. a teacher's cached
    logits on each epoch's views; the pipeline pairs image i's view in epoch e with row [e, i].
    Create it outside a tf.distribute strategy's scope (its variables live on the host, like the pipeline).
    """

    def __init__(self, seed: int, epoch_targets: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.seed = int(seed)
        self.epoch_targets = {}
        with tf.device("/CPU:0"):
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="augment_epoch")
            for name, values in (epoch_targets or {}).items():  # a variable, not a graph constant: no 2 GB cap
                values = np.asarray(values)
                self.epoch_targets[name] = (tf.Variable(values.reshape(-1, *values.shape[2:]), trainable=False,
                                                        name=f"epoch_{name}"), values.shape[0], values.shape[1])

    def on_epoch_begin(self, epoch, logs=None):
        for name, (_, epochs, _) in self.epoch_targets.items():
            if epoch >= epochs:
                raise KdbenchError(f"the cached per-epoch {name} cover {epochs} epochs and this run trains epoch "
                                   f"{epoch + 1}; recompute them for the run's epochs (rerun teacher_logits)")
        self.epoch.assign(epoch)

    def map_element(self, image, targets, index):
        """(image, targets, index) -> (the epoch's view of the image, targets with the epoch's rows joined)."""
        epoch = tf.identity(self.epoch)  # read once: the view and the cached targets come from one epoch
        image = view(image, self.seed, epoch, index)
        if self.epoch_targets:
            if not isinstance(targets, dict):
                raise ValueError("per-epoch targets need the targets as a dict, e.g. {'label': y}")
            targets = dict(targets)
            for name, (values, _, images) in self.epoch_targets.items():
                targets[name] = tf.gather(values, epoch * images + index)
        return image, targets
