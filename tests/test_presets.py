"""Every preset, and every stack of presets the documentation gives, passes a dry run with the jobs it promises."""

import re

import pytest
from conftest import ROOT, run_snakemake

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


def test_every_preset_is_covered_here():
    assert {path.name for path in PRESETS.glob("*.yaml")} - NEEDS_FILES <= {name for stack in STACKS for name in stack[0]}


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
