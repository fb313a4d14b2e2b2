"""The CIFAR MobileNetV2 of the CRD / DKD CIFAR-100 tables ("MobileNetV2"; RepDistiller's and mdistiller's
mobile_half: expansion 6, width 0.5), at native 32 px.

Structure as the reference: a 3x3 stride-2 stem conv (16 channels), BN, ReLU; seven groups of inverted residual
blocks (t, c, n, s) = (1, 8, 1, 1), (6, 12, 2, 1), (6, 16, 3, 2), (6, 32, 4, 2), (6, 48, 3, 1), (6, 80, 3, 2),
(6, 160, 1, 1), each block a 1x1 expansion (kept at t = 1, unlike keras.applications), BN, ReLU, a 3x3 depthwise
conv, BN, ReLU, a linear 1x1 projection and BN, plus the identity where stride is 1 and the width does not change;
a 1x1 conv to 1280 channels, BN, ReLU; average pooling over the final 2x2 map; a linear layer. No conv has a
bias; strided 3x3 convs pad 1 on every side as PyTorch does. 0.81 M trainable parameters at 100 classes.

Unlike "mobilenetv2" (keras.applications at x2) it keeps the reference's stride-2 stem and width 0.5.
BatchNorm as PyTorch's (epsilon 1e-5, momentum 0.1 in PyTorch's sense: Keras's 0.9) and the reference's
initialisation (convs N(0, 2 / (k * k * out channels)), linear N(0, 0.01) with zero bias).
"""

from __future__ import annotations

import math

UPSAMPLE = 1  # native 32 px, whatever model.upsample says (a factor passed to build is honoured)
EXPANSION, WIDTH = 6, 0.5
# (expansion, channels, blocks, stride) of each group of inverted residual blocks, before the width factor
GROUPS = ((1, 16, 1, 1), (EXPANSION, 24, 2, 1), (EXPANSION, 32, 3, 2), (EXPANSION, 64, 4, 2),
          (EXPANSION, 96, 3, 1), (EXPANSION, 160, 3, 2), (EXPANSION, 320, 1, 1))
STEM_CHANNELS, LAST_CHANNELS = int(32 * WIDTH), 1280  # the reference widens the last conv only for width > 1
# stage name -> the layer whose output it is: the reference's feature taps f1..f4, the ends of groups 2, 3, 5, 7
# (12, 16, 48, 160 channels at 16, 8, 4, 2 px)
STAGE_GROUPS = (2, 3, 5, 7)
BN = {"epsilon": 1e-5, "momentum": 0.9}  # PyTorch's BatchNorm2d defaults


def _channels(group: int) -> int:
    return int(GROUPS[group - 1][1] * WIDTH)


def _block_output(group: int, block: int) -> str:
    """Name of the layer ending block `block` of `group` (1-based): the residual sum, or the projection's BN."""
    previous = STEM_CHANNELS if group == 1 and block == 1 else _channels(group - 1 if block == 1 else group)
    stride = GROUPS[group - 1][3] if block == 1 else 1
    residual = stride == 1 and previous == _channels(group)
    return f"block{group}_{block}_add" if residual else f"block{group}_{block}_project_bn"


STAGES = {f"stage{n}": _block_output(group, GROUPS[group - 1][2]) for n, group in enumerate(STAGE_GROUPS, start=1)}


def _conv_init(kernel_size: int, channels: int):
    import keras

    return keras.initializers.RandomNormal(stddev=math.sqrt(2.0 / (kernel_size * kernel_size * channels)))


def _conv_bn(x, channels: int, kernel_size: int, strides: int, name: str, relu: bool = True):
    from keras import layers

    from kdbench.architectures.layers import torch_padding

    x, padding = torch_padding(x, kernel_size, strides, name)
    x = layers.Conv2D(channels, kernel_size, strides=strides, padding=padding, use_bias=False,
                      kernel_initializer=_conv_init(kernel_size, channels), name=name)(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _inverted_residual(x, channels: int, strides: int, expansion: int, name: str):
    from keras import layers

    from kdbench.architectures.layers import torch_padding

    inputs, hidden = x, x.shape[-1] * expansion
    x = _conv_bn(x, hidden, 1, 1, f"{name}_expand")
    x, padding = torch_padding(x, 3, strides, f"{name}_depthwise")
    # PyTorch's depthwise weight is (hidden, 1, 3, 3): its init counts 3 * 3 * hidden outputs
    x = layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=False,
                               depthwise_initializer=_conv_init(3, hidden), name=f"{name}_depthwise")(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_depthwise_bn")(x)
    x = layers.ReLU(name=f"{name}_depthwise_relu")(x)
    x = _conv_bn(x, channels, 1, 1, f"{name}_project", relu=False)
    if strides == 1 and inputs.shape[-1] == channels:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def build(num_classes: int, upsample: int, name: str = "mobilenetv2_cifar", dataset: str | None = None):
    """The data set's mean/std normalisation (and x`upsample`, 1 by default) inside; returns logits."""
    import keras
    from keras import layers

    from kdbench.architectures.layers import cifar_standardize, image_input, preprocess_and_upsample

    inputs = image_input()
    x = preprocess_and_upsample(cifar_standardize(inputs, num_classes, dataset), upsample, None)
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem_conv")
    for group, (expansion, _, blocks, stride) in enumerate(GROUPS, start=1):
        for block in range(1, blocks + 1):
            x = _inverted_residual(x, _channels(group), stride if block == 1 else 1, expansion,
                                   f"block{group}_{block}")
    x = _conv_bn(x, LAST_CHANNELS, 1, 1, "last_conv")
    # the reference's AvgPool2d(input_size // 16, ceil_mode=True) covers the whole final map: a global average
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                          dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(inputs, logits, name=name)


def stage_model(model, stages):
    """images -> [logits, *stage outputs]: the model's own layers, tapped."""
    from kdbench.architectures.layers import tapped_layers

    return tapped_layers(model, STAGES, stages)
