"""What the CIFAR model zoo's families share (the CIFAR-100 tables of CRD and DKD, as RepDistiller and mdistiller
build them): one registry entry per named network, the reference's weight initialisation and PyTorch's
BatchNorm settings, the data set's mean/std normalisation inside the model, and stage taps by layer name.

A family module (cifar_resnet, wrn, vgg) writes `resnet56 = zoo.variant(...)` for each name it offers; the
registry line is `"resnet56": cifar_resnet.resnet56`. Such an entry is a small record with what an architecture
module declares (STAGES, UPSAMPLE, build, stage_model) rather than a module of its own: sixteen networks of
three families, each family one module.

Structure follows the PyTorch reference layer for layer, including what Keras does differently by default:
- BatchNorm: PyTorch's epsilon 1e-5 and momentum 0.1 (Keras's 0.9) instead of Keras's 1e-3 and 0.99;
- stride-2 3x3 convolutions pad one pixel on every side, as PyTorch's padding=1 (Keras's "same" would pad
  only the bottom and right of an even-sized map, shifting every sampled position by one pixel);
- the initialisation of each reference (He normal on fan-out for convolutions, its own for the classifier).

No TensorFlow is imported at the top level (the registry is read before TensorFlow starts).
"""

from __future__ import annotations

from types import SimpleNamespace

BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d default
BN_MOMENTUM = 0.9  # Keras's name for PyTorch's momentum=0.1 (the weight of the old moving statistic)


def variant(doc: str, stages: dict, make, name: str) -> SimpleNamespace:
    """The registry entry of one named network: `make(num_classes, upsample, name, dataset)` builds it,
    `stages` maps stage names to the layers tapped."""

    def build(num_classes: int, upsample: int = 1, name: str = name, dataset: str | None = None):
        """images (0-255) -> the data set's normalisation (and x`upsample`, 1 by default) -> logits.
        `dataset`: whose mean/std normalise the images (cifar10, cifar100; None: by the class count)."""
        return make(num_classes, upsample, name, dataset)

    def stage_model(model, wanted):
        """images -> [logits, *the wanted stage outputs]: the model's own layers, tapped, one pass."""
        import keras

        from kdbench.architectures.layers import stage_layers

        taps = [model.get_layer(layer).output for layer in stage_layers(stages, wanted)]
        return keras.Model(model.input, [model.output, *taps])

    return SimpleNamespace(__doc__=doc, STAGES=dict(stages), UPSAMPLE=1, build=build, stage_model=stage_model)


def image_pipeline(num_classes: int, upsample: int, dataset: str | None):
    """(input tensor, normalised and upsampled images): the part every zoo network starts with."""
    from keras import layers

    from kdbench.architectures.layers import cifar_standardize, image_input, upsampling_steps

    inputs = image_input()
    x = cifar_standardize(inputs, num_classes, dataset)
    for i in range(upsampling_steps(upsample)):
        x = layers.UpSampling2D(name=f"upsample_{i + 1}")(x)
    return inputs, x


def conv_initializer():
    """N(0, 2 / (k * k * out_channels)): kaiming_normal_(mode="fan_out") of the ResNets, the explicit normal of the
    WRNs and VGGs (the same distribution)."""
    import keras

    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def conv(x, channels: int, kernel: int, stride: int, name: str, use_bias: bool = False):
    """PyTorch's Conv2d(kernel, stride, padding=kernel // 2): symmetric zero padding, then a valid convolution
    (at stride 1 that is Keras's "same")."""
    from keras import layers

    padding = "same" if stride == 1 else "valid"
    if stride != 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(channels, kernel, strides=stride, padding=padding, use_bias=use_bias,
                         kernel_initializer=conv_initializer(), name=name)(x)


def batch_norm(x, name: str):
    from keras import layers

    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def pytorch_linear_initializers(in_features: int):
    """nn.Linear's default initialisation: weight and bias uniform on +-1 / sqrt(in_features)."""
    import keras

    bound = in_features ** -0.5
    return (keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform"),
            keras.initializers.RandomUniform(-bound, bound))


def classifier(inputs, x, num_classes: int, name: str, kernel_initializer, bias_initializer="zeros"):
    """Global average pooling (the reference's 8x8 average pool at 32 px) and the float32 logits layer."""
    import keras
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, dtype="float32", kernel_initializer=kernel_initializer,  # float32 under
                          bias_initializer=bias_initializer, name="logits")(x)  # mixed precision
    return keras.Model(inputs, logits, name=name)
