"""The input pipeline without TensorFlow: a keras.utils.PyDataset of NumPy batches (JAX, PyTorch).

The same batches as the tf.data pipeline in structure (batch size, the last smaller batch, targets as given,
per-epoch targets joined by image index), and in content up to the shuffle order: epoch e's order is a
permutation drawn from (seed, e), so a resumed run sees the order an uninterrupted one would have seen.
"""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np

from kdbench import augment


class ArrayBatches(keras.utils.PyDataset):
    """Batches of (images, targets) in epoch order; set_epoch (fit_resumable's callback, EpochViews) says which."""

    def __init__(self, x, targets, batch_size: int, shuffle: bool, seed: int = 0, views=None):
        super().__init__()
        self.x, self.targets, self.kdbench_batch_size = x, targets, int(batch_size)
        self.shuffle, self.seed, self.views = shuffle, int(seed), views
        self.epoch, self._order = 0, None
        if views is not None:
            views.listeners.append(self.set_epoch)
            self.epoch = views.epoch

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._order = int(epoch), None

    def order(self) -> np.ndarray:
        if self._order is None:
            n = len(self.x)
            self._order = (np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch])).permutation(n)
                           if self.shuffle else np.arange(n))
        return self._order

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.kdbench_batch_size)

    @property
    def num_batches(self) -> int:
        return len(self)

    def __getitem__(self, batch: int):
        if not 0 <= batch < len(self):
            raise IndexError(batch)  # ends iter(dataset)
        index = self.order()[batch * self.kdbench_batch_size:(batch + 1) * self.kdbench_batch_size]
        images = self.x[index]
        targets = keras.tree.map_structure(lambda values: np.asarray(values)[index], self.targets)
        if self.views is not None:
            images = augment.apply_views(images, *augment.view_params(self.views.seed, self.epoch, index).T)
            if self.views.epoch_targets:
                if not isinstance(targets, dict):
                    raise ValueError("per-epoch targets need the targets as a dict, e.g. {'label': y}")
                for name, values in self.views.epoch_targets.items():
                    targets[name] = values[self.epoch, index]
        return images, targets


class OneDevice:
    """The strategy of a job on one device (JAX, PyTorch): no scope to enter, one replica."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def distribution_strategy(devices=None) -> OneDevice:
    # Each job computes on the one device it sees (claim_gpus hides the others); Keras's DataParallel over
    # several GPUs on JAX is not wired in.
    return OneDevice()


def make_dataset(x, targets, batch_size, shuffle, seed, views):
    return ArrayBatches(np.asarray(x), targets, batch_size, shuffle, seed, views)


def timed_peak(matmul, a, size: int, repeats: int, sync) -> float:
    """Best GFLOP/s of `matmul(a, a)` over `repeats` runs (after a warm-up), `sync` waiting for the result."""
    import time

    sync(matmul(a, a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sync(matmul(a, a))
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9
