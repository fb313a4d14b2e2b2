"""The CIFAR ShuffleNetV1 of the CRD / DKD tables ("ShuffleNetV1"; RepDistiller's and mdistiller's ShuffleV1:
3 groups, stage widths 240, 480, 960 with 4, 8, 4 blocks), at native 32 px.

Structure as the reference: a 1x1 stem conv to 24 channels, BN, ReLU (no stride, no pooling); three stages
whose first block has stride 2 and concatenates its average-pooled input (3x3, stride 2, pad 1, zeros counted)
to a residual branch of width stage - input, the others adding the identity. A block: a grouped 1x1 conv to a
quarter of its output width (ungrouped on the 24-channel stem), BN, ReLU, channel shuffle, a 3x3 depthwise conv
(the block's stride), BN, ReLU, a grouped 1x1 conv, BN; then the sum or concatenation, ReLU. Global average
pooling over the 4x4 map, a linear layer. No conv has a bias. 0.95 M trainable parameters at 100 classes.

Grouped 1x1 convs are Keras Conv2D(groups=3): they train and predict on TensorFlow's CPU build (2.21, with and
without XLA, checked for this module) and map to JAX's feature_group_count and PyTorch's groups, the same
weights as the reference's. BatchNorm and initialisation as PyTorch's defaults (epsilon 1e-5, momentum 0.1 in
PyTorch's sense: Keras's 0.9; weights and the linear bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as the reference
sets no other.
"""

from __future__ import annotations

import math

UPSAMPLE = 1  # native 32 px, whatever model.upsample says (a factor passed to build is honoured)
STEM_CHANNELS, GROUPS = 24, 3
WIDTHS, BLOCKS = (240, 480, 960), (4, 8, 4)
# stage name -> the layer whose output it is: the last block of each stage after its ReLU (the reference's
# f1..f3: 240, 480, 960 channels at 16, 8, 4 px)
STAGES = {f"stage{n}": f"stage{n}_block{blocks}_out" for n, blocks in enumerate(BLOCKS, start=1)}
BN = {"epsilon": 1e-5, "momentum": 0.9}  # PyTorch's BatchNorm2d defaults


def torch_default_init():
    """PyTorch's default conv and linear weight init, kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), ...)."""
    import keras

    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def _bottleneck(x, channels: int, strides: int, name: str):
    """One ShuffleNet unit whose residual branch has `channels` channels."""
    import keras
    from keras import layers

    from kdbench.architectures.layers import ChannelShuffle, torch_padding

    inputs, mid = x, channels // 4
    first_groups = 1 if x.shape[-1] == STEM_CHANNELS else GROUPS  # the reference's rule: the stem's 24 ungrouped
    x = layers.Conv2D(mid, 1, groups=first_groups, use_bias=False, kernel_initializer=torch_default_init(),
                      name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    if first_groups > 1:  # a shuffle of one group is the identity
        x = ChannelShuffle(first_groups, name=f"{name}_shuffle")(x)
    x, padding = torch_padding(x, 3, strides, f"{name}_conv2")
    x = layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=False,
                               depthwise_initializer=keras.initializers.RandomUniform(-1 / 3, 1 / 3),  # fan_in 9
                               name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn2")(x)
    x = layers.ReLU(name=f"{name}_relu2")(x)
    x = layers.Conv2D(channels, 1, groups=GROUPS, use_bias=False, kernel_initializer=torch_default_init(),
                      name=f"{name}_conv3")(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn3")(x)
    if strides == 1:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    else:
        shortcut, padding = torch_padding(inputs, 3, strides, f"{name}_shortcut")
        shortcut = layers.AveragePooling2D(3, strides=strides, padding=padding, name=f"{name}_shortcut")(shortcut)
        x = layers.Concatenate(name=f"{name}_concat")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def build(num_classes: int, upsample: int, name: str = "shufflenetv1", dataset: str | None = None):
    """The data set's mean/std normalisation (and x`upsample`, 1 by default) inside; returns logits."""
    import keras
    from keras import layers

    from kdbench.architectures.layers import cifar_standardize, image_input, preprocess_and_upsample

    inputs = image_input()
    x = preprocess_and_upsample(cifar_standardize(inputs, num_classes, dataset), upsample, None)
    x = layers.Conv2D(STEM_CHANNELS, 1, use_bias=False, kernel_initializer=torch_default_init(), name="stem_conv")(x)
    x = layers.BatchNormalization(**BN, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (width, blocks) in enumerate(zip(WIDTHS, BLOCKS), start=1):
        for block in range(1, blocks + 1):
            # the first block concatenates its pooled input: its own branch makes up the rest of the width
            channels = width - x.shape[-1] if block == 1 else width
            x = _bottleneck(x, channels, 2 if block == 1 else 1, f"stage{stage}_block{block}")
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
