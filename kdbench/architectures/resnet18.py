"""The reference notebook's ResNet18 (ImageNet-style: 7x7/2 stem, 2x2/2 max-pool, two blocks per stage)."""

from __future__ import annotations

UPSAMPLE = None  # follows the configured model.upsample (the reference: x8, 256 px)
# stage name -> the layer whose output it is (the last block of that stage)
STAGES = {f"stage{n}": f"stage{n}_block2_out" for n in range(1, 5)}
CHANNELS = (64, 128, 256, 512)


def _block(x, channels: int, down_sample: bool, name: str):
    from keras import layers

    shortcut = x
    stride = 2 if down_sample else 1
    x = layers.Conv2D(channels, 3, strides=stride, padding="same", kernel_initializer="he_normal",
                      name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.Conv2D(channels, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    if down_sample:
        shortcut = layers.Conv2D(channels, 1, strides=2, padding="same", kernel_initializer="he_normal",
                                 name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def build(num_classes: int, upsample: int, name: str = "resnet18"):
    """Caffe preprocessing and x`upsample` inside, as the reference; returns logits."""
    from keras import layers

    from kdbench.architectures.layers import caffe_and_upsample, image_input

    inputs = image_input()
    x = caffe_and_upsample(inputs, upsample)
    x = layers.Conv2D(64, 7, strides=2, padding="same", kernel_initializer="he_normal", name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPool2D(2, strides=2, padding="same", name="stem_pool")(x)
    return stages_and_head(inputs, x, num_classes, name)


def stages_and_head(inputs, x, num_classes: int, name: str):
    """The four stages of two basic blocks, global average pooling and the logits, after a stem."""
    import keras
    from keras import layers

    for stage, channels in enumerate(CHANNELS, start=1):
        x = _block(x, channels, down_sample=stage > 1, name=f"stage{stage}_block1")
        x = _block(x, channels, down_sample=False, name=f"stage{stage}_block2")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)  # float32 under mixed precision
    return keras.Model(inputs, logits, name=name)


def stage_model(model, stages):
    """images -> [logits, *stage outputs]: the student's own layers, tapped."""
    import keras

    from kdbench.architectures.layers import stage_layers

    taps = [model.get_layer(layer).output for layer in stage_layers(STAGES, stages)]
    return keras.Model(model.input, [model.output, *taps])
