"""Distillation methods, registered by name: each is one module of this package plus one line in METHODS.

A method module declares, without importing TensorFlow (the workflow reads the declarations while it plans):
- NEEDS: "logits" (the teacher's logits, cacheable once per teacher) or "features" (its stage outputs too,
  so the teacher runs online);
- SETTINGS: {name: {"default": value, "schema": JSON-schema of one value, "help": text}}; a setting added to
  a method after runs existed is marked "optional": True, and it enters a run's settings (and so its id and
  label) only when the config names it, so that adding it renamed no existing run (the module reads it with
  settings.get(name, default));
- TERMS: the names of the loss terms it returns (logged per epoch as <term>_loss);
- loss_terms(settings, labels, student_logits, teacher_logits, **features) -> {term name: scalar tensor},
  whose sum is the loss the student minimises; a "features" method also defines stage_pairs(settings) and,
  if it has trainable pieces, connectors(settings, student_shapes, teacher_shapes).
"""

from __future__ import annotations

import itertools
from types import ModuleType

from kdbench import KdbenchError
from kdbench.methods import at, dist, dkd, fitnets, kd, nkd, wttm

METHODS: dict[str, ModuleType] = {
    "kd": kd,
    "dkd": dkd,
    "fitnets": fitnets,
    "at": at,
    "dist": dist,
    "wttm": wttm,
    "nkd": nkd,
}


def get(name: str) -> ModuleType:
    if name not in METHODS:
        raise KdbenchError(f"unknown distillation method '{name}'; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def settings_schema(name: str) -> dict:
    """JSON schema of a method's config entry: each setting one value or a list of values (a sweep)."""
    properties = {}
    for setting, spec in get(name).SETTINGS.items():
        one = spec["schema"]
        properties[setting] = {"oneOf": [one, {"type": "array", "items": one, "minItems": 1, "uniqueItems": True}]}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def settings_errors(name: str, settings: dict | None) -> list[str]:
    """Every problem of a method's config entry, one line each, as `setting: what is wrong`."""
    import jsonschema

    messages = []
    for error in jsonschema.Draft202012Validator(settings_schema(name)).iter_errors(settings or {}):
        where = ".".join(map(str, error.absolute_path)) or name
        if error.validator == "oneOf" and error.context:  # one value or a list: report the branch meant
            meant_list = isinstance(error.instance, list)
            branch = [e for e in error.context if (e.schema_path[0] == 1) == meant_list] or error.context
            error = jsonschema.exceptions.best_match(branch)
            where += "".join(f"[{p}]" for p in error.path)
        messages.append(f"{where}: {error.message}")
    return messages


def setting_grid(name: str, settings: dict | None) -> list[dict]:
    """Every combination of the configured settings (lists sweep), defaults filled in, in declaration order;
    an "optional" setting the config does not name is left out (its module reads it with its default)."""
    settings = settings or {}
    declared = [setting for setting, spec in get(name).SETTINGS.items()
                if setting in settings or not spec.get("optional")]
    values = []
    for setting in declared:
        value = settings.get(setting, get(name).SETTINGS[setting]["default"])
        values.append(value if isinstance(value, list) else [value])
    return [dict(zip(declared, combination)) for combination in itertools.product(*values)]

