"""Generated stand-in for a CIFAR data set: fast, learnable, and never mistaken for real accuracy."""

from __future__ import annotations

import numpy as np


def make_synthetic(train_size: int, test_size: int, seed: int = 0, num_classes: int = 10,
                   val_size: int = 0) -> dict[str, np.ndarray]:
    """Each class is a fixed coarse colour pattern plus noise; validation images follow the training ones."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(40, 215, size=(num_classes, 4, 4, 3))
    prototypes = prototypes.repeat(8, axis=1).repeat(8, axis=2)  # 4x4 blocks -> 32x32

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        images = prototypes[labels] + rng.normal(0, 30, size=(n, 32, 32, 3))
        return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)

    x_pool, y_pool = sample(train_size + val_size)
    x_test, y_test = sample(test_size)
    return {"x_train": x_pool[:train_size], "y_train": y_pool[:train_size],
            "x_val": x_pool[train_size:], "y_val": y_pool[train_size:], "x_test": x_test, "y_test": y_test}
