#!/usr/bin/env python
"""Why does the baseline ResNet18 collapse onto one class? kdbench's model against a port of the reference
notebook's subclassed ResNet18, side by side, over seeds.

Every variant of one seed starts from the same initial weights (the notebook port gets kdbench's, mapped
layer by layer; the initial-weight hash is printed) and, except 'kdbench-tfdata', sees the same batch order
(model.fit's own shuffle on NumPy arrays, re-seeded before each fit), so per seed the rows differ only in
the one thing a variant changes:

  kdbench          kdbench's "resnet18" architecture: functional, caffe preprocessing inside the model, ReLU
                   layers, logits, sparse CE from logits
  notebook         the notebook's subclassed ResNet18 (nested block Models, tf.nn.relu, softmax head,
                   categorical CE on probabilities, one-hot labels), written anew here, with a `training`
                   argument on the outer call: it trains as the notebook did under tf.keras 2, whose fit
                   always calls model(x, training=True)
  notebook-keras3  the same port with call(self, inputs) exactly as the notebook writes it; Keras 3's fit
                   then calls model(x) *without* training=True (its TF trainer passes the flag only when
                   call() declares it), so every BatchNormalization runs in inference mode: it never
                   normalises by batch statistics and its moving statistics never move
  kdbench-tfdata   kdbench's model fed by kdbench.train.make_dataset (tf.data shuffle, as the workflow does)
  kdbench-bn0.9    kdbench's model with BatchNormalization(momentum=0.9)
  kdbench-bn0.99   kdbench's model with BatchNormalization(momentum=0.99), Keras's default (the contrast
                   stays measurable once kdbench's own momentum changes)

Each trained model is evaluated three ways: with BatchNorm's moving statistics (what evaluate and the
workflow do), with batch statistics of each test batch of 32 (training-mode BatchNorm), and after
re-estimating the moving statistics from the training images ("precise BN": the exact average of the
batch statistics over one pass). A model that collapses only in the first column has unsettled moving
statistics, not bad weights. (For notebook-keras3, trained without batch statistics, the last two are
not meaningful and are left empty.)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from kdbench import architectures  # noqa: E402
from kdbench.architectures.layers import upsampling_steps  # noqa: E402
from kdbench import stats  # noqa: E402
from kdbench import train as ktrain  # noqa: E402

NUM_CLASSES = 10
VARIANTS = ["kdbench", "notebook", "notebook-keras3", "kdbench-tfdata", "kdbench-bn0.9", "kdbench-bn0.99"]


class NotebookBlock(keras.Model):
    """The notebook's residual block: a nested Model, plain tf.nn.relu calls, optional 1x1/2 projection."""

    def __init__(self, channels: int, down_sample: bool = False, momentum: float = 0.99):
        super().__init__()
        self.down_sample = down_sample
        self.conv_1 = layers.Conv2D(channels, 3, strides=2 if down_sample else 1, padding="same",
                                    kernel_initializer="he_normal")
        self.bn_1 = layers.BatchNormalization(momentum=momentum)
        self.conv_2 = layers.Conv2D(channels, 3, strides=1, padding="same", kernel_initializer="he_normal")
        self.bn_2 = layers.BatchNormalization(momentum=momentum)
        self.merge = layers.Add()
        if down_sample:
            self.res_conv = layers.Conv2D(channels, 1, strides=2, padding="same", kernel_initializer="he_normal")
            self.res_bn = layers.BatchNormalization(momentum=momentum)

    def call(self, inputs):
        x = tf.nn.relu(self.bn_1(self.conv_1(inputs)))
        x = self.bn_2(self.conv_2(x))
        shortcut = self.res_bn(self.res_conv(inputs)) if self.down_sample else inputs
        return tf.nn.relu(self.merge([x, shortcut]))

    def weighted_layers(self) -> list:
        extra = [self.res_conv, self.res_bn] if self.down_sample else []
        return [self.conv_1, self.bn_1, self.conv_2, self.bn_2, *extra]


class NotebookResNet18(keras.Model):
    """The notebook's subclassed ResNet18 (upsampling, 7x7/2 stem, 2x2/2 max-pool, 8 blocks, softmax head)."""

    def __init__(self, num_classes: int = NUM_CLASSES, upsample_steps: int = 3, momentum: float = 0.99):
        super().__init__()
        self.upsamplers = [layers.UpSampling2D() for _ in range(upsample_steps)]
        self.conv_1 = layers.Conv2D(64, 7, strides=2, padding="same", kernel_initializer="he_normal")
        self.init_bn = layers.BatchNormalization(momentum=momentum)
        self.pool = layers.MaxPool2D(pool_size=2, strides=2, padding="same")
        self.blocks = [NotebookBlock(channels, down_sample=(stage > 0 and index == 0), momentum=momentum)
                       for stage, channels in enumerate((64, 128, 256, 512)) for index in range(2)]
        self.avg_pool = layers.GlobalAveragePooling2D()
        self.flat = layers.Flatten()
        self.fc = layers.Dense(num_classes)  # + softmax in call(): Dense(activation="softmax"), logits reachable
        self.output_logits = False  # set True to read logits (scoring); training sees the softmax head

    def call(self, inputs):
        x = inputs
        for upsample in self.upsamplers:
            x = upsample(x)
        x = self.pool(tf.nn.relu(self.init_bn(self.conv_1(x))))
        for block in self.blocks:
            x = block(x)
        logits = self.fc(self.flat(self.avg_pool(x)))
        return logits if self.output_logits else keras.ops.softmax(logits)

    def weighted_layers(self) -> list:
        return [self.conv_1, self.init_bn, *[l for b in self.blocks for l in b.weighted_layers()], self.fc]


class NotebookResNet18TrainingArg(NotebookResNet18):
    """The port with a `training` argument, so Keras 3's fit passes training=True (nested layers inherit it)."""

    def call(self, inputs, training=None):
        return super().call(inputs)


def kdbench_weighted_layers(model: keras.Model) -> list:
    """kdbench's layers with weights, in the order NotebookResNet18.weighted_layers lists their twins."""
    names = ["stem_conv", "stem_bn"]
    for stage in range(1, 5):
        for block in (1, 2):
            prefix = f"stage{stage}_block{block}"
            names += [f"{prefix}_conv1", f"{prefix}_bn1", f"{prefix}_conv2", f"{prefix}_bn2"]
            if stage > 1 and block == 1:
                names += [f"{prefix}_proj", f"{prefix}_proj_bn"]
    return [model.get_layer(name) for name in names + ["logits"]]


def with_momentum(model: keras.Model, momentum: float) -> keras.Model:
    """A copy of a functional model whose BatchNormalization layers use `momentum` (weights copied)."""
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, layers.BatchNormalization):
            config["momentum"] = momentum
        return layer.__class__.from_config(config)
    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def weights_hash(layer_list: list) -> str:
    digest = hashlib.sha256()
    for layer in layer_list:
        for weight in layer.get_weights():
            digest.update(np.ascontiguousarray(weight, np.float32).tobytes())
    return digest.hexdigest()[:12]


def batch_norms(layer) -> list:
    """Every BatchNormalization layer inside `layer`, nested Models included, each once."""
    found = [layer] if isinstance(layer, layers.BatchNormalization) else []
    for child in getattr(layer, "layers", []):
        found += [bn for bn in batch_norms(child) if all(bn is not seen for seen in found)]
    return found


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def logits_of(model, x: np.ndarray, batch_size: int, training: bool = False) -> np.ndarray:
    """Logits batch by batch (eager calls); training=True normalises each batch by its own statistics."""
    if isinstance(model, NotebookResNet18):
        model.output_logits = True
    try:
        return np.concatenate([np.asarray(model(x[i:i + batch_size], training=training))
                               for i in range(0, len(x), batch_size)])
    finally:
        if isinstance(model, NotebookResNet18):
            model.output_logits = False


def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, share of the most-predicted class and crossentropy (from logits, as Keras computes it)."""
    logp = log_softmax(logits)
    predicted = logp.argmax(axis=1)
    return {"accuracy": float(np.mean(predicted == labels)),
            "top_share": float(np.bincount(predicted, minlength=NUM_CLASSES).max() / len(predicted)),
            "loss": float(-np.mean(logp[np.arange(len(labels)), labels])), "predictions": predicted}


def precise_batchnorm(model, x: np.ndarray, batch_size: int = 100) -> None:
    """Replace every moving mean/variance by the exact average of the batch statistics over one pass of x."""
    norms = batch_norms(model)
    saved = [bn.momentum for bn in norms]
    for k, start in enumerate(range(0, len(x), batch_size)):
        for bn in norms:
            bn.momentum = k / (k + 1)  # cumulative average: the first batch overwrites the old value
        logits_of(model, x[start:start + batch_size], batch_size, training=True)
    for bn, momentum in zip(norms, saved):
        bn.momentum = momentum


def build(variant: str, init_model: keras.Model, upsample_steps: int):
    """The variant's model, holding init_model's initial weights; returns (model, weighted layers, softmax?)."""
    if variant.startswith("notebook"):
        model = (NotebookResNet18 if variant == "notebook-keras3" else NotebookResNet18TrainingArg)(
            NUM_CLASSES, upsample_steps)
        model(np.zeros((1, 32, 32, 3), np.float32))  # creates the weights (inference mode: no BN update)
        for mine, theirs in zip(model.weighted_layers(), kdbench_weighted_layers(init_model)):
            mine.set_weights(theirs.get_weights())
        return model, model.weighted_layers(), True
    if variant.startswith("kdbench-bn"):
        init_model = with_momentum(init_model, float(variant.removeprefix("kdbench-bn")))
    return init_model, kdbench_weighted_layers(init_model), False


def run_one(variant: str, seed: int, arrays: dict, args) -> dict:
    keras.utils.set_random_seed(seed)
    init_model = architectures.build("resnet18", NUM_CLASSES, args.upsample)
    model, weighted, softmax_head = build(variant, init_model, upsampling_steps(args.upsample))
    init_hash = weights_hash(weighted)
    # kdbench's model preprocesses inside; the notebook applies preprocess_input to the arrays beforehand
    images = "preprocessed" if softmax_head else "raw"
    x_train, x_test = arrays[f"x_train_{images}"], arrays[f"x_test_{images}"]
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if softmax_head:
        loss, targets = keras.losses.CategoricalCrossentropy(), keras.utils.to_categorical(y_train, NUM_CLASSES)
    else:
        loss, targets = keras.losses.SparseCategoricalCrossentropy(from_logits=True), y_train
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
    keras.utils.set_random_seed(seed)  # the same batch order for every variant of this seed
    start = time.perf_counter()
    if variant == "kdbench-tfdata":
        dataset = ktrain.make_dataset(x_train, targets, args.batch_size, shuffle=True, seed=seed)
        history = model.fit(dataset, epochs=args.epochs, verbose=0)
    else:
        history = model.fit(x_train, targets, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                            verbose=0)
    seconds = time.perf_counter() - start
    moving = scores(logits_of(model, x_test, 100), y_test)
    train_eval = scores(logits_of(model, x_train, 100), y_train)
    if variant == "notebook-keras3":  # trained without batch statistics: batch-stat evaluation means nothing
        batch_stat = precise = {"accuracy": np.nan, "top_share": np.nan, "loss": np.nan}
    else:
        batch_stat = scores(logits_of(model, x_test, args.batch_size, training=True), y_test)
        precise_batchnorm(model, x_train)
        precise = scores(logits_of(model, x_test, 100), y_test)
    warnings = stats.degenerate_warnings(moving["predictions"], moving["loss"], history.history["loss"][-1],
                                         NUM_CLASSES, train_eval["loss"])
    return {"variant": variant, "seed": seed, "init": init_hash,
            "test_acc": 100 * moving["accuracy"], "top_class": 100 * moving["top_share"],
            "test_loss": moving["loss"], "train_acc_fit": 100 * history.history["accuracy"][-1],
            "train_loss_fit": history.history["loss"][-1], "train_acc_eval": 100 * train_eval["accuracy"],
            "train_loss_eval": train_eval["loss"], "acc_batchstat_bn": 100 * batch_stat["accuracy"],
            "top_batchstat_bn": 100 * batch_stat["top_share"], "acc_precise_bn": 100 * precise["accuracy"],
            "top_precise_bn": 100 * precise["top_share"], "loss_precise_bn": precise["loss"],
            "train_s": seconds, "warnings": len(warnings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--train-size", type=int, default=1000, help="first N training images (default 1000)")
    parser.add_argument("--test-size", type=int, default=500, help="first N test images (default 500)")
    parser.add_argument("--upsample", type=int, default=2, help="upsampling factor, a power of two (default 2: 64 px)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (default 2)")
    parser.add_argument("--csv", help="also write the per-run table here")
    parser.add_argument("--summarize", metavar="CSV", nargs="+",
                        help="train nothing: print the tables of earlier runs from their --csv files")
    args = parser.parse_args()
    if args.summarize:
        print_summary(pd.concat([pd.read_csv(path, dtype={"init": str}) for path in args.summarize]))
        return

    keras.mixed_precision.set_global_policy("float32")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(args.threads, 2))
    tf.config.experimental.enable_op_determinism()
    with np.load(args.data) as npz:
        arrays = {"x_train_raw": npz["x_train"][:args.train_size].astype(np.float32),
                  "y_train": np.asarray(npz["y_train"][:args.train_size]).reshape(-1).astype(np.int64),
                  "x_test_raw": npz["x_test"][:args.test_size].astype(np.float32),
                  "y_test": np.asarray(npz["y_test"][:args.test_size]).reshape(-1).astype(np.int64)}
    for split in ("train", "test"):  # the notebook's preprocessing: caffe (RGB -> BGR, ImageNet mean subtracted)
        raw = arrays[f"x_{split}_raw"]
        arrays[f"x_{split}_preprocessed"] = keras.applications.resnet50.preprocess_input(raw.copy())

    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            row = run_one(variant, seed, arrays, args)
            rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
    runs = pd.DataFrame(rows)
    if args.csv:
        runs.to_csv(args.csv, index=False)
    print(f"\n## Collapse benchmark\n\n{ktrain.device_description()}, {args.threads} threads; data {args.data} "
          f"(first {args.train_size} train / {args.test_size} test images), {32 * args.upsample} px, "
          f"{args.epochs} epochs, Adam 1e-3, batch {args.batch_size}, float32, seeds {args.seeds}\n")
    print_summary(runs)


def print_summary(runs: pd.DataFrame) -> None:
    """The per-run table, the per-variant summary, and each variant paired by seed against kdbench."""
    runs = runs.copy()
    if "warnings" not in runs:
        runs["warnings"] = np.nan
    missing = runs["warnings"].isna()  # rows written before warnings were recorded: rebuild from the top share
    if missing.any():
        runs.loc[missing, "warnings"] = [len(stats.degenerate_warnings(
            _top_share_predictions(row.top_class), row.test_loss, row.train_loss_fit, NUM_CLASSES,
            row.train_loss_eval)) for row in runs[missing].itertuples()]
    runs["warnings"] = runs["warnings"].astype(int)
    print(runs.to_markdown(index=False, floatfmt=".1f"))
    collapsed = lambda share: int(np.sum(share > 40))  # noqa: E731
    summary = runs.groupby("variant", sort=False).agg(
        test_acc=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        collapsed=("top_class", collapsed), warned=("warnings", lambda w: int(np.sum(w > 0))),
        test_loss=("test_loss", "median"), train_acc_fit=("train_acc_fit", "mean"),
        train_acc_eval=("train_acc_eval", "mean"), acc_batchstat_bn=("acc_batchstat_bn", "mean"),
        acc_precise_bn=("acc_precise_bn", "mean"), acc_precise_bn_std=("acc_precise_bn", "std"),
        runs=("seed", "count"))
    print("\nPer variant (means over seeds; collapsed = runs whose most-predicted class takes > 40 % of the "
          "test images; warned = runs with any degenerate_warnings; test_loss is the median):\n")
    print(summary.to_markdown(floatfmt=".2f"))
    paired = runs.pivot_table(index="seed", columns="variant", values="test_acc")
    if "kdbench" in paired:
        print("\nEach variant against kdbench, paired by seed (same initial weights; same batches except "
              "kdbench-tfdata):")
        for variant in paired.columns.drop("kdbench"):
            both = paired[["kdbench", variant]].dropna()
            if len(both) >= 2:
                comparison = stats.paired_seed_comparison((both[variant] / 100).tolist(),
                                                          (both["kdbench"] / 100).tolist())
                print(f"- {variant} - kdbench: {stats.describe(comparison)}")
            elif len(both) == 1:
                gap = float(both[variant].iloc[0] - both["kdbench"].iloc[0])
                print(f"- {variant} - kdbench (one seed): {gap:+.2f} points")


def _top_share_predictions(top_share_percent: float, n: int = 1000) -> np.ndarray:
    """Predictions with the recorded share on class 0 and the rest spread evenly (enough for the share rule)."""
    top = int(round(n * top_share_percent / 100))
    rest = np.arange(n - top) % (NUM_CLASSES - 1) + 1
    return np.concatenate([np.zeros(top, int), rest])

if __name__ == "__main__":
    main()
