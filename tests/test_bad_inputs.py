"""Bad inputs, one row each: configs, data files, weights paths and script flags.

Every row must fail with a non-zero exit and a message naming what is wrong, not a bare traceback, and
must leave results that already exist untouched. Config rows are checked through the function the
Snakefile calls (milliseconds each); Snakemake runs of combined rows show that they stop the workflow.
"""

import errno
import io
import json
import os
import pickle
import tarfile

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, official_batch_bytes, run_script, run_snakemake, write_official_archive
from snakemake.utils import update_config

from kdbench import KdbenchError
from kdbench.config import config_errors
from kdbench.datasets import get, make_synthetic, save_dataset

TINY = str(ROOT / "presets" / "tiny.yaml")
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
PREVIOUS = "a result computed earlier\n"


class _Exploit:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npz(**changes) -> dict[str, np.ndarray]:
    """A valid CIFAR-10-shaped .npz (10 train, 5 test images) with some arrays replaced."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), "y_train": np.arange(10) % 10,
              "x_test": rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(5)}
    return {**arrays, **changes}


_NAN_IMAGES = np.full((5, 32, 32, 3), 100.0)
_NAN_IMAGES[0, 0, 0, 0] = np.nan
# user .npz files whose shapes are right but whose contents are not CIFAR images and class indices
CONTENT_FILES = {
    "scaled.npz": _npz(x_train=np.random.default_rng(1).random((10, 32, 32, 3)).astype(np.float32)),
    "nan_images.npz": _npz(x_test=_NAN_IMAGES),
    "wide_pixels.npz": _npz(x_train=np.full((10, 32, 32, 3), 300, np.int16)),
    "channels_first.npz": _npz(x_train=np.zeros((10, 3, 32, 32), np.uint8)),
    "onehot.npz": _npz(y_train=np.eye(10, dtype=np.float32)),
    "float_labels.npz": _npz(y_train=np.arange(10, dtype=np.float64)),
    "name_labels.npz": _npz(y_test=np.array(["cat", "dog", "cat", "dog", "cat"])),
    "label_range.npz": _npz(y_train=np.arange(10) + 1),
    "negative_labels.npz": _npz(y_test=np.array([0, 1, -1, 2, 3])),
    "count_mismatch.npz": _npz(y_train=np.arange(9)),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad (and good) input files the rows refer to, by name."""
    root = tmp_path_factory.mktemp("inputs")
    paths = {name.split(".")[0]: root / name for name in (
        "data.npz", "archive.tar.gz", "truncated.tar.gz", "random.tar.gz", "evil.tar.gz", "extracted",
        "nokey.npz", "badshape.npz", "garbage.h5", "short_logits.npy", "nan_logits.npy", "corrupt.keras",
        "train.json", "pwned", *CONTENT_FILES, "badlabels_data.npz")}
    save_dataset(paths["data"], make_synthetic(64, 20, seed=0), get("cifar10").class_names)
    write_official_archive(paths["archive"])
    whole = paths["archive"].read_bytes()
    paths["truncated"].write_bytes(whole[: len(whole) // 2])
    paths["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    _Exploit.marker = str(paths["pwned"])
    with tarfile.open(paths["evil"], "w:gz") as archive:  # complete, so the reader gets to the pickle
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
            payload = pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    batches = paths["extracted"] / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for i in range(1, 6):  # train batches only: test_batch is missing
        (batches / f"data_batch_{i}").write_bytes(
            official_batch_bytes(np.zeros((2, 32, 32, 3), np.uint8), np.zeros(2, int)))
    np.savez(paths["nokey"], x_train=np.zeros((4, 32, 32, 3), np.uint8))
    np.savez(paths["badshape"], x_train=np.zeros((4, 28, 28, 3), np.uint8), y_train=np.zeros(4),
             x_test=np.zeros((4, 28, 28, 3), np.uint8), y_test=np.zeros(4))
    paths["garbage"].write_text("not an HDF5 file\n")
    np.save(paths["short_logits"], np.zeros((5, 10), np.float32))
    nan_logits = np.zeros((64, 10), np.float32)
    nan_logits[3, 4] = np.nan
    np.save(paths["nan_logits"], nan_logits)
    paths["corrupt"].write_bytes(b"PK\x03\x04 this is not a keras archive")
    paths["train"].write_text("{}\n")
    for name, arrays in CONTENT_FILES.items():
        np.savez(paths[name.split(".")[0]], **arrays)
    bad_labels = make_synthetic(64, 20, seed=0, val_size=8)
    bad_labels["y_test"][0] = 12
    np.savez(paths["badlabels_data"], **bad_labels, class_names=np.array(get("cifar10").class_names))
    return {name: str(path) for name, path in paths.items()}


# ---------------------------------------------------------------------------------------------- configs
# (preset merged over config.yaml + presets/tiny.yaml, words the error must contain)
CONFIGS = [
    pytest.param("epochs: 5\n", "(top level): Additional properties are not allowed ('epochs' was unexpected); "
                 "allowed keys: data, description, distillation", id="unknown-top-level-key"),
    pytest.param("train:\n  epoch: 5\n", "train: Additional properties are not allowed ('epoch' was unexpected); "
                 "allowed keys: augment, augment_seed, backend, batch_size, checkpoint, deterministic, ema, epochs",
                 id="misspelt-nested-key"),
    pytest.param("distillation:\n  methods:\n    kd: {{alpha: 1.5}}\n",
                 "distillation.methods.kd.alpha: 1.5 is greater than the maximum of 1", id="alpha-above-1"),
    pytest.param("distillation:\n  methods:\n    kd: {{temperature: 0.01}}\n",
                 "distillation.methods.kd.temperature: 0.01 is less than the minimum of 0.1", id="temperature-too-small"),
    pytest.param("distillation:\n  methods:\n    kd: {{temperature: [2, -1]}}\n",
                 "distillation.methods.kd.temperature[1]: -1 is less than the minimum of 0.1",
                 id="temperature-list-with-negative"),
    pytest.param("distillation:\n  methods:\n    kd: {{temperature: [7, 7.0]}}\n",
                 "distillation.methods.kd.temperature: [7, 7.0] has non-unique elements", id="one-value-twice"),
    pytest.param("distillation:\n  methods:\n    kd: {{temperature: .nan}}\n",
                 "distillation.methods.kd.temperature: nan is not a finite number", id="temperature-nan"),
    pytest.param("distillation:\n  methods:\n    kd: {{alpha: .inf}}\n",
                 "distillation.methods.kd.alpha: inf is not a finite number", id="alpha-infinite"),
    pytest.param("distillation:\n  methods:\n    magic: {{}}\n",
                 "distillation.methods.magic: unknown method; allowed: at, dist, dkd, fitnets, kd, nkd, wttm",
                 id="unknown-method"),
    pytest.param("distillation:\n  methods:\n    kd: {{beta: 3}}\n",
                 "distillation.methods.kd.kd: Additional properties are not allowed ('beta' was unexpected)",
                 id="setting-of-another-method"),
    pytest.param("train:\n  epochs: 5.0\n", "train.epochs: 5.0 is not of type 'integer'", id="float-epochs"),
    pytest.param("seeds: [4294967296]\n", "seeds.0: 4294967296 is greater than the maximum of 2147483647",
                 id="seed-beyond-tensorflow"),
    pytest.param("students:\n  resnet18:\n    architecture: resnet1800\n",
                 "students.resnet18.architecture: 'resnet1800' is not a known architecture", id="unknown-architecture"),
    pytest.param("teachers:\n  frozen:\n    architecture: resnet18\n",
                 "teachers.frozen.train_backbone: false freezes a backbone, and 'resnet18' is not a backbone + head "
                 "teacher", id="student-as-frozen-teacher"),
    pytest.param("teachers:\n  finetuned:\n    architecture: resnet56\n    weights: imagenet\n",
                 "teachers.finetuned.weights: 'imagenet' cannot be loaded, 'resnet56' is not a backbone + head "
                 "teacher", id="zoo-teacher-with-weights"),
    pytest.param("teachers:\n  finetuned:\n    cache_features: true\n",
                 "teachers.finetuned.cache_features: true needs train_backbone: false", id="cache-trained-backbone"),
    pytest.param("run_name: ../elsewhere\n", "run_name: '../elsewhere' does not match", id="run-name-path"),
    pytest.param("distillation:\n  soft_targets: sometimes\n",
                 "distillation.soft_targets: 'sometimes' is not one of ['cached', 'online']", id="soft-targets-enum"),
    pytest.param("train:\n  epochs: 0\n", "train.epochs: 0 is less than the minimum of 1", id="zero-epochs"),
    pytest.param("train:\n  batch_size: large\n", "train.batch_size: 'large' is not of type 'integer'",
                 id="batch-size-not-a-number"),
    pytest.param("model:\n  upsample: 3\n", "model.upsample: 3 is not one of [1, 2, 4, 8, 16]",
                 id="upsample-not-power-of-two"),
    pytest.param("students:\n  resnet18:\n    learning_rate: -0.001\n",
                 "students.resnet18.learning_rate: -0.001 is less than or equal to the minimum of 0", id="negative-lr"),
    pytest.param("seeds: [0, 0]\n", "seeds: [0, 0] has non-unique elements", id="duplicate-seeds"),
    pytest.param("data:\n  source: ftp\n",
                 "data.source: 'ftp' is not one of ['download', 'archive', 'npz', 'synthetic']", id="unknown-source"),
    pytest.param("data:\n  source: download\n  train_size: 60000\n",
                 "data.train_size: 60000 is greater than the maximum of 50000", id="more-images-than-cifar10"),
    pytest.param("data:\n  source: archive\n", "data.path: missing; data.source: archive needs data.path",
                 id="archive-without-path"),
    pytest.param("data:\n  source: npz\n  path: nowhere.npz\n",
                 "data.path: 'nowhere.npz' does not exist", id="npz-path-missing"),
    pytest.param("data:\n  source: npz\n  path: {data}\n  train_size: 100\n",
                 "data.train_size + data.val_size: 100 + 40 = 140 is more than the 64 training images in",
                 id="npz-too-small"),
    pytest.param("data:\n  source: download\n  train_size: 45000\n  val_size: 10000\n",
                 "data.train_size + data.val_size: 45000 + 10000 = 55000 is more than the 50000 training images "
                 "in CIFAR-10", id="train-plus-val-above-cifar10"),
    pytest.param("data:\n  source: npz\n  path: {garbage}\n", "is not a readable .npz", id="npz-not-an-npz"),
    pytest.param("data:\n  path: {archive}\n", "is set but data.source is synthetic, which ignores it",
                 id="path-without-file-source"),
    pytest.param("teachers:\n  frozen:\n    weights: missing/resnet50.h5\n",
                 "teachers.frozen.weights: 'missing/resnet50.h5' does not exist", id="weights-path-missing"),
]


def merged_config(preset: str) -> dict:
    """config.yaml, presets/tiny.yaml and `preset` merged the way Snakemake merges --configfile files."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for layer in (yaml.safe_load(Path(TINY).read_text()), yaml.safe_load(preset)):
        update_config(config, layer)
    return config


@pytest.mark.parametrize("preset, message", CONFIGS)
def test_bad_config_row_names_key_value_and_what_is_allowed(preset, message, files):
    # the function rules/common.smk runs on the merged config before any job; the runs below prove the wiring
    errors = config_errors(merged_config(preset.format(**files)), SCHEMA)
    assert any(message in line for line in errors), errors


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory that already holds a computed data set, which no failing run may touch."""
    root = tmp_path_factory.mktemp("workdir")
    (root / "results" / "data").mkdir(parents=True)
    (root / "results" / "data" / "cifar10.npz").write_text(PREVIOUS)
    return root


def results_snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in (root / "results").rglob("*") if p.is_file()}


@pytest.mark.parametrize("rows", [
    pytest.param(["unknown-top-level-key", "zero-epochs", "upsample-not-power-of-two", "negative-lr",
                  "duplicate-seeds"], id="schema-errors"),
    pytest.param(["npz-too-small", "weights-path-missing", "alpha-above-1"], id="cross-key-errors"),
])
def test_snakemake_lists_every_config_error_at_once_and_runs_nothing(rows, files, workdir, request):
    by_id = {row.id: row.values for row in CONFIGS}
    config = workdir / f"{request.node.callspec.id}.yaml"
    combined = {}
    for row in rows:
        update_config(combined, yaml.safe_load(by_id[row][0].format(**files)))
    config.write_text(yaml.safe_dump(combined))
    before = results_snapshot(workdir)
    result = run_snakemake(workdir, "--cores", "1", "--configfile", TINY, config)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "invalid configuration" in output
    for row in rows:
        assert by_id[row][1] in output, output[-3000:]
    assert "Traceback" not in output
    assert results_snapshot(workdir) == before


def test_bad_config_value_on_the_command_line(workdir):
    result = run_snakemake(workdir, "--cores", "1", "--configfile", TINY, "--config", "threads=-2")
    assert result.returncode != 0 and "threads: -2 is less than the minimum of 1" in result.stdout + result.stderr


# --------------------------------------------------------------------------------- data, weights, flags
# (script, flags with {file} placeholders, words the error must contain); outputs are added per script
OUTPUTS = {
    "fetch_data.py": ["--out", "d.npz", "--info-out", "d.json"],
    "train_teacher.py": ["--resume-dir", "resume", "--model-out", "model.keras", "--history-out", "history.csv",
                         "--info-out", "train.json"],
    "teacher_logits.py": ["--out", "logits.npy"],
    "evaluate.py": ["--name", "m", "--metrics-out", "metrics.json", "--per-class-out", "per_class.csv",
                    "--confusion-out", "confusion.csv", "--confusion-png", "confusion.png",
                    "--predictions-out", "predictions.csv"],
}
OUTPUTS["train_student.py"] = OUTPUTS["train_teacher.py"]
TRAIN = "--data {data} --upsample 1 --epochs 1"
FETCH = "--train-size 10 --test-size 5"
SCRIPTS = [
    pytest.param("fetch_data.py", f"--source archive --path {{truncated}} --no-verify-checksum {FETCH}",
                 "truncated.tar.gz is a corrupt archive", id="truncated-archive"),
    pytest.param("fetch_data.py", f"--source archive --path {{random}} --no-verify-checksum {FETCH}",
                 "random.tar.gz is a corrupt archive", id="random-bytes-archive"),
    pytest.param("fetch_data.py", f"--dataset cifar100 --source archive --path {{archive}} --no-verify-checksum "
                 f"{FETCH}", "it looks like CIFAR-10: set data.dataset: cifar10", id="cifar10-archive-as-cifar100"),
    pytest.param("fetch_data.py", f"--source npz --path {{scaled}} {FETCH}",
                 "scaled.npz: x_train has dtype float32 (values ", id="npz-images-scaled-to-0-1"),
    pytest.param("fetch_data.py", f"--source npz --path {{nan_images}} {FETCH}",
                 "nan_images.npz: x_test holds 1 NaN/inf values", id="npz-nan-images"),
    pytest.param("fetch_data.py", f"--source npz --path {{wide_pixels}} {FETCH}",
                 "wide_pixels.npz: x_train holds pixel values from 300 to 300, outside 0..255",
                 id="npz-pixels-above-255"),
    pytest.param("fetch_data.py", f"--source npz --path {{channels_first}} {FETCH}",
                 "x_train has shape (10, 3, 32, 32), expected (N, 32, 32, 3) (channels first?",
                 id="npz-channels-first"),
    pytest.param("fetch_data.py", f"--source npz --path {{onehot}} {FETCH}",
                 "onehot.npz: y_train has shape (10, 10): one-hot or per-class scores, not class indices",
                 id="npz-one-hot-labels"),
    pytest.param("fetch_data.py", f"--source npz --path {{float_labels}} {FETCH}",
                 "float_labels.npz: y_train has dtype float64; expected integer class indices 0..9",
                 id="npz-float-labels"),
    pytest.param("fetch_data.py", f"--source npz --path {{name_labels}} {FETCH}",
                 "name_labels.npz: y_test has dtype <U3; expected integer class indices 0..9 (not class names",
                 id="npz-class-name-labels"),
    pytest.param("fetch_data.py", f"--source npz --path {{label_range}} {FETCH}",
                 "label_range.npz: y_train holds labels from 1 to 10, outside 0..9 (10 classes)", id="npz-label-10"),
    pytest.param("fetch_data.py", f"--source npz --path {{negative_labels}} {FETCH}",
                 "negative_labels.npz: y_test holds labels from -1 to 3, outside 0..9", id="npz-negative-label"),
    pytest.param("fetch_data.py", f"--source npz --path {{count_mismatch}} {FETCH}",
                 "count_mismatch.npz: x_train has 10 images but y_train has 9 labels", id="npz-label-count"),
    pytest.param("evaluate.py", "--data {badlabels_data} --model {corrupt} --train-info {train}",
                 "badlabels_data.npz: y_test holds labels from 0 to 12, outside 0..9", id="eval-labels-out-of-range"),
    pytest.param("fetch_data.py", f"--source archive --path {{random}} {FETCH}",
                 "random.tar.gz has sha256", id="wrong-file-fails-checksum"),
    pytest.param("fetch_data.py", f"--source archive --path {{archive}} {FETCH}",
                 "archive.tar.gz has sha256", id="unofficial-archive-fails-checksum"),
    pytest.param("fetch_data.py", f"--source archive --path {{evil}} --no-verify-checksum {FETCH}",
                 "refusing to load 'posix.system'", id="malicious-pickle"),
    pytest.param("fetch_data.py", f"--source archive --path {{extracted}} {FETCH}",
                 "test_batch is missing", id="extracted-folder-lacks-test-batch"),
    pytest.param("fetch_data.py", f"--source npz --path {{nokey}} {FETCH}",
                 "nokey.npz lacks array y_train, x_test, y_test", id="npz-lacks-array"),
    pytest.param("fetch_data.py", f"--source npz --path {{badshape}} {FETCH}",
                 "x_train has shape (4, 28, 28, 3), expected (N, 32, 32, 3)", id="npz-wrong-image-shape"),
    pytest.param("fetch_data.py", f"--source archive {FETCH}", "data.source: archive needs data.path",
                 id="archive-flag-without-path"),
    pytest.param("fetch_data.py", "--source synthetic --train-size 0 --test-size 5",
                 "argument --train-size: 0 is out of range; allowed: an integer >= 1", id="zero-train-size"),
    pytest.param("fetch_data.py", "--source synthetic --train-size 5 --val-size -5 --test-size 5",
                 "argument --val-size: -5 is out of range; allowed: an integer >= 0", id="negative-val-size"),
    pytest.param("fetch_data.py", "--source ftp --train-size 5 --test-size 5",
                 "argument --source: invalid choice: 'ftp'", id="unknown-source-flag"),
    pytest.param("train_teacher.py", f"--no-train-backbone --weights missing/resnet50.h5 {TRAIN}",
                 "the teacher's weights 'missing/resnet50.h5' is not a file", id="weights-file-missing"),
    pytest.param("train_teacher.py", f"--no-train-backbone --weights {{garbage}} {TRAIN}",
                 "cannot load ResNet50 weights from", id="weights-file-not-hdf5"),
    pytest.param("train_teacher.py", f"--architecture resnet5000 {TRAIN}", "unknown architecture 'resnet5000'",
                 id="unknown-teacher-architecture"),
    pytest.param("train_student.py", f'--method kd --settings {{{{"alpha":1.5}}}} --teacher-logits {{short_logits}} {TRAIN}',
                 "--settings for kd: alpha: 1.5 is greater than the maximum of 1", id="alpha-setting-above-1"),
    pytest.param("train_student.py", f'--method kd --settings {{{{"temperature":0}}}} --teacher-logits {{short_logits}} '
                 f"{TRAIN}", "--settings for kd: temperature: 0 is less than the minimum of 0.1",
                 id="temperature-setting-zero"),
    pytest.param("train_student.py", f"--method magic --teacher-logits {{short_logits}} {TRAIN}",
                 "unknown distillation method 'magic'", id="unknown-method-flag"),
    pytest.param("train_student.py", f"--learning-rate fast {TRAIN}",
                 "argument --learning-rate: 'fast' is not a number", id="learning-rate-not-a-number"),
    pytest.param("train_student.py", "--data {data} --upsample 3 --epochs 1",
                 "argument --upsample: 3 is out of range; allowed: 1, 2, 4, 8 or 16", id="upsample-flag-3"),
    pytest.param("train_student.py", "--data missing.npz --epochs 1", "data set missing.npz is missing",
                 id="data-file-missing"),
    pytest.param("train_student.py", f"--method kd --teacher-logits {{short_logits}} {TRAIN}",
                 "has shape (5, 10), expected (64, 10)", id="logits-for-other-data"),
    pytest.param("train_student.py", f"--method kd --teacher-logits {{nan_logits}} {TRAIN}",
                 "nan_logits.npy holds 1 NaN/inf values", id="nan-teacher-logits"),
    pytest.param("train_student.py", f"--teacher-logits {{short_logits}} --teacher-model {{corrupt}} "
                 f"{TRAIN}", "argument --teacher-model: not allowed with argument --teacher-logits",
                 id="two-teachers"),
    pytest.param("teacher_logits.py", "--data {data} --model missing.keras",
                 "model file missing.keras is missing", id="teacher-checkpoint-missing"),
    pytest.param("evaluate.py", "--data {data} --model {corrupt} --train-info {train}",
                 "cannot load model", id="corrupt-checkpoint"),
    pytest.param("evaluate.py", "--data {data} --model {corrupt} --train-info missing.json",
                 "missing.json is missing", id="train-info-missing"),
]


@pytest.mark.parametrize("script, flags, message", SCRIPTS)
def test_bad_script_input_fails_cleanly_and_keeps_earlier_outputs(script, flags, message, files, tmp_path):
    outputs = OUTPUTS[script]
    for name in outputs[1::2]:
        if name not in ("resume", "m"):
            (tmp_path / name).write_text(PREVIOUS)
    result = run_script(script, *flags.format(**files).split(), *outputs, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: " in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for name in outputs[1::2]:
        if name not in ("resume", "m"):
            assert (tmp_path / name).read_text() == PREVIOUS, f"{name} was overwritten or deleted"
    assert not os.path.exists(files["pwned"])  # the malicious pickle never ran its code
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary leftovers


def test_a_failing_later_step_keeps_the_earlier_outputs(files, tmp_path):
    # an HDF5 signature and nothing behind it: past the preflight's content check, so it fails in train_teacher
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    bad_weights = tmp_path / "weights.yaml"
    bad_weights.write_text(f"teachers:\n  frozen:\n    weights: {truncated}\n")
    target = "results/tiny/models/teacher-frozen/model.keras"
    result = run_snakemake(tmp_path, target, "--cores", "1", "--configfile", TINY, bad_weights)
    assert result.returncode != 0
    log = (tmp_path / "results" / "tiny" / "logs" / "train" / "teacher-frozen.log").read_text()
    assert "error: cannot load ResNet50 weights from" in log and "Traceback" not in log
    assert not (tmp_path / "results" / "tiny" / "models" / "teacher-frozen" / "model.keras").exists()
    data = tmp_path / "results" / "tiny" / "data" / "dataset.npz"
    assert data.exists()
    # the data set is complete and current: a rerun would only retry the teacher
    dry = run_snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", TINY, bad_weights)
    assert dry.returncode == 0 and "fetch_data" not in dry.stdout and "train_teacher" in dry.stdout


# ------------------------------------------------------------------------------- the config's data section
# (data section, words the error must contain), checked by kdbench.datasets.config_errors
DATA_SECTIONS = [
    pytest.param({"dataset": "mnist", "source": "download"}, "data.dataset is 'mnist'; use one of cifar10, cifar100",
                 id="unknown-data-set"),
    pytest.param({"dataset": "cifar100", "source": "archive"},
                 "data.path: missing; data.source: archive needs data.path pointing at cifar-100-python.tar.gz",
                 id="cifar100-archive-without-path"),
    pytest.param({"dataset": "cifar100", "source": "download", "train_size": 45000, "val_size": 6000},
                 "45000 + 6000 = 51000 is more than the 50000 training images in CIFAR-100", id="cifar100-too-many"),
    pytest.param({"dataset": "cifar100", "source": "download", "test_size": 10001},
                 "data.test_size: 10001 is more than the 10000 test images in CIFAR-100", id="cifar100-test-size"),
    pytest.param({"source": "npz", "path": "{data}", "train_size": 60, "val_size": 5},
                 "60 + 5 = 65 is more than the 64 training images in", id="npz-header-sizes"),
    pytest.param({"source": "synthetic", "path": "{archive}"},
                 "is set but data.source is synthetic, which ignores it", id="path-ignored"),
    pytest.param({"source": "npz", "path": "{garbage}"}, "is not a readable .npz", id="npz-garbage"),
    pytest.param({"source": "archive", "path": "~/kdbench-surely-missing/cifar-10-python.tar.gz"},
                 "data.path: '~/kdbench-surely-missing/cifar-10-python.tar.gz' does not exist", id="missing-home-path"),
    pytest.param({"dataset": "cifar100", "source": "archive", "path": "{extracted}"},
                 "holds CIFAR-10 (cifar-10-batches-py), but data.dataset is cifar100; set data.dataset: cifar10",
                 id="cifar10-folder-for-cifar100"),
    pytest.param({"source": "archive", "path": "{extracted}"},
                 "is not an extracted cifar-10-python.tar.gz: expected cifar-10-batches-py/ with data_batch_1",
                 id="incomplete-folder"),
]


@pytest.mark.parametrize("section, message", DATA_SECTIONS)
def test_bad_data_section_is_refused_before_any_job(section, message, files):
    from kdbench.datasets import config_errors as data_errors

    data = {"source": "download", "train_size": 100, "val_size": 0, "test_size": 10, **section}
    if isinstance(data.get("path"), str):
        data["path"] = data["path"].format(**files)
    errors = data_errors(data)
    assert any(message in line for line in errors), errors
    assert all("\n" not in line for line in errors)


def test_good_data_sections_pass(files, tmp_path, monkeypatch):
    from kdbench.datasets import config_errors as data_errors

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(Path(files["archive"]).read_bytes())
    for section in ({"source": "archive", "path": "~/cifar-10-python.tar.gz"}, {"source": "npz", "path": files["data"]},
                    {"dataset": "cifar100", "source": "synthetic"}, {"dataset": "cifar100", "source": "download"}):
        assert data_errors({"train_size": 50, "val_size": 10, "test_size": 10, **section}) == [], section


# ------------------------------------------------------------------------------------------- a full disk
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_while_renaming_names_the_output(tmp_path, monkeypatch):
    from kdbench.io import write_json

    monkeypatch.setattr(os, "replace", _enospc)
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(KdbenchError) as err:
        write_json(target, {"a": 1})
    assert str(err.value).startswith(f"no space left writing {target}")
    assert not target.exists() and list(target.parent.iterdir()) == []  # the partial temporary file is gone


def test_full_disk_while_writing_a_data_set_is_one_error_line(tmp_path, monkeypatch, capsys):
    from kdbench import cli

    target = tmp_path / "data.npz"
    monkeypatch.setattr(np, "savez", _enospc)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(lambda: save_dataset(target, make_synthetic(8, 4), get("cifar10").class_names))
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert stderr.startswith(f"error: no space left writing {target}") and stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("error", [
    pytest.param(OSError(errno.ENOSPC, "No space left on device", "/results/.resume/x/history.csv"), id="oserror"),
    pytest.param(RuntimeError("Unable to synchronously create file (file write failed: errno = 28, "
                              "error message = 'No space left on device')"), id="h5py-wrapped"),
])
def test_full_disk_outside_atomic_writes_is_one_error_line(error, capsys):
    from kdbench import cli

    def main():
        raise error

    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and stderr.startswith("error: no space left writing ")
    assert "Traceback" not in stderr and stderr.count("\n") == 1
    if isinstance(error, OSError):
        assert stderr.startswith(f"error: no space left writing {error.filename}")


def test_other_os_errors_are_not_called_a_full_disk():
    from kdbench import cli

    def main():
        raise PermissionError(errno.EACCES, "Permission denied", "/results/x")

    with pytest.raises(PermissionError):
        cli.run(main)


# ------------------------------------------------------------------------------- damaged result files
METRICS = {"model": "student-baseline-s0", "train": {"epochs": 1},
           "test": {"accuracy": 0.5, "loss": 1.2, "f1_macro": 0.4, "n_test": 40}}
RESULT_FILES = [
    pytest.param("read_metrics", "metrics.json", "[1, 2]\n", "holds a JSON list, not an object", id="metrics-list"),
    pytest.param("read_metrics", "metrics.json", '{"model": "m", "train": {}', "is not valid JSON", id="metrics-cut"),
    pytest.param("read_metrics", "metrics.json", json.dumps({**METRICS, "test": {"loss": 1.0}}),
                 "has no finite number for test.accuracy", id="metrics-no-accuracy"),
    pytest.param("read_metrics", "metrics.json", json.dumps({**METRICS, "test": {"accuracy": "0.9", "loss": 1}}),
                 "has no finite number for test.accuracy", id="metrics-accuracy-string"),
    pytest.param("read_metrics", "metrics.json", json.dumps({**METRICS, "test": {"accuracy": 93.1, "loss": 1}}),
                 "has test.accuracy 93.1, outside 0..1", id="metrics-accuracy-percent"),
    pytest.param("read_metrics", "metrics.json", json.dumps({k: v for k, v in METRICS.items() if k != "train"}),
                 "has no training record ('train')", id="metrics-no-train"),
    pytest.param("read_metrics", "metrics.json", json.dumps({**METRICS, "val": {"accuracy": 0.5, "loss": None}}),
                 "has no finite number for val.loss", id="metrics-val-loss-null"),
    pytest.param("read_history", "history.csv", "", "is empty", id="history-empty"),
    pytest.param("read_history", "history.csv", "epoch,loss\n", "has no epochs", id="history-header-only"),
    pytest.param("read_history", "history.csv", "epoch,accuracy\n1,0.5\n", "has no loss column",
                 id="history-no-loss"),
    pytest.param("read_history", "history.csv", "epoch,loss\n1,abc\n", "has a loss that is not a finite number",
                 id="history-garbage-loss"),
    pytest.param("read_history", "history.csv", "epoch,loss\nfirst,0.5\n", "has an epoch that is not a whole number",
                 id="history-garbage-epoch"),
    pytest.param("read_predictions", "test_predictions.csv", "image,label,prediction\n0,3.5,2\n",
                 "has a label that is not a whole number", id="predictions-float-label"),
    pytest.param("read_predictions", "test_predictions.csv", "image,label\n0,3\n", "has no prediction column",
                 id="predictions-no-prediction"),
    pytest.param("read_predictions", "test_predictions.csv", "\x00\x01garbage\x02\n\x03,\x04\n\x05\n",
                 "has no label or prediction column", id="predictions-garbage"),
    pytest.param("read_predictions", "test_predictions.csv", "image,label,prediction\n0,3,-1\n",
                 "has prediction values from -1 to -1, outside 0 or more", id="predictions-negative"),
]


@pytest.mark.parametrize("reader, name, text, problem", RESULT_FILES)
def test_damaged_result_file_names_the_file_and_the_step_to_rerun(reader, name, text, problem, tmp_path):
    from kdbench import io

    path = tmp_path / "results" / "eval" / "student-baseline-s0" / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(KdbenchError) as err:
        getattr(io, reader)(path)
    message = str(err.value)
    step = "training" if reader == "read_history" else "evaluate"
    assert message.startswith(str(path)) and problem in message, message
    assert f"rerun the {step} step for student-baseline-s0: snakemake --forcerun {path}" in message
    assert "\n" not in message


def test_result_readers_accept_what_the_steps_write(tmp_path):
    from kdbench import io

    (tmp_path / "metrics.json").write_text(json.dumps({**METRICS, "val": {"accuracy": 1.0, "loss": 0.0}}))
    (tmp_path / "history.csv").write_text("epoch,loss,accuracy,epoch_seconds\n1,2.3,0.1,4.5\n2,2.0,0.2,4.4\n")
    (tmp_path / "p.csv").write_text("image,label,prediction\n0,3,3\n1,9,2\n")
    assert io.read_metrics(tmp_path / "metrics.json")["test"]["accuracy"] == 0.5
    assert io.read_history(tmp_path / "history.csv")["epoch"].tolist() == [1, 2]
    assert io.read_predictions(tmp_path / "p.csv", num_classes=10)["prediction"].tolist() == [3, 2]
    with pytest.raises(KdbenchError, match="has label values from 3 to 9, outside 0..4"):
        io.read_predictions(tmp_path / "p.csv", num_classes=5)


# -------------------------------------------------------------------------------- damaged resume state
def _tiny_fit(resume, epochs: int = 2, key=None):
    import keras

    from kdbench import train

    keras.utils.set_random_seed(0)
    x, y = np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return train.fit_resumable(model, train.make_dataset(x, y, 4, shuffle=False), epochs, resume,
                               run_key=key or {"flags": {"lr": 0.01}}, verbose=0)


def _resume_state(resume, weights: bytes | None = b"", metadata: str = '{"epoch": 1, "batch": 0}',
                  run: str = '{"flags": {"lr": 0.01}}', history: str = "epoch,loss\n0,1.0\n"):
    (resume / "backup").mkdir(parents=True)
    (resume / "run.json").write_text(run)
    (resume / "history.csv").write_text(history)
    (resume / "backup" / "training_metadata.json").write_text(metadata)
    if weights is not None:
        (resume / "backup" / "latest.weights.h5").write_bytes(weights)


@pytest.mark.parametrize("state, reason", [
    pytest.param({"weights": b""}, "it cannot be read", id="empty-weights"),
    pytest.param({"weights": b"\x89HDF\r\n\x1a\n" + b"\0" * 40}, "it cannot be read", id="cut-weights"),
    pytest.param({"weights": None}, "it cannot be read", id="no-weights"),
    pytest.param({"metadata": ""}, "it cannot be read", id="empty-metadata"),
    pytest.param({"run": ""}, "run.json cannot be read", id="empty-run-json"),
    pytest.param({"run": "\x00\x00"}, "run.json cannot be read", id="garbage-run-json"),
])
def test_unreadable_resume_state_is_discarded_and_training_starts_over(state, reason, tmp_path, capsys):
    resume = tmp_path / "resume"
    _resume_state(resume, **state)
    history = _tiny_fit(resume)
    assert history["epoch"].tolist() == [1, 2]  # epoch 1 was trained, not skipped or failed on
    out = capsys.readouterr().out
    assert f"discarding the resume state in {resume}: {reason}" in out and "starting over" in out


@pytest.fixture
def interrupted(tmp_path, monkeypatch, capsys):
    """Resume state of a real 3-epoch run stopped (like Ctrl-C) when its second epoch began."""
    from kdbench import train

    resume = tmp_path / "resume"
    original = train.EpochTimer.on_epoch_begin

    def stop_at_second_epoch(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt
        original(self, epoch, logs)

    with monkeypatch.context() as patch:
        patch.setattr(train.EpochTimer, "on_epoch_begin", stop_at_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            _tiny_fit(resume, epochs=3)
    capsys.readouterr()
    return resume


def test_readable_resume_state_is_resumed(interrupted, capsys):
    history = _tiny_fit(interrupted, epochs=3)
    out = capsys.readouterr().out
    assert "resuming from the last finished epoch" in out and "discarding" not in out
    assert "epoch 1/3 started" not in out and "epoch 2/3 started" in out
    assert history["epoch"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("damage", [
    pytest.param(lambda r: (r / "backup" / "latest.weights.h5").write_bytes(
        (r / "backup" / "latest.weights.h5").read_bytes()[:2000]), id="weights-cut-off"),
    pytest.param(lambda r: (r / "history.csv").write_text("epoch,loss\n"), id="history-rows-lost"),
    pytest.param(lambda r: (r / "backup" / "training_metadata.json").write_text('{"epo'), id="metadata-cut-off"),
])
def test_resume_state_cut_off_by_a_full_disk_is_discarded(damage, interrupted, capsys):
    damage(interrupted)
    history = _tiny_fit(interrupted, epochs=3)
    out = capsys.readouterr().out
    assert "discarding the resume state" in out and "epoch 1/3 started" in out
    assert history["epoch"].tolist() == [1, 2, 3]
