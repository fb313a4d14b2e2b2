"""Teachers on any keras.applications backbone: the reference notebook's teacher made generic.

A teacher is its preprocessing and x`upsample` inside the model -> the no-top backbone with global pooling
(a nested model named "backbone") -> the reference's MLP head (a nested model named "head") -> logits.
A teacher module describes its backbone with a Backbone record and gets its functions from teacher():

    SPEC = applications.Backbone(constructor="ResNet101", preprocessing="caffe",
                                 notop_weights_file="resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                 stages={"stage1": "conv2_block3_out", ...})
    TEACHER, UPSAMPLE, STAGES = True, None, SPEC.stages
    build, stage_model, features_model = applications.teacher(SPEC)

No TensorFlow is imported at the top level (the registry is read before TensorFlow starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdbench import KdbenchError


@dataclass(frozen=True)
class Backbone:
    """What the generic teacher needs to know about one keras.applications backbone.

    constructor: the keras.applications function ("ResNet50", "EfficientNetB0", ...).
    preprocessing: keras.applications' preprocess_input mode for it, done by a layer inside the teacher:
        "caffe" (ResNet, VGG), "tf" (MobileNet, Xception, ...), or None where the Keras model normalises its
        0-255 inputs itself (EfficientNet, ConvNeXt).
    notop_weights_file: Keras's file name of its no-top ImageNet weights (WEIGHTS_PATH_NO_TOP in
        keras/src/applications/*.py), named in the offline message.
    stages: stage name -> backbone layer whose output it is, at strides 4, 8, 16 and 32.
    pooling: the global pooling after the backbone ("max": the reference notebook's).
    imagenet_only_graph: Keras builds another graph for weights="imagenet" than for a weights file
        (EfficientNet adds an input rescaling only then), so a weights file cannot stand in for "imagenet".
    """

    constructor: str
    preprocessing: str | None
    notop_weights_file: str
    stages: dict
    pooling: str = "max"
    imagenet_only_graph: bool = False


def build_backbone(spec: Backbone, weights: str | None, size: int):
    """The no-top backbone with global pooling, named "backbone"; `weights` is 'imagenet', None or a .h5 path."""
    import keras

    from kdbench.io import keras_home

    cache = keras_home() / "models" / spec.notop_weights_file
    if weights not in (None, "imagenet"):
        if not Path(weights).is_file():
            raise KdbenchError(f"the teacher's weights '{weights}' is not a file; use imagenet, null, "
                               f"or the path to {spec.notop_weights_file}")
        if spec.imagenet_only_graph:
            raise KdbenchError(
                f"{spec.constructor} takes its ImageNet weights only as weights: imagenet (Keras adds the "
                f"matching input scaling only then); copy {spec.notop_weights_file} to {cache} and set "
                "weights: imagenet")
    try:
        # Built under its Keras name and renamed: EfficientNet derives its weights file name from the name.
        backbone = getattr(keras.applications, spec.constructor)(
            include_top=False, weights=weights, pooling=spec.pooling, input_shape=(size, size, 3))
    except Exception as err:
        if weights != "imagenet":
            raise KdbenchError(f"cannot load {spec.constructor} weights from {weights} ({err}); it must be the "
                               f"Keras file {spec.notop_weights_file} (no top)") from err
        path_hint = "" if spec.imagenet_only_graph else ", or set the teacher's weights to its path"
        raise KdbenchError(
            f"could not download the ImageNet weights for {spec.constructor} ({err}).\n"
            f"Offline? Copy {spec.notop_weights_file} to {cache}{path_hint}; "
            "weights: null trains from random initialisation.") from err
    backbone.name = "backbone"
    return backbone


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


def build_teacher(spec: Backbone, num_classes: int, upsample: int, weights: str | None = "imagenet",
                  train_backbone: bool = True, name: str = "teacher"):
    """Preprocessing and x`upsample` -> backbone -> head; a frozen backbone (BatchNorm too) runs in inference
    mode."""
    import keras

    from kdbench.architectures.layers import image_input, input_size, preprocess_and_upsample

    backbone = build_backbone(spec, weights, input_size(upsample))
    backbone.trainable = train_backbone
    head = build_head(backbone.output_shape[-1], num_classes)
    inputs = image_input()
    return keras.Model(inputs, head(backbone(preprocess_and_upsample(inputs, upsample, spec.preprocessing))),
                       name=name)


def features_model(model):
    """images -> pooled backbone features: what the frozen teacher's head trains on when features are cached."""
    import keras

    from kdbench.architectures.layers import image_input, input_pipeline

    inputs = image_input()
    return keras.Model(inputs, model.get_layer("backbone")(input_pipeline(model, inputs)), name="features")


def teacher(spec: Backbone):
    """The architecture functions of a teacher on `spec`: (build, stage_model, features_model)."""

    def build(num_classes: int, upsample: int, weights: str | None = "imagenet", train_backbone: bool = True,
              name: str = "teacher"):
        return build_teacher(spec, num_classes, upsample, weights=weights, train_backbone=train_backbone,
                             name=name)

    def stage_model(model, stages):
        """images -> [logits, *stage outputs] in one pass: the backbone re-wired to also return its taps."""
        from kdbench.architectures.layers import stage_layers, tapped_backbone

        return tapped_backbone(model, stage_layers(spec.stages, stages))

    build.__doc__ = f"{spec.constructor} teacher: {build_teacher.__doc__}"
    return build, stage_model, features_model
