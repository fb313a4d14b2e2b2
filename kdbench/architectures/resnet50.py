"""The reference notebook's teacher: keras.applications ResNet50 (no top, global max pooling) + an MLP head."""

from __future__ import annotations

from pathlib import Path

from kdbench import KdbenchError

TEACHER = True  # builds a "backbone" and a "head" and takes weights and train_backbone
NOTOP_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
# stage name -> the backbone layer whose output it is (the last block of conv2_x .. conv5_x)
UPSAMPLE = None  # follows the config's model.upsample (the reference: x8, 256 px)
STAGES = {"stage1": "conv2_block3_out", "stage2": "conv3_block4_out", "stage3": "conv4_block6_out",
          "stage4": "conv5_block3_out"}


def build_backbone(weights: str | None, size: int):
    """ResNet50 without top, global max pooling; `weights` is 'imagenet', None or a .h5 file path."""
    import keras

    from kdbench.io import keras_home

    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise KdbenchError(f"the teacher's weights '{weights}' is not a file; use imagenet, null, "
                           f"or the path to {NOTOP_WEIGHTS_FILE}")
    try:
        return keras.applications.ResNet50(include_top=False, weights=weights, pooling="max",
                                           input_shape=(size, size, 3), name="backbone")
    except Exception as err:
        if weights != "imagenet":
            raise KdbenchError(f"cannot load ResNet50 weights from {weights} ({err}); it must be the "
                               f"Keras file {NOTOP_WEIGHTS_FILE} (no top)") from err
        cache = keras_home() / "models" / NOTOP_WEIGHTS_FILE
        raise KdbenchError(
            f"could not download the ImageNet weights for ResNet50 ({err}).\n"
            f"Offline? Copy {NOTOP_WEIGHTS_FILE} to {cache}, or set the teacher's weights to its path; "
            "weights: null trains from random initialisation.") from err


def build_head(feature_dim: int, num_classes: int):
    """The reference notebook's MLP head on pooled backbone features, returning logits."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((feature_dim,), name="features"),
        layers.Flatten(),
        layers.BatchNormalization(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.BatchNormalization(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.5),
        layers.BatchNormalization(),
        layers.Dense(num_classes, dtype="float32", name="logits"),  # float32 under mixed precision
    ], name="head")


def build(num_classes: int, upsample: int, weights: str | None = "imagenet", train_backbone: bool = True,
          name: str = "teacher"):
    """Caffe preprocessing and x`upsample` -> backbone -> head; a frozen backbone (BatchNorm too) runs in
    inference mode."""
    import keras

    from kdbench.architectures.layers import IMAGE_SHAPE, caffe_and_upsample, image_input, upsampling_steps

    backbone = build_backbone(weights, IMAGE_SHAPE[0] * 2 ** upsampling_steps(upsample))
    backbone.trainable = train_backbone
    head = build_head(backbone.output_shape[-1], num_classes)
    inputs = image_input()
    return keras.Model(inputs, head(backbone(caffe_and_upsample(inputs, upsample))), name=name)


def stage_model(model, stages):
    """images -> [logits, *stage outputs] in one pass: the backbone re-wired to also return its taps."""
    import keras

    from kdbench.architectures.layers import image_input, input_pipeline

    backbone, head = model.get_layer("backbone"), model.get_layer("head")
    tapped = keras.Model(backbone.inputs, [backbone.output, *(backbone.get_layer(STAGES[s]).output for s in stages)])
    inputs = image_input()
    pooled, *features = tapped(input_pipeline(model, inputs))
    return keras.Model(inputs, [head(pooled), *features])


def features_model(model):
    """images -> pooled backbone features: what the frozen teacher's head trains on when features are cached."""
    import keras

    from kdbench.architectures.layers import image_input, input_pipeline

    inputs = image_input()
    return keras.Model(inputs, model.get_layer("backbone")(input_pipeline(model, inputs)), name="features")
