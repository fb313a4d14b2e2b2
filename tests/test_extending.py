"""Adding a method or an architecture is one file plus one registry line (docs/extending.md, tested here)."""

import shutil
import subprocess
import sys

import numpy as np
import yaml
from conftest import ROOT

TOY_METHOD = '''"""Toy method for the extension test: cross-entropy plus the mean squared distance between logits."""

NEEDS = "logits"
TERMS = ("hard", "match")
SETTINGS = {"weight": {"default": 0.5, "schema": {"type": "number", "minimum": 0}, "help": "weight of the match"}}


def loss_terms(settings, labels, student_logits, teacher_logits, **features):
    import keras

    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, student_logits)
    match = keras.ops.mean(keras.ops.square(student_logits - keras.ops.cast(teacher_logits, "float32")))
    return {"hard": hard, "match": settings["weight"] * match}
'''

TOY_ARCHITECTURE = '''"""Toy architecture for the extension test: one convolution stage and a linear layer."""

STAGES = {"stage1": "toy_stage1"}
UPSAMPLE = 1


def build(num_classes, upsample, name="toy"):
    import keras
    from keras import layers

    from kdbench.architectures.layers import caffe_and_upsample, image_input

    inputs = image_input()
    x = layers.Conv2D(8, 3, strides=2, activation="relu", name="toy_stage1")(caffe_and_upsample(inputs, upsample))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, dtype="float32", name="logits")(x), name=name)


def stage_model(model, stages):
    import keras

    return keras.Model(model.inputs, [model.output, *(model.get_layer(STAGES[s]).output for s in stages)])
'''


def add_to_registry(init_file, name, module):
    """The one registry line: an import of the module and its entry in the registry dict."""
    text = init_file.read_text()
    package = init_file.parent.name
    text = text.replace(f"from kdbench.{package} import ", f"from kdbench.{package} import {module}, ", 1)
    registry = "METHODS" if package == "methods" else "ARCHITECTURES"
    text = text.replace(f"{registry}: dict[str, ModuleType] = {{\n", f"{registry}: dict[str, ModuleType] = {{\n"
                        f"    \"{name}\": {module},\n", 1)
    init_file.write_text(text)


def test_a_toy_method_and_architecture_run_by_config_alone(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", "__pycache__",
                                                              ".pytest_cache"))
    (repo / "kdbench" / "methods" / "toy.py").write_text(TOY_METHOD)
    add_to_registry(repo / "kdbench" / "methods" / "__init__.py", "toy", "toy")
    (repo / "kdbench" / "architectures" / "toy_net.py").write_text(TOY_ARCHITECTURE)
    add_to_registry(repo / "kdbench" / "architectures" / "__init__.py", "toy-net", "toy_net")

    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "run_name": "toy", "students": {"resnet18": None, "toy_student": {"architecture": "toy-net", "learning_rate": 1e-3}},
        "distillation": {"methods": {"kd": None, "toy": {"weight": [0.5, 2.0]}}}}))
    workdir = tmp_path / "work"
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory",
                          str(workdir), "-n", "--configfile", str(repo / "presets" / "tiny.yaml"), str(config)],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert dry.stdout.count("rule train_student:") == 1 + 2 * 2  # baseline + 2 teachers x 2 settings
    assert "--method toy" in dry.stdout and "--architecture toy-net" in dry.stdout

    # one tiny training step of the new method on the new architecture, through the real training script
    rng = np.random.default_rng(0)
    data = workdir / "data.npz"
    arrays = {"x_train": rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), "y_train": rng.integers(0, 10, 16),
              "x_val": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), "y_val": rng.integers(0, 10, 8),
              "x_test": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), "y_test": rng.integers(0, 10, 8)}
    np.savez(data, **arrays, class_names=np.array([f"class{i}" for i in range(10)]))
    np.save(workdir / "logits.npy", rng.normal(0, 1, (16, 10)).astype("float32"))
    out = workdir / "models" / "toy"
    train = subprocess.run(
        [sys.executable, str(repo / "scripts" / "train_student.py"), "--architecture", "toy-net", "--method", "toy",
         "--settings", '{"weight": 2.0}', "--teacher-logits", str(workdir / "logits.npy"), "--data", str(data),
         "--upsample", "1", "--epochs", "1", "--batch-size", "16", "--precision", "float32",
         "--resume-dir", str(workdir / "resume"), "--model-out", str(out / "model.keras"),
         "--history-out", str(out / "history.csv"), "--info-out", str(out / "train.json")],
        capture_output=True, text=True, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert train.returncode == 0, train.stderr[-3000:]
    history = (out / "history.csv").read_text()
    assert "match_loss" in history and "hard_loss" in history
