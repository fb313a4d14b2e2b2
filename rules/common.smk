# Config validation and path helpers; no other Python lives in the rules.
import os
import shlex
import sys

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
from kdbench.config import config_errors

SCHEMA = f"{workflow.basedir}/schemas/config.schema.yaml"
_errors = config_errors(config, SCHEMA)
if _errors:
    raise ValueError("invalid configuration (config.yaml + --configfile/--config):\n  " + "\n  ".join(_errors))
validate(config, SCHEMA)  # fills schema defaults


def as_list(value):
    return value if isinstance(value, list) else [value]


def number_tag(value):
    """Compact number for paths and names: 0.3 -> '0.3', 7.0 -> '7'."""
    return f"{value:g}"


# Every job runs scripts/ with the Python that runs Snakemake (its bin/ first on PATH), unless
# --sdm conda gives each rule its own environment; kdbench is importable from the repository.
_env = f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "  # {{ }}: shell format
_env += f"export KDBENCH_SCRIPTS={shlex.quote(os.path.join(workflow.basedir, 'scripts'))}; "
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _env += f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
shell.prefix(_env)

DATA = "results/data/cifar10.npz"
DATA_INFO = "results/data/cifar10.json"
SUMMARY = "results/summary.md"
SEEDS = config["seeds"]
TEACHER_SEED = SEEDS[0]

TEACHERS = [f"teacher-{kind}" for kind in ("frozen", "finetuned")]
BASELINES = [f"student-baseline-s{seed}" for seed in SEEDS]
DISTILLED = [
    f"student-kd-{kind}-a{number_tag(alpha)}-t{number_tag(temperature)}-s{seed}"
    for kind in ("frozen", "finetuned")
    for alpha in as_list(config["distillation"]["alpha"])
    for temperature in as_list(config["distillation"]["temperature"])
    for seed in SEEDS
]
STUDENTS = BASELINES + DISTILLED


def model_file(name):
    return f"results/models/{name}/model.keras"


def metrics_file(name):
    return f"results/eval/{name}/metrics.json"


def training_benchmark(name):
    """Snakemake's time/memory record of a training job; evaluate reads its peak memory."""
    return f"results/benchmarks/train/{name}.tsv"


def training_outputs(name):
    """Declared outputs of a training job; its resume state sits outside them (Snakemake deletes failed outputs)."""
    return {
        "model": model_file(name),
        "history": f"results/models/{name}/history.csv",
        "info": f"results/models/{name}/train.json",
    }


def training_flags(name):
    """Flags shared by every training script."""
    return (
        f"--data {DATA} --upsample {config['model']['upsample']} "
        f"--epochs {config['train']['epochs']} --batch-size {config['train']['batch_size']} "
        f"--precision {config['train']['precision']} --jit-compile {str(config['train']['jit_compile']).lower()} "
        f"--{'' if config['train']['deterministic'] else 'no-'}deterministic "
        f"--resume-dir results/.resume/{name}"
    )


def teacher_source(wildcards):
    """Cached logits (computed once per teacher) or, for online KD, the teacher checkpoint itself."""
    if config["distillation"]["soft_targets"] == "cached":
        return f"results/logits/teacher-{wildcards.teacher}.npy"
    return model_file(f"teacher-{wildcards.teacher}")


wildcard_constraints:
    teacher="frozen|finetuned",
    seed=r"\d+",
    alpha=r"[0-9.e+-]+",
    temperature=r"[0-9.e+-]+",
