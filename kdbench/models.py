"""The seed's models, ending in logits: ResNet50 teachers with an MLP head, and an ImageNet-style ResNet18."""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
from keras import layers

from kdbench import KdbenchError
from kdbench.datasets import get as _dataset
from kdbench.io import keras_home

IMAGE_SHAPE = (32, 32, 3)
RESNET50_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET18_STAGES = (64, 128, 256, 512)
NUM_CLASSES = _dataset("cifar10").num_classes  # until models take num_classes from the data set file


def upsampling_steps(factor: int) -> int:
    """Number of x2 nearest-neighbour upsamplings for `factor` (the seed uses 8: 32 -> 256 px)."""
    steps = int(round(math.log2(factor))) if factor >= 1 else -1
    if steps < 0 or 2 ** steps != factor:
        raise KdbenchError(f"model.upsample is {factor}; it must be a power of two (1, 2, 4, 8)")
    return steps


def _upsample(x, factor: int):
    for i in range(upsampling_steps(factor)):
        x = layers.UpSampling2D(name=f"upsample_{i + 1}")(x)
    return x


def _resnet_block(x, channels: int, down_sample: bool, name: str):
    shortcut = x
    stride = 2 if down_sample else 1
    x = layers.Conv2D(channels, 3, strides=stride, padding="same", kernel_initializer="he_normal",
                      name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.Conv2D(channels, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    if down_sample:
        shortcut = layers.Conv2D(channels, 1, strides=2, padding="same", kernel_initializer="he_normal",
                                 name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def build_resnet18(upsample: int = 8, num_classes: int = NUM_CLASSES, name: str = "resnet18") -> keras.Model:
    """The seed's ResNet18 (7x7/2 stem, 2x2/2 max-pool, two blocks per stage), returning logits."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = _upsample(inputs, upsample)
    x = layers.Conv2D(64, 7, strides=2, padding="same", kernel_initializer="he_normal", name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPool2D(2, strides=2, padding="same", name="stem_pool")(x)
    for stage, channels in enumerate(RESNET18_STAGES, start=1):
        x = _resnet_block(x, channels, down_sample=stage > 1, name=f"stage{stage}_block1")
        x = _resnet_block(x, channels, down_sample=False, name=f"stage{stage}_block2")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(inputs, logits, name=name)


def build_teacher_head(feature_dim: int = 2048, num_classes: int = NUM_CLASSES) -> keras.Model:
    """The seed's MLP head on pooled ResNet50 features, returning logits."""
    return keras.Sequential([
        keras.Input((feature_dim,), name="features"),
        layers.Flatten(),
        layers.BatchNormalization(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.BatchNormalization(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.5),
        layers.BatchNormalization(),
        layers.Dense(num_classes, dtype="float32", name="logits"),  # float32 under mixed precision
    ], name="head")


def build_backbone(weights: str | None, upsample: int) -> keras.Model:
    """ResNet50 without top, global max pooling; `weights` is 'imagenet', None or a .h5 file path."""
    size = IMAGE_SHAPE[0] * 2 ** upsampling_steps(upsample)
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise KdbenchError(f"model.weights is '{weights}', which is not a file; use imagenet, null, "
                           f"or the path to {RESNET50_NOTOP_FILE}")
    try:
        return keras.applications.ResNet50(include_top=False, weights=weights, pooling="max",
                                           input_shape=(size, size, 3), name="backbone")
    except Exception as err:
        if weights != "imagenet":
            raise KdbenchError(f"cannot load ResNet50 weights from {weights} ({err}); it must be the "
                               f"Keras file {RESNET50_NOTOP_FILE} (no top)") from err
        cache = keras_home() / "models" / RESNET50_NOTOP_FILE
        raise KdbenchError(
            f"could not download the ImageNet weights for ResNet50 ({err}).\n"
            f"Offline? Copy {RESNET50_NOTOP_FILE} to {cache}, or set model.weights to its path; "
            "model.weights: null trains from random initialisation.") from err


def on_images(upsample: int, *stages, name: str) -> keras.Model:
    """A model on 32x32 images: x`upsample` nearest upsampling, then each stage in turn."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = _upsample(inputs, upsample)
    for stage in stages:
        x = stage(x)
    return keras.Model(inputs, x, name=name)


def build_teacher(weights: str | None, upsample: int, frozen: bool) -> keras.Model:
    """Upsample -> ResNet50 backbone -> MLP head; a frozen backbone (BatchNorm too) runs in inference mode."""
    backbone = build_backbone(weights, upsample)
    backbone.trainable = not frozen
    head = build_teacher_head(backbone.output_shape[-1])
    return on_images(upsample, backbone, head, name="teacher_frozen" if frozen else "teacher_finetuned")


def feature_extractor(teacher: keras.Model, upsample: int) -> keras.Model:
    """The teacher without its head (image -> upsample -> backbone), sharing the teacher's backbone."""
    return on_images(upsample, teacher.get_layer("backbone"), name="features")


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a .keras checkpoint (safe mode on) with an actionable error."""
    if not Path(path).is_file():
        raise KdbenchError(f"model file {path} is missing; rerun the training step that writes it")
    try:
        return keras.models.load_model(path)
    except Exception as err:
        raise KdbenchError(f"cannot load model {path} ({err}); delete it and rerun its training step") from err


def preprocess(images):
    """ResNet50's 'caffe' preprocessing (RGB->BGR, ImageNet mean subtracted), as the seed does."""
    import numpy as np
    from keras.applications.resnet50 import preprocess_input

    return preprocess_input(images.astype(np.float32))
