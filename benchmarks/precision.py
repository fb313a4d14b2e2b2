#!/usr/bin/env python
"""Is mixed_bfloat16 faster than float32 at equal accuracy? Train the baseline student both ways, over seeds.

Runs the workflow's baseline targets (training and evaluation) of the preset's first student on one data
slice, once per precision and seed, in one run. Prints each run's training time and test accuracy, then per
precision the mean and standard deviation over seeds, and the training-time ratio. Accuracy differences are judged
against the seed-to-seed spread measured here.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import ROOT, merge, results_dir, run_workflow, scratch_folder, with_teacher_weights  # noqa: E402

from kdbench import cli  # noqa: E402
from kdbench.runs import expand  # noqa: E402

PRECISIONS = ["float32", "mixed_bfloat16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3)")
    parser.add_argument("--preset", default=str(ROOT / "presets" / "quick.yaml"),
                        help="sizes, resolution and epochs (default: the quick preset)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count())
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder, deleted)")
    args = parser.parse_args()

    config = merge(yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load(Path(args.preset).read_text()))
    config = merge(config, {"data": {"source": "npz", "path": str(Path(args.data).resolve())},
                            "threads": args.cores, "seeds": args.seeds})
    config = with_teacher_weights(config, None)  # no teacher is trained; the config must still be valid offline
    table = expand(config)
    baselines = table[table["role"] == "baseline"]
    student = baselines["student"].iloc[0]  # the preset's first student (the seed has one)
    baselines = baselines[baselines["student"] == student]
    targets = [str(results_dir(Path("."), config) / "eval" / model / "metrics.json") for model in baselines["id"]]
    rows = []
    with scratch_folder(args.workdir, "precision") as workdir:
        for precision in PRECISIONS:
            folder = workdir / precision
            run_workflow(folder, merge(config, {"train": {"precision": precision}}), targets, args.cores)
            results = results_dir(folder, config)
            for _, run in baselines.iterrows():
                info = json.loads((results / "models" / run["id"] / "train.json").read_text())
                metrics = json.loads((results / "eval" / run["id"] / "metrics.json").read_text())
                rows.append({"precision": precision, "seed": run["seed"], "train_s": info["train_seconds"],
                             "test_accuracy_%": 100 * metrics["test"]["accuracy"]})

    runs = pd.DataFrame(rows)
    print(f"\n## kdbench precision benchmark\n\n{info['device']}, {args.cores} threads; preset {args.preset}, "
          f"data {args.data}, baseline {student} ({baselines['architecture'].iloc[0]}, "
          f"{32 * baselines['upsample'].iloc[0]} px), seeds {args.seeds}\n")
    print(runs.to_markdown(index=False, floatfmt=".1f"))
    summary = runs.groupby("precision").agg(train_s=("train_s", "mean"), accuracy=("test_accuracy_%", "mean"),
                                            accuracy_std=("test_accuracy_%", "std"))
    print("\n" + summary.to_markdown(floatfmt=".2f"))
    fp32, bf16 = summary.loc["float32"], summary.loc["mixed_bfloat16"]
    print(f"\nmixed_bfloat16 trains {fp32['train_s'] / bf16['train_s']:.2f}x as fast as float32; mean test "
          f"accuracy differs by {bf16['accuracy'] - fp32['accuracy']:+.2f} points (seed-to-seed std: float32 "
          f"{fp32['accuracy_std']:.2f}, mixed_bfloat16 {bf16['accuracy_std']:.2f}).")


if __name__ == "__main__":
    cli.run(main)
