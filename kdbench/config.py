"""Config checks with messages that name the key, the value and what is allowed."""

from __future__ import annotations

import math
import os
from pathlib import Path

import jsonschema
import yaml

from kdbench import architectures, datasets, methods
from kdbench.runs import present

# JSON schema counts 5.0 as an integer; a float where an integer is meant would reach a script as "5.0".
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)))


# train.* keys of the recipe that every training run records as the config gave them (train.json): the
# summary refuses a run whose record disagrees on any
RECIPE_KEYS = ("optimizer", "momentum", "weight_decay", "weight_decay_mode", "nesterov", "schedule", "warmup_epochs",
               "lr_milestones", "lr_decay", "ema", "checkpoint")


def normalise(config: dict) -> None:
    """In place: drop entries a preset switched off (null), expand ~ in the paths a user gives and fill in
    train.backend (KERAS_BACKEND where set, else tensorflow)."""
    for section in (config.get("teachers"), config.get("students"), config.get("distillation", {}).get("methods")):
        if isinstance(section, dict):
            for name in [name for name, entry in section.items() if entry is None]:
                del section[name]
    train = config.get("train")
    if isinstance(train, dict) and not train.get("backend"):  # the backend is decided once, for every job
        from kdbench.runtime import requested

        train["backend"] = requested()
    if config.get("data", {}).get("path"):
        config["data"]["path"] = os.path.expanduser(config["data"]["path"])
    for teacher in present(config.get("teachers")).values():
        if isinstance(teacher, dict) and teacher.get("weights") not in (None, "imagenet"):
            teacher["weights"] = os.path.expanduser(str(teacher["weights"]))


def config_errors(config: dict, schema_path: str | Path) -> list[str]:
    """Every schema violation and cross-key problem in `config`, one readable line each (empty when valid)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    messages = _non_finite(config)
    for error in sorted(_Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(map(str, error.absolute_path)) or "(top level)"
        moved = [m for m in _moved_keys(error) if m]
        if moved:
            messages += moved
        elif error.validator == "additionalProperties" and "properties" in error.schema:
            allowed = ", ".join(sorted(error.schema["properties"]))
            messages.append(f"{key}: {error.message}; allowed keys: {allowed}")
        else:
            messages.append(f"{key}: {error.message}")
    return messages or _cross_key_errors(config)


def _moved_keys(error) -> list[str]:
    """Keys that moved to another place: say where, instead of only that they are not allowed here."""
    path = list(map(str, error.absolute_path))
    if (error.validator == "additionalProperties" and len(path) == 2 and path[0] == "students"
            and isinstance(error.instance, dict) and "augment" in error.instance):
        return [f"students.{path[1]}.augment: moved to train.augment (one augmentation recipe for every student, "
                "so that each teacher's cached per-epoch targets serve them all); set it there"]
    return []


def _non_finite(value, key: str = "") -> list[str]:
    """NaN and infinity pass JSON-schema bounds checks (every comparison with NaN is false): refuse them."""
    if isinstance(value, dict):
        return [m for k, v in value.items() for m in _non_finite(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return [m for i, v in enumerate(value) for m in _non_finite(v, f"{key}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{key}: {value} is not a finite number"]
    return []


def _cross_key_errors(config: dict) -> list[str]:
    """Checks the schema cannot express: registry names, method settings, conflicting keys, paths."""
    messages = []
    teachers, students = present(config["teachers"]), present(config["students"])
    method_settings = present(config["distillation"]["methods"])
    if not students:
        messages.append("students: no student left; name at least one (e.g. resnet18: {architecture: resnet18, "
                        "learning_rate: 1.0e-3})")
    for name, entry in {**{f"teachers.{k}": v for k, v in teachers.items()},
                        **{f"students.{k}": v for k, v in students.items()}}.items():
        if entry["architecture"] not in architectures.ARCHITECTURES:
            messages.append(f"{name}.architecture: '{entry['architecture']}' is not a known architecture; "
                            f"allowed: {', '.join(sorted(architectures.ARCHITECTURES))}")
    for name, entry in teachers.items():
        if (entry["architecture"] in architectures.ARCHITECTURES
                and not architectures.is_backbone_teacher(entry["architecture"])):
            # no backbone + head (the CIFAR zoo): it trains end to end from random initialisation, like a student
            messages += [f"teachers.{name}.{m}" for m in architectures.teacher_option_errors(
                entry["architecture"], entry["weights"], entry["train_backbone"], entry.get("cache_features", False))]
            continue
        if entry.get("cache_features") and entry["train_backbone"]:
            messages.append(f"teachers.{name}.cache_features: true needs train_backbone: false (a trained "
                            "backbone changes every step, so its features cannot be computed once)")
        if entry.get("cache_features") and entry.get("augment"):
            messages.append(f"teachers.{name}.augment: true needs cache_features: false (cached backbone features "
                            "are computed once, on the images as they are, not on each epoch's views)")
        messages += _path_errors(f"teachers.{name}.weights", entry["weights"], "imagenet")
    for method, settings in method_settings.items():
        if method not in methods.METHODS:
            messages.append(f"distillation.methods.{method}: unknown method; allowed: "
                            f"{', '.join(sorted(methods.METHODS))}")
            continue
        messages += [f"distillation.methods.{method}.{m}" for m in methods.settings_errors(method, settings)]
    messages += _recipe_errors(config)
    messages += _data_errors(config["data"])
    return messages


def _recipe_errors(config: dict) -> list[str]:
    """The training recipe's keys that depend on each other or on the data."""
    train, messages = config["train"], []
    ema = train.get("ema", False)
    if ema is True or (not isinstance(ema, bool) and not 0 < ema < 1):
        messages.append(f"train.ema: {ema} is not allowed; false (no weight averaging) or the average's decay, "
                        "between 0 and 1 (e.g. 0.99; its horizon, 1 / (1 - decay) steps, should be well below "
                        "the run's steps)")
    if train.get("schedule") == "cosine" and train.get("warmup_epochs", 1) >= train["epochs"]:
        messages.append(f"train.warmup_epochs: {train.get('warmup_epochs', 1)} leaves no epoch of cosine decay in "
                        f"a run of {train['epochs']} epoch{'s' * (train['epochs'] != 1)}; use fewer warm-up epochs "
                        "(0 is allowed)")
    milestones = train.get("lr_milestones", [])
    if train.get("schedule") == "multistep":
        if not milestones:
            messages.append("train.lr_milestones: schedule multistep needs at least one milestone epoch, e.g. "
                            "[150, 180, 210]")
        elif milestones != sorted(set(milestones)):
            messages.append(f"train.lr_milestones: {milestones} must be increasing epochs, each listed once")
        elif milestones[-1] >= train["epochs"]:
            messages.append(f"train.lr_milestones: epoch {milestones[-1]} is not inside a run of {train['epochs']} "
                            "epochs, so it would never apply; scale the milestones with train.epochs")
    if train.get("checkpoint") == "best" and config["data"].get("val_size", 0) == 0:
        messages.append("train.checkpoint: best keeps the epoch with the best validation accuracy and needs a "
                        "validation split: set data.val_size > 0, or use checkpoint: last")
    return messages


def _path_errors(key: str, path, keyword: str | None = None) -> list[str]:
    """A user's file must exist, and must not sit among the workflow's outputs (Snakemake deletes those)."""
    if path in (None, keyword):
        return []
    if Path("results").resolve() in Path(path).resolve().parents:
        return [f"{key}: '{path}' is inside results/, where the workflow writes (and deletes) its outputs; "
                "move the file elsewhere, e.g. data/"]
    if not Path(path).exists():
        return [f"{key}: '{path}' does not exist (relative paths start in the working directory)"]
    return []


def _data_errors(data: dict) -> list[str]:
    """The data set's own checks, and a data.path that Snakemake would treat as one of its outputs."""
    inside_results = [m for m in _path_errors("data.path", data.get("path")) if "inside results/" in m]
    return inside_results or datasets.config_errors(data)
