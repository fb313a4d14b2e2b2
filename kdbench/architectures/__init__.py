"""Model architectures, registered by name: each is one module of this package plus one line in ARCHITECTURES.

An architecture module declares, without importing TensorFlow at its top level:
- STAGES: the names of the feature taps that feature-based distillation methods ask for ("stage1", ...);
- build(num_classes, upsample, **options) -> keras.Model: 32x32 RGB images (0-255) -> logits, with its own
  preprocessing and resizing inside the model;
- stage_model(model, stages) -> keras.Model: images -> [logits, *the named stage outputs], one forward pass.
Teacher architectures take the teacher's options (weights, train_backbone) and build a "backbone" layer
followed by a "head" layer, which is what lets the frozen teacher train its head on cached features.
"""

from __future__ import annotations

from types import ModuleType

from kdbench import KdbenchError
from kdbench.architectures import resnet18, resnet50

ARCHITECTURES: dict[str, ModuleType] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
}


def get(name: str) -> ModuleType:
    if name not in ARCHITECTURES:
        raise KdbenchError(f"unknown architecture '{name}'; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def build(architecture: str, num_classes: int, upsample: int, **options):
    """The architecture's image -> logits model."""
    return get(architecture).build(num_classes, upsample, **options)


def load_model(path):
    """Load a .keras checkpoint (safe mode on: kdbench's own layers are registered) with an actionable error."""
    from pathlib import Path

    import keras

    from kdbench.architectures import layers  # noqa: F401  (registers CaffePreprocess for loading)

    if not Path(path).is_file():
        raise KdbenchError(f"model file {path} is missing; rerun the training step that writes it")
    try:
        return keras.models.load_model(path)
    except Exception as err:
        raise KdbenchError(f"cannot load model {path} ({err}); delete it and rerun its training step") from err
