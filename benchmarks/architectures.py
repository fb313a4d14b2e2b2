#!/usr/bin/env python
"""Student architectures side by side: time per epoch and baseline test accuracy, in one workflow run.

Runs the real workflow once, on one data slice, with no teacher and no distillation method, so that only the
baselines train: one student entry per architecture, each trained from scratch once per seed and evaluated.
By default it compares the reference's resnet18 at its x8 upsampling (256 px) with resnet18-cifar at its
native 32 px, at the quick preset's size (4,000 train / 1,000 validation / 1,000 test images, 3 epochs).
Jobs run one at a time with every core, so their times compare.

Prints, per architecture: input size, GFLOPs per image (evaluation's count, a multiply-add = 2), seconds
per training epoch (mean over epochs and seeds, from each run's history.csv) and its ratio to the first
architecture, and test accuracy mean +- std over seeds (from metrics.json); then one row per run.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import ROOT, merge, npz_slice, results_dir, run_workflow, scratch_folder  # noqa: E402

from kdbench import architectures, cli  # noqa: E402
from kdbench.runs import expand  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cifar10-seed-subset.npz"
STUDENTS = ["resnet18", "resnet18-cifar"]
STUDENT_ARCHITECTURES = [name for name, module in architectures.ARCHITECTURES.items()
                         if not getattr(module, "TEACHER", False)]


def student_name(architecture: str) -> str:
    """A config name for the student of `architecture` (config names take no hyphens)."""
    return architecture.replace("-", "_")


def benchmark_config(args) -> dict:
    """config.yaml with the slice, schedule and one student per architecture; no teacher, no method."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    learning_rate = next(iter(base["students"].values()))["learning_rate"]
    # the file is merged over config.yaml by Snakemake too, so its own students are switched off by name
    students = {name: None for name in base["students"]}
    students.update({student_name(a): {"architecture": a, "learning_rate": learning_rate} for a in args.students})
    return merge(base, {
        "run_name": "architectures",
        "description": "student architectures side by side (benchmarks/architectures.py)",
        "data": npz_slice(args),
        "model": {"upsample": args.upsample},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size},
        "teachers": {name: None for name in base["teachers"]},
        "students": students,
        "distillation": {"methods": {name: None for name in base["distillation"]["methods"]}},
        "evaluation": {"throughput_batch": args.throughput_batch},
        "seeds": args.seeds, "threads": args.cores})


def read_runs(results: Path, baselines: pd.DataFrame) -> pd.DataFrame:
    """One row per baseline run: seconds per epoch (all epochs; after the first), test accuracy, FLOPs."""
    rows = []
    for _, run in baselines.iterrows():
        history = pd.read_csv(results / "models" / run["id"] / "history.csv")
        metrics = json.loads((results / "eval" / run["id"] / "metrics.json").read_text())
        info = json.loads((results / "models" / run["id"] / "train.json").read_text())
        seconds = history["epoch_seconds"]
        rows.append({"architecture": run["architecture"], "seed": int(run["seed"]), "px": 32 * int(run["upsample"]),
                     "gflops": metrics["cost"]["flops_per_image"] / 1e9, "epochs": len(seconds),
                     "s_per_epoch": float(seconds.mean()),
                     "s_per_later_epoch": float(seconds.iloc[1:].mean()) if len(seconds) > 1 else float("nan"),
                     "test_accuracy": 100 * metrics["test"]["accuracy"],
                     "val_accuracy": 100 * metrics["val"]["accuracy"] if "val" in metrics else None,
                     "precision": info["precision"], "device": info["device"]})
    return pd.DataFrame(rows)


def summarise(measured: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per architecture (in `order`): px, GFLOPs, s/epoch mean and its ratio to the first, accuracy mean +- std."""
    table = measured.groupby("architecture", sort=False).agg(
        px=("px", "first"), gflops=("gflops", "first"), seeds=("seed", "count"),
        s_per_epoch=("s_per_epoch", "mean"), s_per_later_epoch=("s_per_later_epoch", "mean"),
        accuracy=("test_accuracy", "mean"), accuracy_std=("test_accuracy", "std")).reindex(order)
    table["ratio"] = table["s_per_epoch"] / table["s_per_epoch"].iloc[0]
    table["later_ratio"] = table["s_per_later_epoch"] / table["s_per_later_epoch"].iloc[0]
    return table


def print_report(args, measured: pd.DataFrame, table: pd.DataFrame, load: dict) -> None:
    first = table.index[0]
    print(f"\n## kdbench student architectures\n\n{measured['device'].iloc[0]}, {args.cores} threads, precision "
          f"{', '.join(sorted(measured['precision'].unique()))}; {args.train_size} train / {args.val_size} "
          f"validation / {args.test_size} test images of {args.data}, {args.epochs} epochs, batch "
          f"{args.batch_size}, seeds {args.seeds}; load average (1 min) {load['start']:.1f} at the start, "
          f"{load['end']:.1f} at the end\n")
    rows = []
    for architecture, row in table.iterrows():
        std = "n/a" if pd.isna(row["accuracy_std"]) else f"{row['accuracy_std']:.2f}"
        out = {"architecture": architecture, "input px": int(row["px"]), "GFLOPs/image": f"{row['gflops']:.3f}",
               "s/epoch": f"{row['s_per_epoch']:.1f}", f"ratio to {first}": f"{row['ratio']:.2f}x",
               "test accuracy (%)": f"{row['accuracy']:.2f} ± {std}", "seeds": int(row["seeds"])}
        if args.epochs > 1:
            out["s/epoch after the first"] = f"{row['s_per_later_epoch']:.1f}"
            out["its ratio"] = f"{row['later_ratio']:.2f}x"
        rows.append(out)
    print(pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True))
    print("\ns/epoch: training seconds per epoch (history.csv epoch_seconds), mean over epochs and seeds; the "
          "first epoch includes tracing and warm-up, which the epochs after it do not. Accuracy: mean ± std over "
          "seeds (std n/a with one seed).\n")
    runs = measured[["architecture", "seed", "px", "s_per_epoch", "test_accuracy", "val_accuracy"]]
    print(runs.rename(columns={"s_per_epoch": "s/epoch", "test_accuracy": "test accuracy (%)",
                               "val_accuracy": "validation accuracy (%)"}).to_markdown(index=False, floatfmt=".2f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA),
                        help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3); default %(default)s")
    parser.add_argument("--students", nargs="+", choices=STUDENT_ARCHITECTURES, default=STUDENTS,
                        help="architectures to compare, the first being the reference of the ratios "
                             "(default: %(default)s)")
    parser.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=cli.positive_int, default=4000)
    parser.add_argument("--val-size", type=cli.non_negative_int, default=1000)
    parser.add_argument("--test-size", type=cli.positive_int, default=1000)
    parser.add_argument("--epochs", type=cli.positive_int, default=3)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--upsample", type=cli.power_of_two, default=8,
                        help="model.upsample, used by architectures that follow it (resnet18: 8 is the "
                             "reference's 256 px); resnet18-cifar (32 px) and mobilenetv2 (64 px) keep their own")
    parser.add_argument("--throughput-batch", type=cli.positive_int, default=64,
                        help="evaluation's throughput batch (the quick preset's 64)")
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count(),
                        help="snakemake --cores and TensorFlow threads per job (jobs run one at a time)")
    parser.add_argument("--workdir", help="keep the run here (default: a temporary folder, deleted)")
    parser.add_argument("--json-out", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if len(set(args.students)) != len(args.students) or len(set(args.seeds)) != len(args.seeds):
        raise cli.KdbenchError("--students and --seeds must not repeat a value")

    config = benchmark_config(args)
    table = expand(config)
    baselines = table[table["role"] == "baseline"]
    results = results_dir(Path("."), config)
    targets = [str(results / "eval" / model / "metrics.json") for model in baselines["id"]]
    load = {"start": os.getloadavg()[0]}
    with scratch_folder(args.workdir, "architectures") as workdir:
        wall = run_workflow(workdir / "run", config, targets, args.cores)
        load["end"] = os.getloadavg()[0]
        measured = read_runs(results_dir(workdir / "run", config), baselines)

    summary = summarise(measured, args.students)
    print_report(args, measured, summary, load)
    print(f"\nWhole workflow run: {wall:.0f} s.")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"settings": vars(args), "load_average": load, "wall_s": wall, "runs": measured.to_dict("records"),
             "summary": summary.reset_index().to_dict("records")}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    cli.run(main)
