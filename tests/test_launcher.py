"""`kdbench run`: presets by name and nested --set values become Snakemake --configfile files."""

import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from kdbench import KdbenchError, launcher


def test_set_values_become_one_nested_mapping_with_yaml_types():
    settings = launcher.nested_settings([
        "train.epochs=2", "data.source=npz", "data.path=data/cifar10.npz", "seeds=[0, 1, 2]",
        "teachers.finetuned=null", "distillation.methods.kd.temperature=[2, 4]", "train.epochs=3",
        "description=a run with spaces", "teachers.frozen.learning_rate=1.0e-3", "train.deterministic=false"])
    assert settings == {
        "train": {"epochs": 3, "deterministic": False},  # the later --set of a key wins
        "data": {"source": "npz", "path": "data/cifar10.npz"},
        "seeds": [0, 1, 2],
        "teachers": {"finetuned": None, "frozen": {"learning_rate": 0.001}},
        "distillation": {"methods": {"kd": {"temperature": [2, 4]}}},
        "description": "a run with spaces"}


@pytest.mark.parametrize("text, says", [
    ("train.epochs", "expected key.path=value"),
    ("=2", "expected key.path=value"),
    ("train..epochs=2", "expected key.path=value"),
    ("train.epochs 2", "expected key.path=value"),
    ("seeds=[0, 1", "not valid YAML"),
])
def test_bad_set_syntax_is_one_clear_error(text, says):
    with pytest.raises(KdbenchError, match=says):
        launcher.nested_settings([text])


def test_a_set_below_a_value_set_earlier_is_refused():
    with pytest.raises(KdbenchError, match="train is already set to a value"):
        launcher.nested_settings(["train=1", "train.epochs=2"])
    with pytest.raises(KdbenchError, match="already sets keys below train"):
        launcher.nested_settings(["train.epochs=2", "train=1"])


def test_command_line_stacks_presets_then_configfiles_then_the_set_file(tmp_path):
    (tmp_path / "Snakefile").write_text("")  # run from a project folder
    mine = tmp_path / "mine.yaml"
    mine.write_text("threads: 2\n")
    command = launcher.build_command(["--preset", "tiny", "--set", "train.epochs=2", "-n", "--configfile",
                                      str(mine), "--cores", "2", "--preset=quick"], cwd=tmp_path)
    set_file = tmp_path / ".snakemake" / next(p.name for p in (tmp_path / ".snakemake").glob("kdbench-set-*.yaml"))
    assert command == [sys.executable, "-m", "snakemake", "--configfile", str(ROOT / "presets" / "tiny.yaml"),
                       str(ROOT / "presets" / "quick.yaml"), str(mine), str(set_file), "-n", "--cores", "2"]
    assert yaml.safe_load(set_file.read_text()) == {"train": {"epochs": 2}}
    # the same settings reuse the same file
    assert launcher.build_command(["--set", "train.epochs=2"], cwd=tmp_path)[-1] == str(set_file)


def test_without_presets_or_sets_snakemake_gets_the_arguments_unchanged(tmp_path):
    (tmp_path / "Snakefile").write_text("")
    assert launcher.build_command(["--dry-run", "--cores", "1"], cwd=tmp_path) == [
        sys.executable, "-m", "snakemake", "--dry-run", "--cores", "1"]


def test_outside_the_project_folder_the_project_snakefile_is_named(tmp_path):
    command = launcher.build_command(["-n"], cwd=tmp_path)
    assert command[3:5] == ["--snakefile", str(ROOT / "Snakefile")]


def test_unknown_preset_lists_the_presets(tmp_path):
    with pytest.raises(KdbenchError, match="no such preset; the presets are .*quick.*tiny"):
        launcher.build_command(["--preset", "quik"], cwd=tmp_path)
    with pytest.raises(KdbenchError, match="no such file"):
        launcher.build_command(["--preset", str(tmp_path / "missing.yaml")], cwd=tmp_path)


def run_launcher(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kdbench.launcher", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_bad_set_on_the_command_line_gives_one_line_and_status_2(tmp_path):
    result = run_launcher("run", "--set", "data.source", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("kdbench: error: --set 'data.source'")


def test_kdbench_run_dry_run_reaches_snakemake(tmp_path):
    """The real thing, as far as Snakemake's own argument parsing: `--version` stops it there."""
    result = run_launcher("run", "--preset", "tiny", "--set", "train.epochs=2", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(".")[0].isdigit()  # Snakemake printed its version
    assert "--configfile" in result.stderr and "presets/tiny.yaml" in result.stderr
