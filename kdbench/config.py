"""Config checks with messages that name the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml


def config_errors(config: dict, schema_path: str | Path) -> list[str]:
    """Every schema violation in `config`, one readable line each (empty when the config is valid)."""
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
    return messages + _conflicts(config)


def _conflicts(config: dict) -> list[str]:
    """Combinations the schema cannot express: settings that are valid alone but wrong together."""
    student = config.get("student") or {}
    distillation = config.get("distillation") or {}
    if student.get("augment") is True and distillation.get("soft_targets") == "cached":
        return ["student.augment: true needs distillation.soft_targets: online; cached teacher logits are "
                "computed once on unaugmented images and would not match the augmented ones the student sees"]
    return []


def _describe(subschema: dict, root: dict) -> str:
    """Plain words for a (possibly $ref'd) schema: 'a list of number, minimum 0, maximum 1'."""
    if "$ref" in subschema:
        subschema = root["$defs"][subschema["$ref"].rsplit("/", 1)[-1]]
    if subschema.get("type") == "array":
        return "a list of " + _describe(subschema.get("items", {}), root)
    return ", ".join(f"{key} {value}" for key, value in subschema.items())
