"""Pieces every architecture shares: the reference notebook's input pipeline as layers inside the model."""

from __future__ import annotations

import math

import keras
from keras import layers

from kdbench import KdbenchError

IMAGE_SHAPE = (32, 32, 3)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="kdbench")
class CaffePreprocess(layers.Layer):
    """keras.applications' 'caffe' preprocessing (RGB -> BGR, ImageNet channel means subtracted) as a layer.

    It computes in float32 under any precision policy, so the numbers are those of preprocess_input.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, images):
        bgr = keras.ops.flip(keras.ops.cast(images, "float32"), axis=-1)
        return bgr - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype="float32")


def upsampling_steps(factor: int) -> int:
    """Number of x2 nearest-neighbour upsamplings for `factor` (the reference uses 8: 32 -> 256 px)."""
    steps = int(round(math.log2(factor))) if factor >= 1 else -1
    if steps < 0 or 2 ** steps != factor:
        raise KdbenchError(f"model.upsample is {factor}; it must be a power of two (1, 2, 4, 8)")
    return steps


def image_input() -> keras.KerasTensor:
    return keras.Input(IMAGE_SHAPE, name="image")


def caffe_and_upsample(images, upsample: int):
    """The reference notebook's input pipeline: caffe preprocessing, then x`upsample` nearest upsampling."""
    x = CaffePreprocess(name="preprocess")(images)
    for i in range(upsampling_steps(upsample)):
        x = layers.UpSampling2D(name=f"upsample_{i + 1}")(x)
    return x


def input_pipeline(model, images):
    """Apply `model`'s own preprocessing and upsampling layers (stateless) to a new input tensor."""
    x = images
    for layer in model.layers:
        if layer.name == "preprocess" or layer.name.startswith("upsample_"):
            x = layer(x)
    return x
