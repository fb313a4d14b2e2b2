# Config validation, the runs table and path helpers; no other Python lives in the rules.
import json
import os
import shlex
import sys

from snakemake.settings.types import DeploymentMethod
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
from kdbench import hardware, methods, preflight
from kdbench.config import RECIPE_KEYS, config_errors, normalise
from kdbench.runs import code_hash, expand, present, two_setting_sweeps

SCHEMA = f"{workflow.basedir}/schemas/config.schema.yaml"
normalise(config)
_errors = config_errors(config, SCHEMA)
if _errors:
    raise ValueError(
        "invalid configuration (config.yaml + --configfile/--config):\n  "
        + "\n  ".join(_errors)
    )
validate(config, SCHEMA)  # fills schema defaults

# Every job runs scripts/ with the Python that runs Snakemake (its bin/ first on PATH), unless
# --sdm conda gives each rule its own environment; kdbench is importable from the repository.
_env = f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "  # {{ }}: shell format
_env += (
    f"export KDBENCH_SCRIPTS={shlex.quote(os.path.join(workflow.basedir, 'scripts'))}; "
)
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    _env += f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
# Every job runs on train.backend (kdbench.config.normalise); the default run's prefix stays as it was.
if config["train"]["backend"] != "tensorflow" or "KERAS_BACKEND" in os.environ:
    _env += f"export KERAS_BACKEND={shlex.quote(config['train']['backend'])}; "
shell.prefix(_env)

# Local runs on a machine with N GPUs: at most N x gpu_jobs_per_device GPU jobs at once, each locking a GPU
# slot of its own before the backend starts (Snakemake counts GPUs but assigns none). Without GPUs, or on a
# cluster, only cores (or SLURM) limit the jobs; `--resources gpu=K` on the command line still wins.
# At parse time no executor is known yet (local_exec is always true then): a run without --jobs is local.
if (
    workflow.is_main_process
    and workflow.nodes is None
    and "gpu" not in workflow.global_resources
):
    _gpus = hardware.gpu_count()
    if _gpus:
        _gpu_jobs, _gpu_env = hardware.local_gpu_jobs(
            _gpus, config["gpu_jobs_per_device"], config["train"]["backend"]
        )
        workflow.register_resource("gpu", _gpu_jobs)
        shell.prefix(
            _env
            + "".join(
                f"export {name}={shlex.quote(value)}; "
                for name, value in _gpu_env.items()
            )
        )

RESULTS = f"results/{config['run_name']}"
DATA = f"{RESULTS}/data/dataset.npz"
DATA_INFO = f"{RESULTS}/data/dataset.json"
RUNS_TSV = f"{RESULTS}/runs.tsv"
SUMMARY = f"{RESULTS}/summary.md"

RUNS = expand(config).set_index("id", drop=False)
TEACHER_IDS = RUNS.index[RUNS["role"] == "teacher"].tolist()
STUDENT_IDS = RUNS.index[RUNS["role"] != "teacher"].tolist()
TEACHERS = present(config["teachers"])
# a heat map needs a method whose sweep varies exactly two settings (the summary draws the same ones)
HAS_GRID = bool(two_setting_sweeps(RUNS))
STUDENTS = present(config["students"])


def run(model):
    """The runs-table row of a model id (a KeyError names an id the config does not define)."""
    return RUNS.loc[model]


def model_file(model):
    return f"{RESULTS}/models/{model}/model.keras"


def metrics_file(model):
    return f"{RESULTS}/eval/{model}/metrics.json"


def training_benchmark(model):
    """Snakemake's time/memory record of a training job; evaluate reads its peak memory."""
    return f"{RESULTS}/benchmarks/train/{model}.tsv"


def training_outputs(model):
    """Declared outputs of a training job; its resume state sits outside them (Snakemake deletes failed outputs)."""
    return {
        "model": model_file(model),
        "history": f"{RESULTS}/models/{model}/history.csv",
        "info": f"{RESULTS}/models/{model}/train.json",
    }


def training_flags(model):
    """Flags shared by every training script: data, schedule, precision and the training recipe."""
    train = config["train"]
    return (
        f"--data {DATA} --upsample {run(model)['upsample']} "
        f"--epochs {train['epochs']} --batch-size {train['batch_size']} "
        f"--precision {train['precision']} --jit-compile {str(train['jit_compile']).lower()} "
        f"--{'' if train['deterministic'] else 'no-'}deterministic "
        f"--optimizer {train['optimizer']} --momentum {train['momentum']} "
        f"--weight-decay {train['weight_decay']} --schedule {train['schedule']} "
        f"--warmup-epochs {train['warmup_epochs']} --ema {train['ema'] or 'none'} "
        f"--checkpoint {train['checkpoint']} "
        f"--seed {run(model)['seed']} --resume-dir {RESULTS}/.resume/{model}"
        + recipe_extra_flags(train)
        + (" --test-every-epoch" if config["evaluation"]["test_every_epoch"] else "")
        + (
            f" --tensorboard-dir {RESULTS}/tensorboard/{model}"
            if train["tensorboard"]
            else ""
        )
    )


def recipe_extra_flags(train):
    """The newer recipe keys, passed only where they differ from the scripts' defaults (the default run's
    command lines stay as they were)."""
    flags = ""
    if train["lr_milestones"]:
        flags += f" --lr-milestones {','.join(map(str, train['lr_milestones']))}"
    if train["lr_decay"] != 0.1:
        flags += f" --lr-decay {train['lr_decay']}"
    if train["weight_decay_mode"] != "decoupled":
        flags += f" --weight-decay-mode {train['weight_decay_mode']}"
    return flags + ("" if train["nesterov"] else " --no-nesterov")


def augment_flags(epochs=False):
    """The students' augmentation; teacher_logits (epochs=True) computes its cached targets on every epoch's views."""
    train = config["train"]
    if not train["augment"]:
        return ""
    flags = f"--augment --augment-seed {train['augment_seed']}"
    return flags + (f" --epochs {train['epochs']}" if epochs else "")


def teacher_id(model):
    return f"teacher-{run(model)['teacher']}"


def needs_online_teacher(model):
    """Feature methods always see the teacher run; logit methods read cached logits unless told otherwise."""
    row = run(model)
    return (
        methods.get(row["method"]).NEEDS == "features"
        or config["distillation"]["soft_targets"] == "online"
    )


def teacher_source(wildcards):
    """Cached logits (computed once per teacher) or the teacher checkpoint, run online."""
    if run(wildcards.model)["role"] != "distilled":
        return []
    if needs_online_teacher(wildcards.model):
        return model_file(teacher_id(wildcards.model))
    return f"{RESULTS}/logits/{teacher_id(wildcards.model)}.npy"


def teacher_test_logits(wildcards):
    """A distilled student is also scored on agreement with its teacher's test predictions."""
    if run(wildcards.model)["role"] != "distilled":
        return []
    return f"{RESULTS}/eval/{teacher_id(wildcards.model)}/test_logits.npy"


def student_flags(wildcards):
    """The student's architecture, learning rate and augmentation and, for a distilled run, its method and teacher."""
    row = run(wildcards.model)
    student = STUDENTS[row["student"]]
    flags = f"--architecture {row['architecture']} --learning-rate {student['learning_rate']}"
    flags += f" {augment_flags()}" if config["train"]["augment"] else ""
    if row["role"] == "distilled":
        source = (
            "--teacher-model"
            if needs_online_teacher(wildcards.model)
            else "--teacher-logits"
        )
        flags += (
            f" --method {row['method']} --settings {shlex.quote(row['settings'])}"
            f" --teacher-architecture {TEACHERS[row['teacher']]['architecture']} {source} {teacher_source(wildcards)}"
        )
    return flags


def teacher_flags(wildcards):
    """The teacher's architecture, weights, which parts train, and whether features are cached."""
    entry = TEACHERS[run(wildcards.model)["teacher"]]
    return (
        f"--architecture {entry['architecture']} --learning-rate {entry['learning_rate']} "
        f"--weights {shlex.quote(str(entry['weights'] or 'none'))} "
        f"--{'' if entry['train_backbone'] else 'no-'}train-backbone "
        f"--{'' if entry.get('cache_features') else 'no-'}cache-features"
        + (
            f" --augment --augment-seed {config['train']['augment_seed']}"
            if entry.get("augment")
            else ""
        )
    )


# The code each rule's script runs, scripts/<rule>.py and the kdbench modules it imports (kdbench.runs.
# import_closure, read from the code): a change to any of them reruns that rule's jobs (a params trigger, by
# content, since scripts called from shell: are invisible to Snakemake's own code trigger).
_SCRIPTED = [
    "fetch_data",
    "train_teacher",
    "teacher_logits",
    "train_student",
    "evaluate",
    "summarize",
]
CODE_HASH = {r: code_hash(workflow.basedir, f"scripts/{r}.py") for r in _SCRIPTED}


def check_inputs():
    """Stop before any job when an input the remaining jobs need is missing (kdbench.preflight)."""
    done = {"data"} if os.path.exists(DATA) else set()
    done |= {name for name in TEACHERS if os.path.exists(model_file(f"teacher-{name}"))}
    problems = preflight.missing_inputs(config, done=done)
    if problems:
        raise WorkflowError(preflight.report(problems))
    for warning in preflight.content_warnings(config, done=done):
        print(f"warning: {warning}", file=sys.stderr)


def user_file(path):
    """A file the user points at, as a declared input (replacing it reruns what depends on it)."""
    return [path] if path not in (None, "imagenet") and os.path.isfile(path) else []


wildcard_constraints:
    model=r"[A-Za-z0-9_.-]+",
