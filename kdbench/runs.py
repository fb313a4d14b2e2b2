"""The runs table: the config expanded once into one row per model to train, each looked up by its id.

A run's id names its files and nothing else: rules and the summary read a run's settings from its row,
never from its name. Ids are stable: the same teacher, student, method, settings and seed always give the
same id, whatever else the config asks for.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pandas as pd

from kdbench import KdbenchError, architectures, methods

COLUMNS = ["id", "config", "role", "architecture", "upsample", "student", "teacher", "method", "settings", "seed"]
ROLES = ("teacher", "baseline", "distilled")


def canonical_settings(settings: dict) -> str:
    """Settings as JSON with every number a float (7 and 7.0 are one setting) and exact float text."""
    def normal(value):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    return json.dumps({key: normal(value) for key, value in settings.items()}, sort_keys=True)


def settings_tag(settings_json: str) -> str:
    """8 hex digits naming a setting: distinct settings never share a tag in practice (2^32 space)."""
    return hashlib.sha256(settings_json.encode()).hexdigest()[:8]


def present(mapping: dict | None) -> dict:
    """Config entries that are not switched off (a preset drops an entry by setting it to null)."""
    return {name: entry for name, entry in (mapping or {}).items() if entry is not None}


def expand(config: dict) -> pd.DataFrame:
    """One row per model: teachers (trained once, with the first seed), then per student and seed the
    baseline and every teacher x method x setting."""
    seeds = config["seeds"]

    def upsample(architecture: str) -> int:
        return architectures.upsample_for(architecture, config["model"]["upsample"])

    teachers, students = present(config["teachers"]), present(config["students"])
    method_settings = present(config["distillation"]["methods"])
    rows = [{"id": f"teacher-{name}", "config": f"teacher-{name}", "role": "teacher",
             "architecture": entry["architecture"], "upsample": upsample(entry["architecture"]), "student": "",
             "teacher": name, "method": "",
             "settings": "{}", "seed": seeds[0]} for name, entry in teachers.items()]
    for student, entry in students.items():
        for seed in seeds:
            config_id = f"baseline-{student}"
            rows.append({"id": f"{config_id}-s{seed}", "config": config_id, "role": "baseline",
                         "architecture": entry["architecture"], "upsample": upsample(entry["architecture"]),
                         "student": student, "teacher": "", "method": "",
                         "settings": "{}", "seed": seed})
        for teacher in teachers:
            for method, settings in method_settings.items():
                for setting in methods.setting_grid(method, settings):
                    settings_json = canonical_settings(setting)
                    config_id = f"{method}-{teacher}-{student}-{settings_tag(settings_json)}"
                    rows.extend({"id": f"{config_id}-s{seed}", "config": config_id, "role": "distilled",
                                 "architecture": entry["architecture"], "upsample": upsample(entry["architecture"]),
                                 "student": student, "teacher": teacher,
                                 "method": method, "settings": settings_json, "seed": seed} for seed in seeds)
    table = pd.DataFrame(rows, columns=COLUMNS)
    duplicated = table["id"][table["id"].duplicated()]
    if len(duplicated):
        raise KdbenchError(f"two runs would share the id {duplicated.iloc[0]}: the config lists one setting twice "
                           "(e.g. 7 and 7.0 in a sweep); list each value once")
    return table


def two_setting_sweeps(table: pd.DataFrame) -> dict[tuple, tuple[pd.DataFrame, list[str]]]:
    """Each (teacher, student, method) whose distilled runs vary in exactly two settings: what a sweep heat
    map can draw. Maps the triple to (its runs' settings, parsed into one column per key and indexed like
    `table`; the names of the two varying keys)."""
    sweeps = {}
    distilled = table[table["role"] == "distilled"]
    for key, group in distilled.groupby(["teacher", "student", "method"], sort=False):
        settings = pd.DataFrame([json.loads(s) for s in group["settings"]], index=group.index)
        swept = [column for column in settings.columns if settings[column].nunique() > 1]
        if len(swept) == 2:
            sweeps[key] = (settings, swept)
    return sweeps


def write_tsv(table: pd.DataFrame, path) -> None:
    from kdbench.io import atomic_path

    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def read_tsv(path) -> pd.DataFrame:
    """The runs table as written by write_tsv (empty cells read back as '')."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise KdbenchError(f"cannot read the runs table {path} ({err}); rerun the workflow to rewrite it") from err
    if list(table.columns) != COLUMNS:
        raise KdbenchError(f"{path} has columns {list(table.columns)}, expected {COLUMNS}; "
                           "rerun the workflow to rewrite it")
    table[["upsample", "seed"]] = table[["upsample", "seed"]].astype(int)
    return table


def label(row) -> str:
    """How the summary names a config: 'kd (alpha 0.3, temperature 7) from frozen into resnet18'."""
    if row["role"] == "teacher":
        return f"teacher {row['teacher']} ({row['architecture']})"
    if row["role"] == "baseline":
        return f"baseline {row['student']}"
    settings = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                         for key, value in json.loads(row["settings"]).items())
    return f"{row['method']} ({settings}) {row['teacher']} -> {row['student']}"


PACKAGE = "kdbench"


def _is_import_module(func: ast.expr) -> bool:
    """importlib.import_module(...) or import_module(...)."""
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id == "import_module")


def _statements(tree: ast.AST):
    """Every statement of a module, nested ones (in functions, classes, if/try/with blocks) included: imports
    are statements, so the expressions, most of the tree, need no visit."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack.extend(child for child in getattr(node, field, None) or [] if isinstance(child, ast.AST))


_PARSED: dict[tuple, tuple[frozenset, frozenset]] = {}  # by content: one parse per file version (6 rules share)


def _imports(file: Path, module: str) -> tuple[frozenset, frozenset]:
    """(dotted names `file` imports anywhere in it, lazy imports inside functions included; prefixes of
    importlib.import_module(f"...{x}") calls, each standing for every module whose name starts with it).

    `from a import b` yields a and a.b (b may be a submodule); relative imports resolve against `module`."""
    source = file.read_bytes()
    key = (hashlib.sha256(source).digest(), module)
    if key in _PARSED:
        return _PARSED[key]
    tree = ast.parse(source, filename=str(file))
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    names, prefixes = set(), set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    if b"import_module" in source:  # only then are the expressions worth a walk
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
                argument = node.args[0]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    names.add(argument.value)
                elif isinstance(argument, ast.JoinedStr) and argument.values and \
                        isinstance(argument.values[0], ast.Constant):
                    prefixes.add(str(argument.values[0].value))
    _PARSED[key] = frozenset(names), frozenset(prefixes)
    return _PARSED[key]


def import_closure(root, script: str) -> list[str]:
    """The repository's files `script` runs: itself and every kdbench module it imports, transitively (found
    by reading the code, no import executed), each with its parent packages' __init__.py. Sorted paths
    relative to `root`."""
    root = Path(root)
    every = {".".join(file.relative_to(root).with_suffix("").parts[:-1] if file.name == "__init__.py"
                      else file.relative_to(root).with_suffix("").parts): file
             for file in sorted((root / PACKAGE).rglob("*.py"))}
    found: dict[str, Path] = {}
    pending = [("__main__", Path(root, script))]
    while pending:
        module, file = pending.pop()
        names, prefixes = _imports(file, module)
        names = names | {candidate for prefix in prefixes for candidate in every if candidate.startswith(prefix)}
        for name in names:
            if not (name == PACKAGE or name.startswith(PACKAGE + ".")):
                continue
            parts = name.split(".")
            for candidate in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):  # a.b.c runs a, a.b too
                target = every.get(candidate)
                if target is not None and candidate not in found:
                    found[candidate] = target
                    pending.append((candidate, target))
    files = {Path(root, script), *found.values()}
    return sorted(str(file.relative_to(root).as_posix()) for file in files)


def code_hash(root, script: str) -> str:
    """12 hex digits of sha256 over the contents of the files `script` runs (import_closure): a rule's
    jobs rerun when any of them changes."""
    digest = hashlib.sha256()
    for path in import_closure(root, script):
        digest.update(f"{path}\n".encode())
        digest.update(Path(root, path).read_bytes())
    return digest.hexdigest()[:12]
