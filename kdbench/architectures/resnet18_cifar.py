"""The ResNet18 of CIFAR papers (He et al. 2016 as adapted by CRD, mdistiller, DKD): 3x3 stride-1 stem, no
max-pool, the four stages of two basic blocks of resnet18 (64, 128, 256, 512 channels; stride 2 and 1x1
projection shortcuts at stages 2-4), global average pooling, logits. Native 32 px: stage maps 32, 16, 8, 4 px,
1.11 GFLOPs per image (kdbench.cost.flops_per_image, a multiply-add = 2) against 4.75 for resnet18 at the
reference's 256 px, whose stage maps are 64, 32, 16, 8 px.

Preprocessing is resnet18's (caffe, inside the model), so that resnet18 at the reference's x8 and this network
at 32 px differ only in their stem and resolution; with BatchNorm right after the stem conv the input scaling
hardly matters, and KD only couples students to the teacher through its logits.
"""

from __future__ import annotations

from kdbench.architectures import resnet18
from kdbench.architectures.resnet18 import STAGES, stages_and_head  # noqa: F401  (the same blocks and stage taps)

UPSAMPLE = 1  # native 32 px, whatever model.upsample says (a factor passed to build is honoured)


def build(num_classes: int, upsample: int, name: str = "resnet18_cifar"):
    """Caffe preprocessing (and x`upsample`, 1 by default) inside; returns logits."""
    from keras import layers

    from kdbench.architectures.layers import caffe_and_upsample, image_input

    inputs = image_input()
    x = caffe_and_upsample(inputs, upsample)
    x = layers.Conv2D(64, 3, strides=1, padding="same", kernel_initializer="he_normal", name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    return stages_and_head(inputs, x, num_classes, name)


def stage_model(model, stages):
    """images -> [logits, *stage outputs]: the same taps as resnet18."""
    return resnet18.stage_model(model, stages)
