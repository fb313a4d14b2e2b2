"""keras.applications MobileNetV2 (alpha 1.0, random initialisation) as a student: 'tf' preprocessing
(x / 127.5 - 1) and x2 upsampling inside, the backbone with global average pooling, Dense logits.

Why x2 (64 px) by default: Keras's MobileNetV2 downsamples by 32, so at 32 px its last blocks run on 2x2 and
1x1 maps, too coarse for CIFAR. At 64 px every map from the 24-channel stage on has the size it has in the
CIFAR MobileNetV2 of CRD / mdistiller / DKD (whose second stage has stride 1): 16, 8, 4, 2 px. It costs
0.050 GFLOPs per image (kdbench.cost.flops_per_image, a multiply-add = 2), against 0.013 at 32 px and 0.20 at
128 px, and 1.11 for resnet18-cifar at 32 px: the extra resolution is cheap, and more (x4) would buy maps
larger than the CIFAR papers' at 4x the cost.
"""

from __future__ import annotations

UPSAMPLE = 2  # 64 px, whatever model.upsample says (a factor passed to build is honoured)
# stage name -> the backbone layer whose output it is: the last block at strides 4, 8, 16, 32 (24, 32, 96, 320
# channels), mdistiller's MobileNetV2 feature taps (before the final 1x1 conv to 1280 channels, out_relu)
STAGES = {"stage1": "block_2_add", "stage2": "block_5_add", "stage3": "block_12_add",
          "stage4": "block_16_project_BN"}


def build(num_classes: int, upsample: int, name: str = "mobilenetv2"):
    """images -> 'tf' preprocessing and x`upsample` -> MobileNetV2 backbone (nested, "backbone") -> logits."""
    import keras
    from keras import layers

    from kdbench.architectures.layers import image_input, input_size, preprocess_and_upsample

    inputs = image_input()
    x = preprocess_and_upsample(inputs, upsample, "tf")
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=1.0, pooling="avg",
                                              input_shape=(input_size(upsample), input_size(upsample), 3),
                                              name="backbone")
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(backbone(x))  # float32 under mixed precision
    return keras.Model(inputs, logits, name=name)


def stage_model(model, stages):
    """images -> [logits, *stage outputs] in one pass: the backbone re-wired to also return its taps."""
    from kdbench.architectures.layers import stage_layers, tapped_backbone

    return tapped_backbone(model, stage_layers(STAGES, stages), head="logits")
