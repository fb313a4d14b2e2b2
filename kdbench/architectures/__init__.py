"""Model architectures, registered by name: each is one module of this package plus one line in ARCHITECTURES.

An architecture module declares, without importing TensorFlow at its top level:
- STAGES: the names of the feature taps that feature-based distillation methods ask for ("stage1", ...);
- UPSAMPLE: None to follow the configured model.upsample (the reference's resnet18 and resnet50), or the factor
  it is built for (1 for resnet18-cifar): see upsample_for;
- build(num_classes, upsample, **options) -> keras.Model: 32x32 RGB images (0-255) -> logits, with its own
  preprocessing and resizing inside the model;
- stage_model(model, stages) -> keras.Model: images -> [logits, *the named stage outputs], one forward pass.
Any architecture can be a teacher. Backbone teachers take the teacher's options (weights, train_backbone) and
build a "backbone" layer followed by a "head" layer, which is what lets the frozen teacher train its head on
cached features, and declare TEACHER = True and features_model(model) -> keras.Model: images -> pooled backbone
features; teachers on keras.applications backbones are a Backbone record each (see applications.py). Every
other architecture (the CIFAR zoo's resnet56, resnet32x4, ...) trains as a teacher the way a student trains,
end to end from random initialisation with the teacher's recipe: weights null, train_backbone true, no
cache_features (teacher_option_errors).
"""

from __future__ import annotations

from types import ModuleType

from kdbench import KdbenchError
from kdbench.architectures import efficientnetb0, mobilenetv2, resnet18, resnet18_cifar, resnet50, resnet101
from kdbench.architectures import cifar_resnet, vgg, wrn  # the CIFAR zoo: one record per name (zoo.py)
from kdbench.architectures import mobilenetv2_cifar, shufflenetv1, shufflenetv2

ARCHITECTURES: dict[str, ModuleType] = {
    "resnet18": resnet18,
    "resnet18-cifar": resnet18_cifar,
    "mobilenetv2": mobilenetv2,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "efficientnetb0": efficientnetb0,
    "resnet8": cifar_resnet.resnet8,
    "resnet14": cifar_resnet.resnet14,
    "resnet20": cifar_resnet.resnet20,
    "resnet32": cifar_resnet.resnet32,
    "resnet44": cifar_resnet.resnet44,
    "resnet56": cifar_resnet.resnet56,
    "resnet110": cifar_resnet.resnet110,
    "resnet8x4": cifar_resnet.resnet8x4,
    "resnet32x4": cifar_resnet.resnet32x4,
    "wrn_16_1": wrn.wrn_16_1,
    "wrn_16_2": wrn.wrn_16_2,
    "wrn_40_1": wrn.wrn_40_1,
    "wrn_40_2": wrn.wrn_40_2,
    "vgg8": vgg.vgg8,
    "vgg11": vgg.vgg11,
    "vgg13": vgg.vgg13,
    "mobilenetv2-cifar": mobilenetv2_cifar,
    "shufflenetv1": shufflenetv1,
    "shufflenetv2": shufflenetv2,
}


def get(name: str) -> ModuleType:
    if name not in ARCHITECTURES:
        raise KdbenchError(f"unknown architecture '{name}'; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def is_backbone_teacher(architecture: str) -> bool:
    """Whether `architecture` is a backbone + head teacher (TEACHER = True), which takes weights and train_backbone."""
    return bool(getattr(get(architecture), "TEACHER", False))


def teacher_training(architecture: str, train_backbone: bool) -> str:
    """How a teacher of `architecture` trains, in words: its backbone frozen or fine-tuned, or (a network without
    backbone + head, e.g. the CIFAR zoo's) end to end."""
    if not is_backbone_teacher(architecture):
        return "trained end to end"
    return f"{'fine-tuned' if train_backbone else 'frozen'} backbone"


def teacher_option_errors(architecture: str, weights, train_backbone: bool, cache_features: bool) -> list[str]:
    """The teacher options `architecture` cannot take, one message each, starting with the config key: an
    architecture without a backbone and head trains end to end from random initialisation, so it has no
    pretrained weights to load, no backbone to freeze and no backbone features to cache."""
    if is_backbone_teacher(architecture):
        return []
    what = (f"'{architecture}' is not a backbone + head teacher (those are "
            f"{', '.join(a for a in ARCHITECTURES if is_backbone_teacher(a))}): it trains end to end from random "
            "initialisation")
    messages = []
    if weights is not None:
        messages.append(f"weights: '{weights}' cannot be loaded, {what}; set weights: null (--weights none)")
    if not train_backbone:
        messages.append(f"train_backbone: false freezes a backbone, and {what}; set train_backbone: true")
    if cache_features:
        messages.append(f"cache_features: true caches a frozen backbone's features, and {what}; set "
                        "cache_features: false")
    return messages


def upsample_for(architecture: str, configured: int) -> int:
    """The upsampling factor `architecture` is built with: its own UPSAMPLE, or the configured model.upsample
    where it declares None."""
    own = getattr(get(architecture), "UPSAMPLE", None)
    return configured if own is None else own


def build(architecture: str, num_classes: int, upsample: int, bn_momentum: float | None = None, **options):
    """The architecture's image -> logits model; `bn_momentum` replaces every BatchNorm's momentum (None: keep
    the architecture's, Keras's 0.99 for the reference's models)."""
    model = get(architecture).build(num_classes, upsample, **options)
    if bn_momentum is not None:
        import keras

        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    return model


def load_model(path):
    """Load a .keras checkpoint (safe mode on: kdbench's own layers are registered) with an actionable error."""
    from pathlib import Path

    import keras

    from kdbench import recipe  # noqa: F401  (registers TorchSGD and MultiStepDecay, a checkpoint's optimizer)
    from kdbench.architectures import layers  # noqa: F401  (registers CaffePreprocess for loading)

    if not Path(path).is_file():
        raise KdbenchError(f"model file {path} is missing; rerun the training step that writes it")
    try:
        return keras.models.load_model(path)
    except Exception as err:
        raise KdbenchError(f"cannot load model {path} ({err}); delete it and rerun its training step") from err
