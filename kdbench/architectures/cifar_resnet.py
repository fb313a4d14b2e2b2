"""The CIFAR ResNets of He et al. 2016 as RepDistiller / mdistiller build them (models/resnet.py): resnet8 ...
resnet110 (depth 6n + 2) and the 4x wider resnet8x4 and resnet32x4 of the CRD and DKD tables.

A 3x3 stem convolution (widths[0] channels) with BatchNorm and ReLU, then three stages of n basic blocks
(widths[1:] channels, strides 1, 2, 2), global average pooling (the reference's 8x8 average pool at 32 px) and
a linear classifier. Basic block: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU; the shortcut is
the identity, or a 1x1 convolution (no bias) and BatchNorm where the stride or the width changes (stages 2
and 3, and the first block of resnet8x4 / resnet32x4, whose 32-channel stem feeds 64-channel blocks).
Convolutions have no bias. Native 32 px: stage maps of 32, 16 and 8 px.

Stage taps are the reference's feature list [f1, f2, f3]: each stage's output after its last ReLU.
"""

from __future__ import annotations

from kdbench.architectures import zoo

NARROW = (16, 16, 32, 64)  # stem, stage1, stage2, stage3
WIDE = (32, 64, 128, 256)  # resnet8x4 and resnet32x4


def _block(x, channels: int, stride: int, name: str):
    from keras import layers

    shortcut = x
    x = zoo.conv(x, channels, 3, stride, f"{name}_conv1")
    x = layers.ReLU(name=f"{name}_relu1")(zoo.batch_norm(x, f"{name}_bn1"))
    x = zoo.batch_norm(zoo.conv(x, channels, 3, 1, f"{name}_conv2"), f"{name}_bn2")
    if stride != 1 or shortcut.shape[-1] != channels:
        shortcut = zoo.batch_norm(zoo.conv(shortcut, channels, 1, stride, f"{name}_proj"), f"{name}_proj_bn")
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def _maker(depth: int, widths: tuple[int, ...]):
    if (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet of basic blocks has depth 6n + 2, not {depth}")
    blocks = (depth - 2) // 6

    def make(num_classes: int, upsample: int, name: str, dataset: str | None):
        from keras import layers

        inputs, x = zoo.image_pipeline(num_classes, upsample, dataset)
        x = zoo.batch_norm(zoo.conv(x, widths[0], 3, 1, "stem_conv"), "stem_bn")
        x = layers.ReLU(name="stem_relu")(x)
        for stage, channels in enumerate(widths[1:], start=1):
            for block in range(1, blocks + 1):
                stride = 2 if stage > 1 and block == 1 else 1
                x = _block(x, channels, stride, f"stage{stage}_block{block}")
        return zoo.classifier(inputs, x, num_classes, name, *zoo.pytorch_linear_initializers(widths[-1]))

    return make, blocks


def _variant(depth: int, widths: tuple[int, ...] = NARROW, suffix: str = ""):
    make, blocks = _maker(depth, widths)
    name = f"resnet{depth}{suffix}"
    stages = {f"stage{s}": f"stage{s}_block{blocks}_out" for s in (1, 2, 3)}
    doc = f"{name}: CIFAR ResNet, {blocks} basic blocks per stage, widths {widths} (RepDistiller's {name})."
    return zoo.variant(doc, stages, make, name)


resnet8 = _variant(8)
resnet14 = _variant(14)
resnet20 = _variant(20)
resnet32 = _variant(32)
resnet44 = _variant(44)
resnet56 = _variant(56)
resnet110 = _variant(110)
resnet8x4 = _variant(8, WIDE, "x4")
resnet32x4 = _variant(32, WIDE, "x4")
