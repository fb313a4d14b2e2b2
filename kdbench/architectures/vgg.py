"""The CIFAR VGGs with BatchNorm as RepDistiller / mdistiller build them (models/vgg.py, registered there as
vgg8 = vgg8_bn, vgg11 = vgg11_bn, vgg13 = vgg13_bn): the VGG convolutions without VGG's fully connected layers.

Five blocks of 3x3 convolutions (with bias) each followed by BatchNorm and ReLU; a 2x2 max-pool after blocks
0, 1 and 2 (the reference pools after block 3 only for 64 px inputs, so at 32 px blocks 3 and 4 both run on
4x4 maps), global average pooling after block 4 and one linear layer, 512 -> classes.

Stage taps are the reference's feature list [f1, f2, f3, f4]: the output of blocks 1 to 4 after their last
ReLU, before any pooling (16, 8, 4 and 4 px at 32 px; 128, 256, 512 and 512 channels).
"""

from __future__ import annotations

from kdbench.architectures import zoo

# channels of each block's convolutions (the reference's cfg "S", "A", "B")
CONFIGS = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}
POOLED_BLOCKS = (0, 1, 2)  # blocks followed by a max-pool at 32 px


def _variant(name: str):
    blocks = CONFIGS[name]

    def make(num_classes: int, upsample: int, name: str, dataset: str | None):
        import keras
        from keras import layers

        inputs, x = zoo.image_pipeline(num_classes, upsample, dataset)
        for block, convs in enumerate(blocks):
            for i, channels in enumerate(convs, start=1):
                x = zoo.conv(x, channels, 3, 1, f"block{block}_conv{i}", use_bias=True)
                x = layers.ReLU(name=f"block{block}_relu{i}")(zoo.batch_norm(x, f"block{block}_bn{i}"))
            if block in POOLED_BLOCKS:
                x = layers.MaxPool2D(2, strides=2, name=f"block{block}_pool")(x)
        return zoo.classifier(inputs, x, num_classes, name, keras.initializers.RandomNormal(0.0, 0.01))

    stages = {f"stage{b}": f"block{b}_relu{len(blocks[b])}" for b in (1, 2, 3, 4)}
    doc = f"{name}: CIFAR VGG with BatchNorm, blocks {blocks} (RepDistiller's {name}_bn)."
    return zoo.variant(doc, stages, make, name)


vgg8 = _variant("vgg8")
vgg11 = _variant("vgg11")
vgg13 = _variant("vgg13")
