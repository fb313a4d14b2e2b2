"""The runs table: one row per model, stable ids, settings carried as data (never parsed from names)."""

import copy
import json

import pytest
import yaml
from conftest import ROOT

from kdbench import KdbenchError, runs
from kdbench.config import config_errors

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def with_changes(**methods):
    config = copy.deepcopy(CONFIG)
    config["distillation"]["methods"] = methods
    return config


def test_default_config_is_the_reference_experiment():
    table = runs.expand(CONFIG)
    assert table["role"].tolist() == ["teacher", "teacher", "baseline", "distilled", "distilled"]
    assert table["teacher"].tolist()[:2] == ["frozen", "finetuned"]
    assert set(table["architecture"]) == {"resnet50", "resnet18"}
    distilled = table[table["role"] == "distilled"]
    assert [json.loads(s) for s in distilled["settings"]] == [{"alpha": 0.3, "temperature": 7.0}] * 2
    assert table["id"].is_unique


def test_ids_are_stable_when_the_sweep_grows():
    single = runs.expand(CONFIG).set_index("settings")
    swept = runs.expand(with_changes(kd={"alpha": [0.3, 0.5], "temperature": [7, 2]})).set_index("settings")
    key = '{"alpha": 0.3, "temperature": 7.0}'
    assert set(single.loc[key, "id"]) <= set(swept.loc[key, "id"])
    assert len(swept[swept["role"] == "distilled"]) == 2 * 4  # two teachers x four settings


def test_each_value_is_trained_as_asked_and_close_values_get_their_own_run():
    table = runs.expand(with_changes(kd={"alpha": [0.3, 0.30000001], "temperature": 7}))
    distilled = table[(table["role"] == "distilled") & (table["teacher"] == "frozen")]
    assert [json.loads(s)["alpha"] for s in distilled["settings"]] == [0.3, 0.30000001]
    assert distilled["id"].nunique() == 2


def test_one_value_written_twice_is_refused_before_any_job():
    config = with_changes(kd={"alpha": 0.3, "temperature": [7, 7.0]})
    assert any("non-unique" in message or "unique" in message for message in config_errors(config, SCHEMA))
    with pytest.raises(KdbenchError, match="share the id"):
        runs.expand(config)


def test_seeds_repeat_students_but_not_teachers():
    config = copy.deepcopy(CONFIG)
    config["seeds"] = [0, 1, 2]
    table = runs.expand(config)
    assert (table["role"] == "teacher").sum() == 2 and set(table.loc[table["role"] == "teacher", "seed"]) == {0}
    assert (table["role"] == "baseline").sum() == 3 and (table["role"] == "distilled").sum() == 6


def test_a_null_entry_drops_a_teacher_or_method():
    config = copy.deepcopy(CONFIG)
    config["teachers"]["finetuned"] = None
    table = runs.expand(config)
    assert "finetuned" not in set(table["teacher"])
    config["distillation"]["methods"]["kd"] = None
    assert set(runs.expand(config)["role"]) == {"teacher", "baseline"}


def test_every_method_expands_with_its_defaults():
    table = runs.expand(with_changes(kd={}, dkd={}, fitnets={}, at={}))
    distilled = table[table["role"] == "distilled"]
    assert sorted(distilled["method"].unique()) == ["at", "dkd", "fitnets", "kd"]
    dkd = json.loads(distilled.loc[distilled["method"] == "dkd", "settings"].iloc[0])
    assert dkd["beta"] == 8.0 and dkd["temperature"] == 4.0


def test_tsv_round_trip(tmp_path):
    table = runs.expand(with_changes(kd={"alpha": [0.1, 0.9], "temperature": 4}))
    runs.write_tsv(table, tmp_path / "runs.tsv")
    back = runs.read_tsv(tmp_path / "runs.tsv")
    assert back.equals(table.astype({column: str for column in table.columns if column not in ("seed", "upsample")}))


# --- code hashes: each rule's script and the kdbench modules it imports, read from the code ---

SCRIPTED = ["fetch_data", "train_teacher", "teacher_logits", "train_student", "evaluate", "summarize"]


def closure(rule, root=ROOT):
    return runs.import_closure(root, f"scripts/{rule}.py")


def test_closures_hold_what_the_scripts_import():
    assert "kdbench/train.py" in closure("evaluate") and "kdbench/train.py" in closure("teacher_logits")
    summarize = closure("summarize")
    assert {"kdbench/config.py", "kdbench/methods/__init__.py", "kdbench/methods/kd.py",
            "kdbench/architectures/__init__.py", "kdbench/architectures/resnet18.py", "kdbench/stats.py",
            "scripts/summarize.py"} <= set(summarize)
    fetch = closure("fetch_data")  # the data step runs no training code
    assert "kdbench/train.py" not in fetch and "kdbench/datasets/npz.py" in fetch


def write_package(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_closure_follows_every_import_form(tmp_path):
    write_package(tmp_path, {
        "scripts/job.py": "import os\nfrom kdbench import a\n\ndef main():\n    import kdbench.sub.lazy\n",
        "kdbench/__init__.py": "",
        "kdbench/a.py": "from .b import thing\n",
        "kdbench/b.py": "thing = 1\n",
        "kdbench/sub/__init__.py": "from . import helper\n",
        "kdbench/sub/helper.py": "from ..c import x\n",
        "kdbench/sub/lazy.py": ("import importlib\n\ndef room(name):\n"
                                "    return importlib.import_module(f'kdbench.rooms._{name}')\n"),
        "kdbench/c.py": "x = 1\n",
        "kdbench/rooms/__init__.py": "",
        "kdbench/rooms/_one.py": "",
        "kdbench/rooms/_two.py": "",
        "kdbench/unused.py": "",
    })
    assert runs.import_closure(tmp_path, "scripts/job.py") == [
        "kdbench/__init__.py", "kdbench/a.py", "kdbench/b.py", "kdbench/c.py", "kdbench/rooms/__init__.py",
        "kdbench/rooms/_one.py", "kdbench/rooms/_two.py", "kdbench/sub/__init__.py", "kdbench/sub/helper.py",
        "kdbench/sub/lazy.py", "scripts/job.py"]


IMPORTS_AT_RUN_TIME = r"""
import importlib, importlib.util, sys
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("job_script", sys.argv[2])
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # the script's own imports, without main()
for name in sys.argv[3:]:
    try:
        importlib.import_module(name)  # and its lazy ones (imports inside main and other functions)
    except ModuleNotFoundError as err:
        if err.name.split(".")[0] == "kdbench":
            raise
        # another backend's room (kdbench.runtime._jax without JAX installed): never loaded on this one
print("\n".join(sorted(name for name in sys.modules if name == "kdbench" or name.startswith("kdbench."))))
"""


def module_names(files):
    return [path[:-len("/__init__.py")].replace("/", ".") if path.endswith("/__init__.py")
            else path[:-3].replace("/", ".") for path in files if path.startswith("kdbench/")]


def test_no_script_imports_a_kdbench_module_outside_its_hash():
    """Import each script and every module of its closure, then read sys.modules: every kdbench module Python
    actually loaded must be a file the rule's code hash covers. One process per script, all at once."""
    import subprocess
    import sys

    modules = {rule: module_names(closure(rule)) for rule in SCRIPTED}
    jobs = {rule: subprocess.Popen([sys.executable, "-c", IMPORTS_AT_RUN_TIME, str(ROOT),
                                    str(ROOT / "scripts" / f"{rule}.py"), *modules[rule]],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rule in SCRIPTED}
    for rule, job in jobs.items():
        out, err = job.communicate(timeout=600)
        assert job.returncode == 0, f"{rule}: {err[-3000:]}"
        loaded = set(out.split())
        assert "kdbench.cli" in loaded and loaded <= set(modules[rule]), (rule, sorted(loaded - set(modules[rule])))


def test_editing_a_module_changes_exactly_the_hashes_of_the_rules_that_import_it(tmp_path):
    import shutil

    for folder in ("kdbench", "scripts"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = {rule: runs.code_hash(tmp_path, f"scripts/{rule}.py") for rule in SCRIPTED}
    assert before == {rule: runs.code_hash(ROOT, f"scripts/{rule}.py") for rule in SCRIPTED}  # by content
    expected = {"kdbench/train.py": {"train_teacher", "teacher_logits", "train_student", "evaluate"},
                "kdbench/stats.py": {"summarize"}, "kdbench/config.py": {"summarize"},
                "kdbench/datasets/npz.py": set(SCRIPTED), "kdbench/distill.py": {"train_student"}}
    for module in ["kdbench/methods/kd.py", "kdbench/architectures/resnet18.py", "kdbench/evaluate.py", *expected]:
        with open(tmp_path / module, "a") as handle:
            handle.write("\n# an edit\n")
        after = {rule: runs.code_hash(tmp_path, f"scripts/{rule}.py") for rule in SCRIPTED}
        changed = {rule for rule in SCRIPTED if after[rule] != before[rule]}
        assert changed == {rule for rule in SCRIPTED if module in closure(rule, tmp_path)}, module
        assert changed == expected.get(module, changed) and changed, module
        before = after
