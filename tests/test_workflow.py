"""The whole DAG on tiny synthetic data, in a temporary directory; dry runs of the other configurations."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_snakemake, write_official_cifar100_archive

from kdbench import datasets, runs

TINY = str(ROOT / "presets" / "tiny.yaml")
IDS = ["teacher-frozen", "teacher-finetuned", "baseline-resnet18-s0", "kd-frozen-resnet18-03efa52d-s0",
       "kd-finetuned-resnet18-03efa52d-s0"]


# A sitecustomize on the jobs' PYTHONPATH: each Python process writes, at exit, the kdbench modules it loaded
# (what test_jobs_load_no_kdbench_module_outside_their_code_hash checks against each rule's code hash).
RECORD_IMPORTS = """
import atexit, os, sys

def _record():
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    loaded = sorted(m for m in sys.modules if m == "kdbench" or m.startswith("kdbench."))
    with open(os.path.join(os.environ["KDBENCH_TEST_IMPORTS"], f"{name}-{os.getpid()}.txt"), "w") as handle:
        handle.write("\\n".join(loaded))

if os.environ.get("KDBENCH_TEST_IMPORTS"):
    atexit.register(_record)
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    hook, imports = tmp_path_factory.mktemp("record_imports"), tmp_path_factory.mktemp("imports")
    (hook / "sitecustomize.py").write_text(RECORD_IMPORTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
        patch.setenv("KDBENCH_TEST_IMPORTS", str(imports))
        result = run_snakemake(workdir, "--configfile", TINY, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (workdir / "imports").symlink_to(imports)
    return workdir


def job_counts(result):
    """Snakemake's job table (on stdout for a dry run, on stderr for a real one)."""
    return dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, flags=re.M))


def accuracy_rows(text):
    """Rows of the summary's first table (Accuracy), keyed by model label."""
    table = text.split("## Accuracy")[1].split("##")[0]
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")}


def test_tiny_workflow_summarises_all_five_models(tiny_run):
    results = tiny_run / "results" / "tiny"
    runs = pd.read_csv(results / "runs.tsv", sep="\t")
    assert runs["id"].tolist() == IDS
    text = (results / "summary.md").read_text()
    rows = accuracy_rows(text)
    assert len(rows) == 5 and "kd (alpha 0.3, temperature 7) frozen -> resnet18" in rows
    for n, accuracy, val, loss, f1, *agreement in rows.values():
        assert n == "1" and re.fullmatch(r"\d+\.\d\d", accuracy) and re.fullmatch(r"\d+\.\d\d", val)
        assert re.fullmatch(r"\d+\.\d{3}", loss)
    assert "synthetic" in text and "## Cost" in text and "## Does distillation beat the baseline?" in text
    assert "reference notebook" not in text  # a 1-epoch, 32-px run is not the reference's setting
    assert "1 epoch," in text and "weights: None" not in text
    csv = pd.read_csv(results / "summary.csv")
    assert list(csv.columns[:4]) == ["aggregate", "n", "id", "config"] and len(csv) == 3 * 5
    for figure in ("accuracy_vs_cost", "training_curves"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 5000
    assert not (results / "figures" / "sweep_heatmap.png").exists()  # no sweep, no heat map
    for run_id in IDS:
        assert (results / "eval" / run_id / "confusion_matrix.png").stat().st_size > 5000
        history = pd.read_csv(results / "models" / run_id / "history.csv")
        assert {"loss", "val_accuracy", "val_loss", "epoch_seconds"} <= set(history.columns)
    assert {"hard_loss", "soft_loss"} <= set(pd.read_csv(results / "models" / IDS[3] / "history.csv").columns)
    assert not (results / ".resume").exists() or not any((results / ".resume").iterdir())


def test_teachers_start_before_any_student(tiny_run):
    """Teachers are the critical path (every distilled student waits for one), so they go first."""
    log = sorted((tiny_run / ".snakemake" / "log").glob("*.snakemake.log"))[0].read_text()  # the fixture's run
    started = re.findall(r"^(?:local)?rule (\w+):", log, flags=re.M)
    assert started.count("train_teacher") == 2
    last_teacher = len(started) - 1 - started[::-1].index("train_teacher")
    assert last_teacher < started.index("train_student"), started


def test_baseline_and_distilled_students_start_from_the_same_weights(tiny_run):
    import json

    models = tiny_run / "results" / "tiny" / "models"
    digests = {run_id: json.loads((models / run_id / "train.json").read_text())["initial_weights_sha256"]
               for run_id in IDS[2:]}
    assert len(set(digests.values())) == 1, digests


def test_rerunning_one_target_runs_only_its_job(tiny_run):
    target = f"results/tiny/eval/{IDS[2]}/metrics.json"
    (tiny_run / target).unlink()
    result = run_snakemake(tiny_run, "--configfile", TINY, "--cores", "2", target)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result) == {"evaluate": "1", "total": "1"}
    assert (tiny_run / target).exists()


def test_stage_target_after_complete_run_has_nothing_to_do(tiny_run):
    result = run_snakemake(tiny_run, "--configfile", TINY, "--cores", "2", "teachers", "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_seed_to_a_finished_run_schedules_only_the_new_runs(tiny_run, tmp_path):
    (tmp_path / "two-seeds.yaml").write_text("seeds: [0, 1]\n")  # --config would pass the seeds as strings
    result = run_snakemake(tiny_run, "--configfile", TINY, str(tmp_path / "two-seeds.yaml"), "--cores", "2", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    # the seed-1 baseline and both distilled students, their evaluations, then the runs table and summary again;
    # the teachers and their logits are reused
    assert job_counts(result) == {"train_student": "3", "evaluate": "3", "runs_table": "1", "summarize": "1",
                                  "all": "1", "total": "9"}


def copy_repository(target):
    """The repository's code and config, without venvs, results or caches."""
    skip = shutil.ignore_patterns(".git", ".venv*", "results", ".snakemake", "__pycache__", ".gpu-check", "data",
                                  ".pytest_cache")
    shutil.copytree(ROOT, target, ignore=skip)


def test_editing_the_distiller_reruns_exactly_what_runs_it(tiny_run, tmp_path):
    repo = tmp_path / "repo"
    copy_repository(repo)
    with open(repo / "kdbench" / "distill.py", "a") as handle:
        handle.write("\n# an edit\n")
    result = run_snakemake(tiny_run, "--configfile", TINY, "-n", snakefile=repo / "Snakefile")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result)
    assert counts["train_student"] == "3" and counts["evaluate"] == "3" and counts["summarize"] == "1"
    assert "train_teacher" not in counts and "fetch_data" not in counts and "teacher_logits" not in counts


def test_jobs_load_no_kdbench_module_outside_their_code_hash(tiny_run):
    """Every kdbench module a job of the tiny run actually loaded is a file its rule's code hash covers."""
    seen = set()
    for record in (tiny_run / "imports").glob("*.txt"):
        script = record.name.rsplit("-", 1)[0]
        if not (ROOT / "scripts" / script).is_file():
            continue  # Snakemake itself (snakemake/__main__.py), or a helper process
        rule = script[:-3]
        closure = runs.import_closure(ROOT, f"scripts/{script}")
        modules = {path[:-len("/__init__.py")].replace("/", ".") if path.endswith("/__init__.py")
                   else path[:-3].replace("/", ".") for path in closure}
        loaded = set(record.read_text().split())
        assert "kdbench.cli" in loaded and loaded <= modules, (rule, sorted(loaded - modules))
        seen.add(rule)
    assert seen == {"fetch_data", "train_teacher", "teacher_logits", "train_student", "evaluate", "summarize"}


@pytest.mark.parametrize("module, reruns", [
    ("kdbench/stats.py", {"summarize": "1"}),
    ("kdbench/train.py", {"train_teacher": "2", "teacher_logits": "2", "train_student": "3", "evaluate": "5",
                          "summarize": "1"}),
])
def test_editing_a_module_reruns_exactly_the_rules_that_import_it(tiny_run, tmp_path, module, reruns):
    repo = tmp_path / "repo"
    copy_repository(repo)
    with open(repo / module, "a") as handle:
        handle.write("\n# an edit\n")
    result = run_snakemake(tiny_run, "--configfile", TINY, "-n", snakefile=repo / "Snakefile")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result)
    assert {rule: n for rule, n in counts.items() if rule not in ("all", "total")} == reruns, counts


def test_job_logs_are_clean_on_this_machine(tiny_run):
    """No 'failed call to cuInit' error line from TensorFlow's CUDA probe where no GPU exists, no '1 epochs'."""
    logs = sorted((tiny_run / "results" / "tiny" / "logs").rglob("*.log"))
    assert len(logs) >= 12
    for log in logs:
        text = log.read_text()
        assert "cuInit" not in text and "1 epochs" not in text, (log.name, text[:2000])
    assert "1 epoch," in (tiny_run / "results" / "tiny" / "logs" / "train" / f"{IDS[2]}.log").read_text()


def test_compare_sets_two_real_runs_side_by_side(tiny_run, tmp_path):
    """`kdbench compare` on the tiny run and a copy whose students recorded another optimizer."""
    first = tiny_run / "results" / "tiny"
    second = tmp_path / "results" / "tiny-sgd"
    shutil.copytree(first, second, ignore=shutil.ignore_patterns("*.keras", "*.npy", "*.png", "*.npz", "logs"))
    for info in (second / "models").glob("*-s0/train.json"):
        info.write_text(json.dumps({**json.loads(info.read_text()), "optimizer": "sgd"}))
    result = subprocess.run([sys.executable, "-m", "kdbench.launcher", "compare", str(first), str(second),
                             "--csv", str(tmp_path / "compare.csv")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "| | tiny | tiny-sgd |"
    settings = lines[3:lines.index("| **test accuracy (%), mean ± std over seeds** | | |")]
    assert settings == ["| train.optimizer | adam | sgd |"]  # the teachers' train.json files were not edited
    accuracy = {line.split(" | ")[0][2:]: line for line in lines if "(n=1)" in line}
    assert len(accuracy) == 5 and all(line.count("(n=1)") == 2 for line in accuracy.values())
    paired = [line for line in lines if "(reference)" in line]
    assert len(paired) == 5 and all("+0.00 points [+0.00, +0.00], exact McNemar test over 40 paired test images, "
                                    "p = 1: not significant" in line for line in paired)
    assert pd.read_csv(tmp_path / "compare.csv")["section"].tolist().count("paired") == 5


def test_another_preset_writes_its_own_folder(tiny_run):
    result = run_snakemake(tiny_run, "--configfile", TINY, "-n", "--config", "run_name=tiny-again")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "results/tiny-again/summary.md" in result.stdout and "results/tiny/" not in result.stdout


def test_snakemake_report_builds_html(tiny_run):
    result = run_snakemake(tiny_run, "--configfile", TINY, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert "summary.md" in html and "accuracy_vs_cost.png" in html and "confusion_matrix.png" in html


def test_cifar100_with_other_architectures_runs_through_the_workflow(tmp_path, cifar100_archive):
    """CIFAR-100 from an official-format archive, an EfficientNetB0 teacher and a MobileNetV2 student, by config
    alone: 100-class logits, agreement with the teacher, and the summary's table of mistakes with class names."""
    path, arrays = cifar100_archive
    write_official_cifar100_archive(path, train=96, test=40)  # the fixture's 30 images are too few for 64 + 32
    preset = tmp_path / "cifar100.yaml"
    preset.write_text(f"run_name: c100\ndata: {{dataset: cifar100, source: archive, path: {path}, "
                      "verify_checksum: false, train_size: 64, val_size: 32, test_size: 40}\n"
                      "teachers: {frozen: {architecture: efficientnetb0}, finetuned: null}\n"
                      "students: {resnet18: null, mobile: {architecture: mobilenetv2, learning_rate: 1.0e-3}}\n")
    result = run_snakemake(tmp_path, "--configfile", TINY, preset, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = tmp_path / "results" / "c100"
    runs = pd.read_csv(results / "runs.tsv", sep="\t").set_index("role")
    assert runs.loc["teacher", "architecture"] == "efficientnetb0"
    assert runs.loc["baseline", "architecture"] == runs.loc["distilled", "architecture"] == "mobilenetv2"
    distilled = runs.loc["distilled", "id"]
    assert json.loads((results / "data" / "dataset.json").read_text())["num_classes"] == 100
    assert np.load(results / "eval" / distilled / "test_logits.npy").shape == (40, 100)
    agreement = json.loads((results / "eval" / distilled / "metrics.json").read_text())["agreement"]
    assert 0 <= agreement["top1_agreement"] <= 1 and np.isfinite(agreement["kl_teacher_student"])
    text = (results / "summary.md").read_text()
    assert "cifar100" in text and "## Most frequent mistakes" in text
    mistakes = text.split("## Most frequent mistakes")[1].split("## Figures")[0]
    assert mistakes.count("### ") == 3  # teacher, baseline, distilled student
    classes = set(datasets.get("cifar100").class_names)
    rows = [line.split("|")[1:3] for line in mistakes.splitlines()
            if line.startswith("| ") and "true class" not in line]
    assert rows and all({true.strip(), predicted.strip()} <= classes for true, predicted in rows)


def test_every_architecture_is_wired_by_config_alone(tmp_path):
    preset = tmp_path / "architectures.yaml"
    preset.write_text("teachers: {frozen: {architecture: resnet101}, finetuned: {architecture: efficientnetb0}}\n"
                      "students: {resnet18: null, cifar: {architecture: resnet18-cifar, learning_rate: 1.0e-3},\n"
                      "           mobile: {architecture: mobilenetv2, learning_rate: 1.0e-3}}\n")
    result = run_snakemake(tmp_path, "-n", "-p", "--configfile", TINY, preset)
    assert result.returncode == 0, result.stderr[-2000:]
    commands = result.stdout.splitlines()
    teachers = [line for line in commands if "train_teacher.py" in line]
    assert len(teachers) == 2 and {"resnet101", "efficientnetb0"} == {
        re.search(r"--architecture (\S+)", line).group(1) for line in teachers}
    students = [re.search(r"--architecture (\S+)", line).group(1) for line in commands if "train_student.py" in line]
    assert sorted(students) == sorted(["resnet18-cifar", "mobilenetv2"] * 3)  # a baseline and 2 KD runs each


def test_dry_run_of_default_config_lists_expected_jobs(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--cores", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result) == {"fetch_data": "1", "runs_table": "1", "train_teacher": "2", "teacher_logits": "2",
                                  "train_student": "3", "evaluate": "5", "summarize": "1", "all": "1", "total": "16"}
    assert "results/reference/summary.md" in result.stdout


def test_every_method_runs_by_config_alone(tmp_path):
    preset = tmp_path / "methods.yaml"
    preset.write_text("distillation:\n  methods:\n    dkd: {}\n    fitnets: {}\n    at: {beta: [100, 1000]}\n")
    result = run_snakemake(tmp_path, "-n", "-p", "--configfile", TINY, preset)
    assert result.returncode == 0, result.stderr[-2000:]
    students = [line for line in result.stdout.splitlines() if "train_student.py" in line]
    assert len(students) == 1 + 2 * (1 + 1 + 1 + 2)
    feature_runs = [line for line in students if "--method fitnets" in line or "--method at" in line]
    assert len(feature_runs) == 6 and all("--teacher-model" in line for line in feature_runs)
    assert all("--teacher-logits" in line for line in students if "--method kd" in line or "--method dkd" in line)


def test_online_soft_targets_skip_the_logits_step(tmp_path):
    preset = tmp_path / "online.yaml"
    preset.write_text("distillation:\n  soft_targets: online\n")
    result = run_snakemake(tmp_path, "-n", "--cores", "4", "--configfile", preset)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "teacher_logits" not in job_counts(result) and job_counts(result)["train_student"] == "3"


def test_invalid_config_names_the_key_before_any_job(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--config", "threads=0", "gpu_jobs_per_device=0")
    assert result.returncode != 0
    assert "threads: 0 is less than the minimum of 1" in result.stdout + result.stderr
    assert "gpu_jobs_per_device: 0 is less than the minimum of 1" in result.stdout + result.stderr


def test_lint_is_clean(tmp_path):
    result = run_snakemake(tmp_path, "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout[-3000:]


def test_snakefmt_check_passes():
    import subprocess
    import sys

    files = [str(ROOT / "Snakefile"), *map(str, sorted((ROOT / "rules").glob("*.smk")))]
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sweep_preset_expands_grid_in_dry_run(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--cores", "4", "--configfile", TINY, str(ROOT / "presets" / "sweep.yaml"))
    assert result.returncode == 0, result.stderr[-2000:]
    counts = job_counts(result)
    assert counts["train_student"] == str(1 + 2 * 4 * 5) and counts["evaluate"] == str(2 + 1 + 40)
    assert "results/tiny/figures/sweep_heatmap.png" in result.stdout


def shell_commands(result, script):
    return [line for line in result.stdout.splitlines() if f"{script}.py" in line]


def test_default_rules_pass_cache_and_speed_flags(tmp_path):
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    teachers = shell_commands(result, "train_teacher")
    frozen = [line for line in teachers if "--no-train-backbone" in line]
    assert len(frozen) == 1 and "--cache-features" in frozen[0]
    assert all("--no-cache-features" in line for line in teachers if line not in frozen)
    for line in [*teachers, *shell_commands(result, "train_student")]:
        assert "--precision auto --jit-compile auto" in line and "--threads 4" in line and "--upsample 8" in line
        # the reference recipe: Adam at a constant learning rate, no weight averaging, the last epoch's weights
        assert ("--optimizer adam --momentum 0.9 --weight-decay 0.0005 --schedule constant --warmup-epochs 1 "
                "--ema none --checkpoint last") in line and "--augment" not in line
    assert all("--teacher-logits" in line for line in shell_commands(result, "train_student") if "--method" in line)
    assert all("--augment" not in line for line in shell_commands(result, "teacher_logits"))


def test_reference_way_and_augmentation_reach_the_scripts(tmp_path):
    preset = tmp_path / "slow.yaml"
    preset.write_text("teachers:\n  frozen:\n    cache_features: false\n"
                      "distillation:\n  soft_targets: online\ntrain:\n  epochs: 5\n  batch_size: 32\n"
                      "  precision: mixed_bfloat16\n  jit_compile: false\n  augment: true\n")
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "4", "--configfile", preset)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all("--no-cache-features" in line for line in shell_commands(result, "train_teacher"))
    students = shell_commands(result, "train_student")
    assert len(students) == 3 and all("--augment" in line for line in students)
    assert all("--teacher-model" in line for line in students if "--method" in line)
    assert all("--precision mixed_bfloat16 --jit-compile false" in line for line in students)


def test_stable_preset_reaches_every_script_with_per_epoch_cached_targets(tmp_path):
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "4", "--configfile", ROOT / "presets" / "stable.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    recipe = ("--optimizer sgd --momentum 0.9 --weight-decay 0.0005 --schedule cosine --warmup-epochs 1 "
              "--ema 0.99 --checkpoint best")
    teachers, students = shell_commands(result, "train_teacher"), shell_commands(result, "train_student")
    assert len(teachers) == 2 and all(recipe in line and "--augment" not in line for line in teachers)
    assert len(students) == 3 and all(recipe in line and "--augment --augment-seed 0" in line for line in students)
    assert all("--teacher-logits" in line for line in students if "--method" in line)  # cached, not online
    logits = shell_commands(result, "teacher_logits")
    assert len(logits) == 2 and all("--augment --augment-seed 0 --epochs 5" in line for line in logits)


def test_the_user_data_file_is_an_input_and_never_an_output(tmp_path):
    data = tmp_path / "my.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.integers(0, 256, (120, 32, 32, 3), dtype=np.uint8), y_train=rng.integers(0, 10, 120),
             x_test=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), y_test=rng.integers(0, 10, 40))
    preset = tmp_path / "npz.yaml"
    preset.write_text(f"data:\n  source: npz\n  path: {data}\n")
    result = run_snakemake(tmp_path, "-n", "--configfile", TINY, preset, "--forcerun", "fetch_data")
    assert result.returncode == 0, result.stderr[-2000:]
    fetch = result.stdout.split("rule fetch_data:")[1].split("\n\n")[0]
    assert f"input: {data}" in fetch
    inside = tmp_path / "results" / "mine.npz"
    inside.parent.mkdir()
    shutil.copy(data, inside)
    preset.write_text(f"data:\n  source: npz\n  path: {inside}\n")
    refused = run_snakemake(tmp_path, "-n", "--configfile", TINY, preset)
    assert refused.returncode != 0 and "inside results/" in refused.stdout + refused.stderr
    assert inside.exists()
