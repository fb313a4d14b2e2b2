"""The Wide ResNets of Zagoruyko and Komodakis 2016 as RepDistiller / mdistiller build them (models/wrn.py):
wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2 (WRN-depth-k, depth 6n + 4).

A 3x3 stem convolution (16 channels), three stages of n pre-activation blocks (16k, 32k, 64k channels, strides
1, 2, 2), a final BatchNorm and ReLU, global average pooling and a linear classifier. Pre-activation block:
BN-ReLU, conv3x3 (the block's stride), BN-ReLU, conv3x3, added to the shortcut; the shortcut is the block's
input where the width stays, else a 1x1 convolution of the *pre-activated* input (the reference applies BN-ReLU
to the input before both branches then). Dropout is 0 in the reference's networks, so there is none here.
Convolutions have no bias. Native 32 px: stage maps of 32, 16 and 8 px.

Stage taps are the reference's feature list [f1, f2, f3]: each stage's output (the last block's sum, before
the next BatchNorm).
"""

from __future__ import annotations

from kdbench.architectures import zoo


def _block(x, channels: int, stride: int, name: str):
    from keras import layers

    activated = layers.ReLU(name=f"{name}_relu1")(zoo.batch_norm(x, f"{name}_bn1"))
    same_width = x.shape[-1] == channels
    shortcut = x if same_width else zoo.conv(activated, channels, 1, stride, f"{name}_proj")
    y = zoo.conv(activated, channels, 3, stride, f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu2")(zoo.batch_norm(y, f"{name}_bn2"))
    y = zoo.conv(y, channels, 3, 1, f"{name}_conv2")
    return layers.Add(name=f"{name}_out")([shortcut, y])


def _variant(depth: int, widen: int):
    if (depth - 4) % 6:
        raise ValueError(f"a Wide ResNet has depth 6n + 4, not {depth}")
    blocks = (depth - 4) // 6
    widths = (16 * widen, 32 * widen, 64 * widen)
    name = f"wrn_{depth}_{widen}"

    def make(num_classes: int, upsample: int, name: str, dataset: str | None):
        import keras
        from keras import layers

        inputs, x = zoo.image_pipeline(num_classes, upsample, dataset)
        x = zoo.conv(x, 16, 3, 1, "stem_conv")
        for stage, channels in enumerate(widths, start=1):
            for block in range(1, blocks + 1):
                x = _block(x, channels, 2 if stage > 1 and block == 1 else 1, f"stage{stage}_block{block}")
        x = layers.ReLU(name="final_relu")(zoo.batch_norm(x, "final_bn"))
        kernel, _ = zoo.pytorch_linear_initializers(widths[-1])  # the reference zeroes only the bias
        return zoo.classifier(inputs, x, num_classes, name, kernel, keras.initializers.Zeros())

    stages = {f"stage{s}": f"stage{s}_block{blocks}_out" for s in (1, 2, 3)}
    doc = f"{name}: Wide ResNet, {blocks} pre-activation blocks per stage, widths {widths} (RepDistiller's)."
    return zoo.variant(doc, stages, make, name)


wrn_16_1 = _variant(16, 1)
wrn_16_2 = _variant(16, 2)
wrn_40_1 = _variant(40, 1)
wrn_40_2 = _variant(40, 2)
