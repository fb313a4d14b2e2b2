"""Every preset, and every stack of presets the documentation gives, passes a dry run with the jobs it promises."""

import json
import re

import pytest
import yaml
from conftest import ROOT, run_snakemake

from kdbench import methods, published

PRESETS = ROOT / "presets"

# (preset files stacked in order, run_name, train_student jobs, words every train_student command must hold:
#  {architecture: upsample factor} of the students and of the teachers)
STACKS = [
    (["quick.yaml"], "quick", 1 + 2, {"resnet18": 2}, {"resnet50": 2}),
    (["quick.yaml", "sweep.yaml"], "quick", 1 + 2 * 4 * 5, {"resnet18": 2}, {"resnet50": 2}),
    (["tiny.yaml"], "tiny", 1 + 2, {"resnet18": 1}, {"resnet50": 1}),
    (["cifar-native.yaml"], "cifar-native", 1 + 2, {"resnet18-cifar": 1}, {"resnet50": 8}),
    (["quick.yaml", "cifar-native.yaml"], "cifar-native", 1 + 2, {"resnet18-cifar": 1}, {"resnet50": 2}),
    # 3 seeds x (baseline + 2 teachers x kd, dkd, fitnets, at, dist, wttm, nkd)
    (["quick.yaml", "methods.yaml"], "methods", 3 * (1 + 2 * 7), {"resnet18": 2}, {"resnet50": 2}),
    (["quick.yaml", "stable.yaml"], "quick", 1 + 2, {"resnet18": 2}, {"resnet50": 2}),
]
# offline.yaml reads data/cifar-10-python.tar.gz, which a dry run here does not have: tests/test_preflight.py
# checks that preset, and the config check refuses a missing archive with its path.
NEEDS_FILES = {"offline.yaml"}


def job_counts(stdout: str) -> dict:
    return {job: int(count) for job, count in re.findall(r"^(\w+)\s+(\d+)$", stdout, flags=re.M)}


def architectures_and_upsampling(stdout: str, script: str) -> dict:
    """{architecture: set of --upsample factors} over the dry run's `script` commands."""
    found = {}
    for line in stdout.splitlines():
        if f"{script}.py" in line:
            architecture = re.search(r"--architecture (\S+)", line)[1]
            found.setdefault(architecture, set()).add(int(re.search(r"--upsample (\d+)", line)[1]))
    return found


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """dry_run(files) -> the completed `snakemake -n -p` of those presets stacked, each stack run once."""
    done = {}

    def run(files):
        key = tuple(files)
        if key not in done:
            workdir = tmp_path_factory.mktemp("dry")
            done[key] = run_snakemake(workdir, "-n", "-p", "--configfile", *(PRESETS / name for name in files))
        return done[key]
    return run




@pytest.mark.parametrize("files, run_name, students, student_upsample, teacher_upsample", STACKS,
                         ids=["+".join(stack[0]) for stack in STACKS])
def test_preset_dry_run(dry_run, files, run_name, students, student_upsample, teacher_upsample):
    result = dry_run(files)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    assert counts["train_student"] == students and counts["train_teacher"] == 2
    assert counts["evaluate"] == students + 2
    assert f"results/{run_name}/summary.md" in result.stdout
    assert architectures_and_upsampling(result.stdout, "train_student") == {
        architecture: {factor} for architecture, factor in student_upsample.items()}
    assert architectures_and_upsampling(result.stdout, "train_teacher") == {
        architecture: {factor} for architecture, factor in teacher_upsample.items()}


def test_methods_preset_runs_every_method_against_both_teachers_over_three_seeds(dry_run):
    result = dry_run(["quick.yaml", "methods.yaml"])
    assert result.returncode == 0, result.stderr[-2000:]
    students = [line for line in result.stdout.splitlines() if "train_student.py" in line]
    for method, source in (("kd", "--teacher-logits"), ("dkd", "--teacher-logits"),
                           ("fitnets", "--teacher-model"), ("at", "--teacher-model"), ("dist", "--teacher-logits"),
                           ("wttm", "--teacher-logits"), ("nkd", "--teacher-logits")):
        runs = [line for line in students if f"--method {method} " in line]
        assert len(runs) == 2 * 3 and all(source in line for line in runs), method
        assert {re.search(r"--seed (\d+)", line)[1] for line in runs} == {"0", "1", "2"}
        assert {re.search(r"--teacher-(?:logits|model) \S+/(teacher-\w+)", line)[1] for line in runs} == {
            "teacher-frozen", "teacher-finetuned"}
    assert job_counts(result.stdout)["teacher_logits"] == 2  # once per teacher, shared by the logit methods


# The CIFAR zoo presets: one teacher each, so their job counts are checked here rather than in STACKS
ZOO_PRESETS = {"crd.yaml", "cifar10-zoo.yaml", "backend-agreement.yaml"}
SHARED_SLICE = "../shared/data/cifar10-seed-subset.npz"


def test_zoo_presets_are_covered_here():
    assert {path.name for path in PRESETS.glob("*.yaml")} - NEEDS_FILES <= (
        {name for stack in STACKS for name in stack[0]} | ZOO_PRESETS)


@pytest.fixture(scope="module")
def zoo_dry_run(tmp_path_factory):
    """dry_run(preset) in a working directory with a stand-in for the shared CIFAR-10 slice at the relative path
    the cifar10-zoo preset names (shapes only: a dry run reads no pixel)."""
    import numpy as np

    base = tmp_path_factory.mktemp("zoo")
    workdir = base / "main"
    workdir.mkdir()
    (base / "shared" / "data").mkdir(parents=True)
    np.savez_compressed(base / "shared" / "data" / "cifar10-seed-subset.npz",
                        x_train=np.zeros((12000, 32, 32, 3), np.uint8), y_train=np.zeros(12000, np.uint8),
                        x_test=np.zeros((2000, 32, 32, 3), np.uint8), y_test=np.zeros(2000, np.uint8))
    done = {}

    def run(*names):
        if names not in done:
            done[names] = run_snakemake(workdir, "-n", "-p", "--configfile", *(PRESETS / name for name in names))
        return done[names]
    return run


def commands(stdout: str, script: str) -> list[str]:
    return [line for line in stdout.splitlines() if f"{script}.py" in line]


def test_crd_preset_dry_runs_the_standard_pair_with_the_standard_recipe(zoo_dry_run):
    result = zoo_dry_run("crd.yaml")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    methods_run = ("kd", "dkd", "dist", "wttm", "nkd")
    assert counts["train_teacher"] == 1 and counts["teacher_logits"] == 1
    assert counts["train_student"] == 3 * (1 + len(methods_run)) and counts["evaluate"] == counts["train_student"] + 1
    assert "results/crd/summary.md" in result.stdout
    fetch, = commands(result.stdout, "fetch_data")
    assert "--dataset cifar100" in fetch and "--train-size 50000 --val-size 0 --test-size 10000" in fetch
    teacher, = commands(result.stdout, "train_teacher")
    students = commands(result.stdout, "train_student")
    recipe = ("--upsample 1 ", "--epochs 240 ", "--batch-size 64 ", "--optimizer sgd ", "--momentum 0.9 ",
              "--weight-decay 0.0005 ", "--schedule multistep ", "--lr-milestones 150,180,210",
              "--weight-decay-mode l2", "--no-nesterov", "--checkpoint last ", "--ema none ", "--test-every-epoch",
              "--learning-rate 0.05 ", "--augment ")
    for line in [teacher, *students]:
        assert all(flag in line for flag in recipe), [flag for flag in recipe if flag not in line]
    assert "--architecture resnet32x4 " in teacher
    assert {re.search(r"--architecture (\S+)", line)[1] for line in students} == {"resnet8x4"}
    for method, wanted in (("kd", {"alpha": 0.1, "temperature": 4}),
                           ("dkd", {"alpha": 1.0, "beta": 8.0, "temperature": 4, "warmup": 20})):
        runs = [line for line in students if f"--method {method} " in line]
        assert len(runs) == 3, method
        settings = json.loads(re.search(r"--settings '([^']+)'", runs[0])[1])
        assert {key: settings[key] for key in wanted} == wanted, method


def test_the_crd_preset_follows_the_published_protocol():
    preset = yaml.safe_load((PRESETS / "crd.yaml").read_text())
    assert {key: preset["data"][key] for key in published.DATA} == published.DATA
    for key, wanted in published.TRAIN.items():
        value = preset["model"][key] if key == "upsample" else preset["train"][key]
        assert value == wanted or (key == "ema" and value is False), key
    assert preset["evaluation"]["test_every_epoch"] is True
    teacher, = [entry for entry in preset["teachers"].values() if entry]
    student, = [entry for entry in preset["students"].values() if entry]
    assert teacher["augment"] and teacher["learning_rate"] == 0.05
    assert student["learning_rate"] == published.learning_rate(student["architecture"])
    for method in ("kd", "dkd"):
        wanted = published.method_settings(method, teacher["architecture"], student["architecture"])
        filled, = methods.setting_grid(method, preset["distillation"]["methods"][method])
        assert published.settings_match(filled, wanted), method


def test_cifar10_zoo_preset_dry_runs_a_competent_teacher_and_small_students(zoo_dry_run):
    result = zoo_dry_run("cifar10-zoo.yaml")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    assert counts["train_teacher"] == 1 and counts["teacher_logits"] == 1
    assert counts["train_student"] == 3 * (1 + 5)  # 3 seeds x (baseline, kd, dkd, dist, wttm, nkd)
    fetch, = commands(result.stdout, "fetch_data")
    assert f"--source npz --path {SHARED_SLICE}" in fetch
    assert "--train-size 10000 --val-size 2000 --test-size 2000" in fetch
    teacher, = commands(result.stdout, "train_teacher")
    assert "--architecture resnet20 " in teacher and "--augment " in teacher and "--upsample 1 " in teacher
    students = commands(result.stdout, "train_student")
    assert architectures_and_upsampling(result.stdout, "train_student") == {"resnet8": {1}}
    distilled = [line for line in students if "--method" in line]
    assert len(distilled) == 15 and all("--teacher-logits" in line for line in distilled)  # cached soft targets
    assert {re.search(r"--method (\S+)", line)[1] for line in distilled} == {"kd", "dkd", "dist", "wttm", "nkd"}
    assert all("--augment " in line and "--checkpoint best " in line for line in [teacher, *students])
    assert {re.search(r"--seed (\d+)", line)[1] for line in students} == {"0", "1", "2"}


def test_backend_agreement_preset_shrinks_the_zoo_run_to_baseline_and_kd(zoo_dry_run):
    result = zoo_dry_run("cifar10-zoo.yaml", "backend-agreement.yaml")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    assert counts["train_teacher"] == 1 and counts["train_student"] == 3 * 2  # 3 seeds x (baseline, kd)
    fetch, = commands(result.stdout, "fetch_data")
    assert "--train-size 4000 --val-size 1000 --test-size 1000" in fetch
    assert all("--epochs 8 " in line for line in commands(result.stdout, "train_student"))
    assert "results/backend-agreement/summary.md" in result.stdout
