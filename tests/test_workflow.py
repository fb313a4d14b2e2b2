"""The whole DAG on tiny synthetic data, in a temporary directory."""

import re

import pytest
from conftest import ROOT, run_snakemake

TINY = str(ROOT / "presets" / "tiny.yaml")
FIVE_MODELS = ["teacher-frozen", "teacher-finetuned", "student-baseline-s0",
               "student-kd-frozen-a0.3-t7-s0", "student-kd-finetuned-a0.3-t7-s0"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    result = run_snakemake(workdir, "--configfile", TINY, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def accuracy_rows(text):
    """Rows of the summary's first table (Accuracy), keyed by model config."""
    table = text.split("## Accuracy")[1].split("##")[0]
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")}


def test_tiny_workflow_summarises_all_five_models(tiny_run):
    text = (tiny_run / "results" / "summary.md").read_text()
    rows = accuracy_rows(text)
    assert set(rows) == {re.sub(r"-s0$", "", m) for m in FIVE_MODELS}
    for model, (n, accuracy, seed, val, loss, f1) in rows.items():
        assert n == "1" and 0 <= float(accuracy) <= 100 and 0 <= float(val) <= 100
        assert re.fullmatch(r"\d+\.\d+", loss)
    assert "synthetic" in text and "## Cost" in text and "## Does distillation beat the baseline?" in text
    csv = (tiny_run / "results" / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("aggregate,n,model,config,kind") and len(csv) == 1 + 3 * 5
    for figure in ("accuracy_vs_cost", "training_curves", "sweep_heatmap"):
        assert (tiny_run / "results" / "figures" / f"{figure}.png").stat().st_size > 5000
    for model in FIVE_MODELS:
        assert (tiny_run / "results" / "eval" / model / "confusion_matrix.png").stat().st_size > 5000
        assert (tiny_run / "results" / "models" / model / "history.csv").exists()
    assert not (tiny_run / "results" / ".resume").exists() or not any((tiny_run / "results" / ".resume").iterdir())


def test_rerunning_one_target_runs_only_its_job(tiny_run):
    target = "results/eval/student-baseline-s0/metrics.json"
    (tiny_run / target).unlink()
    result = run_snakemake(tiny_run, "--configfile", TINY, "--cores", "2", target)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert re.search(r"evaluate\s+1", log) and "train_baseline" not in log.split("Job stats")[-1]
    assert (tiny_run / target).exists()


def test_stage_target_after_complete_run_has_nothing_to_do(tiny_run):
    result = run_snakemake(tiny_run, "--configfile", TINY, "--cores", "2", "teachers", "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_dry_run_of_default_config_lists_expected_jobs(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--cores", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert stats == {"fetch_data": "1", "train_teacher": "2", "teacher_logits": "2", "distill": "2",
                     "train_baseline": "1", "evaluate": "5", "summarize": "1", "all": "1", "total": "15"}


def test_online_soft_targets_skip_the_logits_step(tmp_path):
    preset = tmp_path / "online.yaml"
    preset.write_text("distillation:\n  soft_targets: online\n")
    result = run_snakemake(tmp_path, "-n", "--cores", "4", "--configfile", preset)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "teacher_logits" not in result.stdout and re.search(r"^distill\s+2$", result.stdout, re.M)


def test_invalid_config_names_the_key_before_any_job(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--config", "threads=0")
    assert result.returncode != 0
    assert "threads: 0 is less than the minimum of 1" in result.stdout + result.stderr


def test_lint_is_clean(tmp_path):
    result = run_snakemake(tmp_path, "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout[-3000:]


def test_snakemake_report_builds_html(tiny_run):
    result = run_snakemake(tiny_run, "--configfile", TINY, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert "summary.md" in html and "accuracy_vs_cost.png" in html and "confusion_matrix.png" in html


def test_sweep_preset_expands_grid_in_dry_run(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--cores", "4", "--configfile", TINY, str(ROOT / "presets" / "sweep.yaml"))
    assert result.returncode == 0, result.stderr[-2000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert stats["distill"] == str(2 * 4 * 5) and stats["evaluate"] == str(2 + 1 + 40)
    assert "results/models/student-kd-frozen-a0.9-t10-s0/model.keras" in result.stdout


def shell_commands(result, script):
    return [line for line in result.stdout.splitlines() if f"{script}.py" in line]


def test_default_rules_pass_cache_and_speed_flags(tmp_path):
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    teachers = {("frozen" if "--kind frozen" in line else "finetuned"): line
                for line in shell_commands(result, "train_teacher")}
    assert "--cache-features" in teachers["frozen"] and "--no-cache-features" in teachers["finetuned"]
    for line in [*teachers.values(), *shell_commands(result, "train_student")]:
        assert "--precision auto --jit-compile auto" in line and "--threads 4" in line
    assert all("--teacher-logits" in line and "--augment" not in line
               for line in shell_commands(result, "train_student") if "--alpha" in line)


def test_seed_way_and_augmentation_reach_the_scripts(tmp_path):
    preset = tmp_path / "slow.yaml"
    preset.write_text("teachers:\n  frozen:\n    learning_rate: 1.0e-3\n    cache_features: false\n"
                      "student:\n  learning_rate: 1.0e-3\n  augment: true\n"
                      "distillation:\n  soft_targets: online\ntrain:\n  epochs: 5\n  batch_size: 32\n"
                      "  precision: mixed_bfloat16\n  jit_compile: false\n")
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "4", "--configfile", preset)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all("--no-cache-features" in line for line in shell_commands(result, "train_teacher"))
    students = shell_commands(result, "train_student")
    assert len(students) == 3 and all("--augment" in line for line in students)
    assert all("--teacher-model" in line for line in students if "--alpha" in line)
    assert all("--precision mixed_bfloat16 --jit-compile false" in line for line in students)


def test_augmentation_with_cached_soft_targets_is_refused_before_any_job(tmp_path):
    preset = tmp_path / "augment.yaml"
    preset.write_text("student:\n  learning_rate: 1.0e-3\n  augment: true\n")
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", preset)
    assert result.returncode != 0
    assert "student.augment: true needs distillation.soft_targets: online" in result.stdout + result.stderr
