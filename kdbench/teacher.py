"""Teacher training: end to end, or (frozen backbone) the head alone on backbone features computed once.

With the backbone frozen (BatchNorm in inference mode) and no random augmentation, every epoch would
compute the same features again; computing them once gives the same training at a fraction of the cost.
A teacher that is not a backbone + head (the CIFAR zoo's resnet56, ...) trains end to end, like a student.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kdbench import KdbenchError, architectures, train


def check_options(architecture: str, weights, train_backbone: bool, cache_features: bool) -> None:
    """Refuse teacher options the architecture cannot take (architectures.teacher_option_errors), naming the fix."""
    problems = architectures.teacher_option_errors(architecture, weights, train_backbone, cache_features)
    if problems:
        raise KdbenchError(f"teacher {architecture}: " + "; ".join(problems))


def build(architecture: str, num_classes: int, upsample: int, *, weights, train_backbone: bool,
          cache_features: bool = False, bn_momentum: float | None = None) -> keras.Model:
    """The teacher to train, named "teacher": a backbone + head teacher built with its weights and trainable
    backbone, or any other architecture from random initialisation (after check_options)."""
    check_options(architecture, weights, train_backbone, cache_features)
    options = ({"weights": weights, "train_backbone": train_backbone}
               if architectures.is_backbone_teacher(architecture) else {})
    return architectures.build(architecture, num_classes, upsample, bn_momentum=bn_momentum, name="teacher",
                               **options)


def backbone_features(teacher: keras.Model, architecture: str, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Pooled backbone features of every image (float32), one forward pass each."""
    extractor = architectures.get(architecture).features_model(teacher)
    return np.asarray(extractor.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def fit_teacher(teacher: keras.Model, architecture: str, x: np.ndarray, y: np.ndarray, *, learning_rate: float,
                batch_size: int, epochs: int, seed: int, resume_dir: str | Path, cache_features: bool,
                jit_compile: bool | str = "auto", run_key: dict | None = None,
                validation: tuple[np.ndarray, np.ndarray] | None = None,
                optimizer: keras.optimizers.Optimizer | None = None,
                checkpoint: str = "last", tensorboard_dir: str | Path | None = None, views=None,
                test: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[pd.DataFrame, float, dict]:
    """Train `teacher` in place; returns its per-epoch history, the seconds spent computing features and which
    epoch's weights it holds ({"kept_epoch": ...}, with "kept_val_accuracy" for checkpoint "best").

    cache_features: the frozen backbone runs once per image and only the head trains, on those features;
    the teacher keeps the trained head, so saving it gives the full model. run_key: see fit_resumable.
    validation: (images, labels) scored after every epoch (val_accuracy, val_loss in the history).
    optimizer: the recipe's (kdbench.recipe), by default Adam at `learning_rate`. checkpoint: "last", or "best"
    (the epoch with the best validation accuracy; needs `validation`). views: a kdbench.augment.EpochViews to
    train on each epoch's augmented views (not with cache_features). test: (images, labels) scored after every
    epoch as test_accuracy, test_loss (reported only, never used to choose).
    """
    def compile_(model):
        model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)

    def fit(model, inputs, scorers):
        best = train.BestEpoch(model, Path(resume_dir) / "best") if checkpoint == "best" else None
        history = train.fit_resumable(model, train.make_dataset(inputs, y, batch_size, shuffle=True, seed=seed,
                                                                views=views),
                                      epochs, resume_dir, run_key=run_key,  # views first: it sets the epoch
                                      extra_callbacks=[*([views] if views else []), *scorers,
                                                       *([best] if best else [])],
                                      tensorboard_dir=tensorboard_dir)
        return history, best.restore() if best else {"kept_epoch": int(len(history))}

    if checkpoint == "best" and not validation:
        raise KdbenchError("checkpoint best keeps the epoch with the best validation accuracy, and there is no "
                           "validation split: give the data one (data.val_size > 0) or keep the last epoch")
    if not cache_features:
        compile_(teacher)
        scorers = [train.ValidationMetrics(teacher, *validation)] if validation else []
        scorers += [train.ValidationMetrics(teacher, *test, prefix="test")] if test else []
        history, kept = fit(teacher, x, scorers)
        return history, 0.0, kept
    if views is not None:
        raise KdbenchError("a frozen teacher's cached backbone features are computed once, on the images as they "
                           "are: augmentation needs cache_features false")
    if not architectures.is_backbone_teacher(architecture):
        check_options(architecture, None, True, cache_features)  # raises: nothing to cache without a backbone
    if teacher.get_layer("backbone").trainable:
        raise KdbenchError("backbone features can be cached only for a frozen teacher: a trainable backbone "
                           "changes every step; drop --cache-features")
    start = time.perf_counter()
    features = backbone_features(teacher, architecture, x, batch_size=max(batch_size, 128))
    scorers = []
    if validation:
        val_features = backbone_features(teacher, architecture, validation[0], batch_size=max(batch_size, 128))
        scorers = [train.ValidationMetrics(teacher.get_layer("head"), val_features, validation[1])]
    if test:
        test_features = backbone_features(teacher, architecture, test[0], batch_size=max(batch_size, 128))
        scorers.append(train.ValidationMetrics(teacher.get_layer("head"), test_features, test[1], prefix="test"))
    feature_seconds = time.perf_counter() - start
    print(f"computed backbone features of {len(x)} images once in {feature_seconds:.1f} s", flush=True)
    head = teacher.get_layer("head")
    compile_(head)
    history, kept = fit(head, features, scorers)
    return history, feature_seconds, kept
