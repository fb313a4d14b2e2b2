"""Data augmentation whose views can be cached: image i's view in epoch e is a pure function of
(augmentation seed, e, i), never of the run's seed, the shuffle order, how often the pipeline was restarted or
the Keras backend.

So every run of a teacher sees the same views, a teacher's logits on each epoch's views can be computed once
(teacher_logits) and shared by every method, setting, seed and backend, and a resumed run sees in its next
epoch the views an uninterrupted run would have seen. The view: zero padding of 4 px on each side, a random
32x32 crop (shifts of -4..4 px, uncovered pixels black as in torchvision's RandomCrop(32, padding=4)) and a
random horizontal flip. The draws are a counter-based hash of (seed, epoch, index) in NumPy, the same numbers
on every backend and machine; the pipelines (kdbench.runtime) only move pixels by them.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from kdbench import KdbenchError

PAD = 4
# Version 2: views drawn in NumPy (version 1 drew them with TensorFlow's stateless Philox ops: other views, so
# teacher logits cached on version 1's views do not pair with version 2's; the workflow recomputes them, since
# this file is part of teacher_logits' code hash, and resume keys name the version).
VERSION = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 whose every output bit depends on every input bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _words(values) -> np.ndarray:
    values = np.asarray(values)
    if values.size and values.min() < 0:
        raise KdbenchError(f"augmentation seeds, epochs and image indices are non-negative, not {values.min()}")
    return values.astype(np.uint64)


def view_params(seed: int, epoch: int, indices) -> np.ndarray:
    """(dy, dx, flip) of each image index in `epoch`, shape (n, 3), int64: the crop's top-left corner in the
    padded image (0..2*PAD; PAD is no shift) and 1 to mirror the crop."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        key = _mix(_mix(_words(seed) + _GOLDEN) ^ _words(epoch))
        h = _mix(key ^ (_words(indices) * _GOLDEN + _GOLDEN))
    positions = np.uint64(2 * PAD + 1)
    dy = ((h >> np.uint64(48)) * positions) >> np.uint64(16)  # top 16 bits, scaled to 0..8 (Lemire's way)
    dx = (((h >> np.uint64(32)) & np.uint64(0xFFFF)) * positions) >> np.uint64(16)
    flip = h & np.uint64(1)
    return np.stack([dy, dx, flip], axis=-1).astype(np.int64).reshape(-1, 3)


def apply_views(images: np.ndarray, dy, dx, flip) -> np.ndarray:
    """Images (n, H, W, C) -> their views by (dy, dx, flip): exact data movement, the input's dtype."""
    images = np.asarray(images)
    n, height, width = images.shape[:3]
    padded = np.pad(images, [(0, 0), (PAD, PAD), (PAD, PAD), (0, 0)])
    rows = np.asarray(dy)[:, None] + np.arange(height)
    columns = np.asarray(dx)[:, None] + np.arange(width)
    columns = np.where(np.asarray(flip)[:, None] > 0, columns[:, ::-1], columns)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], columns[:, None, :]]


def views(images: np.ndarray, seed: int, epoch: int, indices) -> np.ndarray:
    """The views in `epoch` of `images`, which are the images with these indices in the training set."""
    return apply_views(images, *view_params(seed, epoch, indices).T)


def view(image: np.ndarray, seed: int, epoch: int, index: int) -> np.ndarray:
    """One image's augmented view (HxWxC): padded crop, then a flip, by (seed, epoch, index)."""
    return views(np.asarray(image)[None], seed, epoch, [index])[0]


class _EpochViewBatches(keras.utils.PyDataset):
    """Every image's view in one epoch, in index order, batched: what teacher_logits runs the teacher on."""

    def __init__(self, x, seed: int, epoch: int, batch_size: int):
        super().__init__()
        self.x, self.seed, self.epoch, self.batch_size = x, seed, epoch, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, batch: int):
        if not 0 <= batch < len(self):
            raise IndexError(batch)
        start = batch * self.batch_size
        indices = np.arange(start, min(start + self.batch_size, len(self.x)))
        return views(self.x[indices], self.seed, self.epoch, indices)


def epoch_views(x: np.ndarray, seed: int, epoch: int, batch_size: int = 256) -> keras.utils.PyDataset:
    """Every image's view in `epoch`, in index order, in batches of NumPy arrays (model.predict takes it)."""
    return _EpochViewBatches(np.asarray(x), int(seed), int(epoch), int(batch_size))


class EpochViews(keras.callbacks.Callback):
    """Tells a training pipeline (kdbench.runtime.make_dataset) which epoch's views and cached targets to produce.

    Keras creates each epoch's dataset iterator after the epochs' on_epoch_begin, and a run resumed by
    BackupAndRestore starts at its own epoch number, so the pipeline reads the right epoch at every start.
    epoch_targets: per-epoch targets, name -> array of shape (epochs, images, ...), e.g. a teacher's cached
    logits on each epoch's views; the pipeline pairs image i's view in epoch e with row [e, i].
    Pipelines subscribe to the epoch through `listeners` (functions of the epoch number).
    """

    def __init__(self, seed: int, epoch_targets: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.seed = int(seed)
        self.epoch = 0
        self.epoch_targets = {name: np.asarray(values) for name, values in (epoch_targets or {}).items()}
        self.listeners = []

    def on_epoch_begin(self, epoch, logs=None):
        for name, values in self.epoch_targets.items():
            if epoch >= values.shape[0]:
                raise KdbenchError(f"the cached per-epoch {name} cover {values.shape[0]} epochs and this run trains "
                                   f"epoch {epoch + 1}; recompute them for the run's epochs (rerun teacher_logits)")
        self.epoch = int(epoch)
        for listener in self.listeners:
            listener(self.epoch)
