"""Config checks with messages that name the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from kdbench import KdbenchError
from kdbench.datasets import get as _dataset, npz_shapes

OFFICIAL_TRAIN_SIZE, OFFICIAL_TEST_SIZE = _dataset("cifar10").train_size, _dataset("cifar10").test_size


def config_errors(config: dict, schema_path: str | Path) -> list[str]:
    """Every schema violation and cross-key problem in `config`, one readable line each (empty when valid)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(map(str, error.absolute_path)) or "(top level)"
        if error.validator == "additionalProperties":
            allowed = ", ".join(sorted(error.schema.get("properties", {})))
            messages.append(f"{key}: {error.message}; allowed keys: {allowed}")
        elif error.validator == "oneOf":
            messages.append(f"{key}: {error.instance!r} is neither a valid single value nor a list of them "
                            f"({' or '.join(_describe(s, schema) for s in error.schema['oneOf'])})")
        else:
            messages.append(f"{key}: {error.message}")
    return messages or _cross_key_errors(config)  # cross-key checks need a config of the right shape


def _cross_key_errors(config: dict) -> list[str]:
    """Checks the schema cannot express: conflicting keys, paths that must exist, sizes the data must hold."""
    messages = []
    if config["student"].get("augment") and config["distillation"]["soft_targets"] == "cached":
        messages.append("student.augment: true needs distillation.soft_targets: online; cached teacher logits "
                        "are computed once on unaugmented images and would not match the augmented ones")
    data = config["data"]
    source, path = data["source"], data.get("path")
    if source in ("archive", "npz"):
        wanted = "cifar-10-python.tar.gz or its extracted folder" if source == "archive" else "an .npz file"
        if not path:
            messages.append(f"data.path: missing; data.source: {source} needs data.path pointing at {wanted}")
        elif not Path(path).exists() or (source == "npz" and not Path(path).is_file()):
            messages.append(f"data.path: '{path}' does not exist (relative paths start in the working "
                            f"directory); data.source: {source} needs {wanted}")
        elif source == "npz":
            try:
                shapes = npz_shapes(path)
            except KdbenchError as err:
                messages.append(f"data.path: {err}")
            else:
                messages += _size_errors(data, shapes.get("x_train", (0,))[0], shapes.get("x_test", (0,))[0],
                                         f"in {path}")
    elif path:
        messages.append(f"data.path: '{path}' is set but data.source is {source}, which ignores it; "
                        "set data.source: archive or npz to use the file, or remove data.path")
    if source in ("download", "archive"):
        messages += _size_errors(data, OFFICIAL_TRAIN_SIZE, OFFICIAL_TEST_SIZE, "in CIFAR-10")
    weights = config["model"]["weights"]
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        messages.append(f"model.weights: '{weights}' is not a file; allowed: imagenet, null (random init) "
                        "or the path to resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    return messages


def _size_errors(data: dict, train_images: int, test_images: int, where: str) -> list[str]:
    """Training and validation images both come from the training images; test images from the test set."""
    messages = []
    train, val = data["train_size"], data.get("val_size", 0)
    if train + val > train_images:
        messages.append(f"data.train_size + data.val_size: {train} + {val} = {train + val} is more than the "
                        f"{train_images} training images {where}; allowed: a sum up to {train_images}")
    if data["test_size"] > test_images:
        messages.append(f"data.test_size: {data['test_size']} is more than the {test_images} test images {where}; "
                        f"allowed: 1 to {test_images}")
    return messages


def _describe(subschema: dict, root: dict) -> str:
    """Plain words for a (possibly $ref'd) schema: 'a list of number, minimum 0, maximum 1'."""
    if "$ref" in subschema:
        subschema = root["$defs"][subschema["$ref"].rsplit("/", 1)[-1]]
    if subschema.get("type") == "array":
        return "a list of " + _describe(subschema.get("items", {}), root)
    return ", ".join(f"{key} {value}" for key, value in subschema.items())
