"""Pieces every architecture shares: the input pipeline (preprocessing, upsampling) as layers inside the model,
and the tapping of stage outputs."""

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


@keras.saving.register_keras_serializable(package="kdbench")
class TfPreprocess(layers.Layer):
    """keras.applications' 'tf' preprocessing (pixels scaled to [-1, 1]: x / 127.5 - 1) as a layer, in float32."""

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, images):
        return keras.ops.cast(images, "float32") / 127.5 - 1.0


# Per-channel mean and std of pixels in [0, 1] that the CIFAR papers normalise with (torchvision's ToTensor then
# Normalize): CIFAR-100's as RepDistiller and mdistiller use them, CIFAR-10's of its 50,000 training images.
CIFAR_MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


@keras.saving.register_keras_serializable(package="kdbench")
class Standardize(layers.Layer):
    """(pixels / 255 - mean) / std per channel (a data set's normalisation) as a layer, in float32."""

    def __init__(self, mean, std, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise KdbenchError(f"Standardize needs 3 means and 3 positive stds, got mean={mean}, std={std}")
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    def call(self, images):
        mean = keras.ops.convert_to_tensor(self.mean, dtype="float32")
        std = keras.ops.convert_to_tensor(self.std, dtype="float32")
        return (keras.ops.cast(images, "float32") / 255.0 - mean) / std

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def cifar_standardize(images, num_classes: int, dataset: str | None = None):
    """The CIFAR data set's mean/std normalisation as the model's "preprocess" layer (input_pipeline finds it):
    `dataset`'s statistics, or where it is None CIFAR-100's for 100 classes and CIFAR-10's otherwise (build gets
    the class count, not the data set; with BatchNorm after the stem the difference hardly matters)."""
    if dataset is None:
        dataset = "cifar100" if num_classes == 100 else "cifar10"
    if dataset not in CIFAR_MEAN_STD:
        raise KdbenchError(f"no normalisation statistics for data set '{dataset}'; known: {', '.join(CIFAR_MEAN_STD)}")
    mean, std = CIFAR_MEAN_STD[dataset]
    return Standardize(mean, std, name="preprocess")(images)


@keras.saving.register_keras_serializable(package="kdbench")
class ChannelShuffle(layers.Layer):
    """ShuffleNet's channel shuffle on channels-last maps: channel k * (C / g) + i goes to i * g + k, what the
    reference's view(N, g, C/g, H, W).permute(0, 2, 1, 3, 4) does on channels-first ones."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, x):
        height, width, channels = x.shape[1:]
        grouped = keras.ops.reshape(x, (-1, height, width, self.groups, channels // self.groups))
        return keras.ops.reshape(keras.ops.transpose(grouped, (0, 1, 2, 4, 3)), (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package="kdbench")
class ChannelSlice(layers.Layer):
    """Channels [start, stop) of a channels-last map (ShuffleNetV2's channel split)."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def torch_padding(x, kernel_size: int, strides: int, name: str):
    """(x, padding) that make a Keras conv or pooling window sit where PyTorch's padding=kernel_size // 2 puts it.

    Keras's "same" pads a stride-2 layer on an even map by 0 before and 1 after, one pixel off PyTorch's 1 and 1:
    strided layers get explicit zero padding and "valid" (an average pool then counts the zeros, as PyTorch's
    count_include_pad=True does); stride 1 keeps "same", which is symmetric for odd kernels."""
    if strides == 1:
        return x, "same"
    return layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x), "valid"


# keras.applications' preprocessing modes -> the layer doing it; None: the model normalises its inputs itself
PREPROCESSING = {"caffe": CaffePreprocess, "tf": TfPreprocess, None: None}


def upsampling_steps(factor: int) -> int:
    """Number of x2 nearest-neighbour upsamplings for `factor` (the reference uses 8: 32 -> 256 px)."""
    steps = int(round(math.log2(factor))) if factor >= 1 else -1
    if steps < 0 or 2 ** steps != factor:
        raise KdbenchError(f"model.upsample is {factor}; it must be a power of two (1, 2, 4, 8)")
    return steps


def input_size(upsample: int) -> int:
    """Side in pixels of the images the network proper sees: 32 * `upsample`."""
    return IMAGE_SHAPE[0] * 2 ** upsampling_steps(upsample)


def image_input() -> keras.KerasTensor:
    return keras.Input(IMAGE_SHAPE, name="image")


def preprocess_and_upsample(images, upsample: int, mode: str | None):
    """`mode` preprocessing ('caffe', 'tf' or None), then x`upsample` nearest upsampling: the layers that
    input_pipeline finds again by their names."""
    if mode not in PREPROCESSING:
        raise KdbenchError(f"unknown preprocessing '{mode}'; known: caffe, tf, None")
    x = images if PREPROCESSING[mode] is None else PREPROCESSING[mode](name="preprocess")(images)
    for i in range(upsampling_steps(upsample)):
        x = layers.UpSampling2D(name=f"upsample_{i + 1}")(x)
    return x


def caffe_and_upsample(images, upsample: int):
    """The reference notebook's input pipeline: caffe preprocessing, then x`upsample` nearest upsampling."""
    return preprocess_and_upsample(images, upsample, "caffe")


def input_pipeline(model, images):
    """Apply `model`'s own preprocessing and upsampling layers (stateless) to a new input tensor."""
    x = images
    for layer in model.layers:
        if layer.name == "preprocess" or layer.name.startswith("upsample_"):
            x = layer(x)
    return x


def stage_layers(stages: dict, wanted) -> list[str]:
    """The layer names of the `wanted` stages in an architecture's STAGES, with an actionable error."""
    unknown = [stage for stage in wanted if stage not in stages]
    if unknown:
        raise KdbenchError(f"unknown stage(s) {', '.join(unknown)}; this architecture taps {', '.join(stages)}")
    return [stages[stage] for stage in wanted]


def tapped_layers(model, stages: dict, wanted):
    """images -> [logits, *outputs of the `wanted` stages of `stages`] for a model whose stage layers are its own
    (not in a nested backbone): one pass, every layer shared with `model`."""
    taps = [model.get_layer(layer).output for layer in stage_layers(stages, wanted)]
    return keras.Model(model.input, [model.output, *taps])


def tapped_backbone(model, layer_names, backbone: str = "backbone", head: str = "head"):
    """images -> [logits, *outputs of the backbone's `layer_names`] for a model made of its input pipeline, a nested
    `backbone` model and a `head` layer on the backbone's output: one pass, the backbone re-wired to also
    return its taps, every layer (and weight) shared with `model`."""
    inner = model.get_layer(backbone)
    tapped = keras.Model(inner.input, [inner.output, *(inner.get_layer(name).output for name in layer_names)])
    inputs = image_input()
    pooled, *features = tapped(input_pipeline(model, inputs))
    return keras.Model(inputs, [model.get_layer(head)(pooled), *features])
