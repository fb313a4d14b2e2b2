"""The CIFAR ShuffleNetV2 of the CRD / DKD tables ("ShuffleNetV2"; RepDistiller's and mdistiller's ShuffleV2:
net size 1, stage widths 116, 232, 464 and 1024 at the end), at native 32 px.

Structure as the reference: a 1x1 stem conv to 24 channels, BN, ReLU (no stride, no max-pool); three stages,
each a down-sampling unit then 3, 7, 3 basic units. The down-sampling unit concatenates two branches of half the
stage's width, then shuffles the channels in 2 groups: left, a 3x3 stride-2 depthwise conv, BN, a 1x1 conv, BN,
ReLU; right, a 1x1 conv, BN, ReLU, a 3x3 stride-2 depthwise conv, BN, a 1x1 conv, BN, ReLU. A basic unit splits
the channels in halves, keeps the first and passes the second through a 1x1 conv, BN, ReLU, a 3x3 depthwise
conv, BN, a 1x1 conv, BN, ReLU, concatenates (kept half first) and shuffles in 2 groups. Then a 1x1 conv to
1024 channels, BN, ReLU, global average pooling over the 4x4 map, a linear layer. No conv has a bias.
1.36 M trainable parameters at 100 classes.

BatchNorm and initialisation as PyTorch's defaults, as in shufflenetv1.
"""

from __future__ import annotations

import math

UPSAMPLE = 1  # native 32 px, whatever model.upsample says (a factor passed to build is honoured)
STEM_CHANNELS, LAST_CHANNELS = 24, 1024
WIDTHS, BLOCKS = (116, 232, 464), (3, 7, 3)
# stage name -> the layer whose output it is: the last unit of each stage after its shuffle (the reference's
# f1..f3: 116, 232, 464 channels at 16, 8, 4 px)
STAGES = {f"stage{n}": f"stage{n}_block{blocks}_out" for n, blocks in enumerate(BLOCKS, start=1)}
BN = {"epsilon": 1e-5, "momentum": 0.9}  # PyTorch's BatchNorm2d defaults


def _conv_bn(x, channels: int, name: str, relu: bool = True):
    """1x1 conv, BN, optional ReLU."""
    from keras import layers

    from kdbench.architectures.shufflenetv1 import torch_default_init

    x = layers.Conv2D(channels, 1, use_bias=False, kernel_initializer=torch_default_init(), name=name)(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _depthwise_bn(x, strides: int, name: str):
    """3x3 depthwise conv (padding 1 as PyTorch's), BN, no ReLU."""
    import keras
    from keras import layers

    from kdbench.architectures.layers import torch_padding

    x, padding = torch_padding(x, 3, strides, name)
    x = layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=False,
                               depthwise_initializer=keras.initializers.RandomUniform(-1 / 3, 1 / 3),  # fan_in 9
                               name=name)(x)
    return layers.BatchNormalization(**BN, name=f"{name}_bn")(x)


def _down_unit(x, width: int, name: str):
    from keras import layers

    from kdbench.architectures.layers import ChannelShuffle

    half = width // 2
    left = _conv_bn(_depthwise_bn(x, 2, f"{name}_left_depthwise"), half, f"{name}_left_conv")
    right = _conv_bn(x, half, f"{name}_right_conv1")
    right = _conv_bn(_depthwise_bn(right, 2, f"{name}_right_depthwise"), half, f"{name}_right_conv2")
    x = layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_out")(x)


def _basic_unit(x, name: str):
    from keras import layers

    from kdbench.architectures.layers import ChannelShuffle, ChannelSlice

    channels = x.shape[-1]
    half = channels // 2  # the reference's int(channels * 0.5)
    kept = ChannelSlice(0, half, name=f"{name}_kept")(x)
    branch = ChannelSlice(half, channels, name=f"{name}_split")(x)
    branch = _conv_bn(branch, half, f"{name}_conv1")
    branch = _conv_bn(_depthwise_bn(branch, 1, f"{name}_depthwise"), half, f"{name}_conv2")
    x = layers.Concatenate(name=f"{name}_concat")([kept, branch])
    return ChannelShuffle(2, name=f"{name}_out")(x)


def build(num_classes: int, upsample: int, name: str = "shufflenetv2", dataset: str | None = None):
    """The data set's mean/std normalisation (and x`upsample`, 1 by default) inside; returns logits."""
    import keras
    from keras import layers

    from kdbench.architectures.layers import cifar_standardize, image_input, preprocess_and_upsample
    from kdbench.architectures.shufflenetv1 import torch_default_init

    inputs = image_input()
    x = preprocess_and_upsample(cifar_standardize(inputs, num_classes, dataset), upsample, None)
    x = _conv_bn(x, STEM_CHANNELS, "stem_conv")
    for stage, (width, blocks) in enumerate(zip(WIDTHS, BLOCKS), start=1):
        x = _down_unit(x, width, f"stage{stage}_down")
        for block in range(1, blocks + 1):
            x = _basic_unit(x, f"stage{stage}_block{block}")
    x = _conv_bn(x, LAST_CHANNELS, "last_conv")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)  # the reference's avg_pool2d(4) on the 4x4 map
    bound = 1.0 / math.sqrt(x.shape[-1])
    logits = layers.Dense(num_classes, kernel_initializer=torch_default_init(),
                          bias_initializer=keras.initializers.RandomUniform(-bound, bound),
                          dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(inputs, logits, name=name)


def stage_model(model, stages):
    """images -> [logits, *stage outputs]: the model's own layers, tapped."""
    from kdbench.architectures.layers import tapped_layers

    return tapped_layers(model, STAGES, stages)
