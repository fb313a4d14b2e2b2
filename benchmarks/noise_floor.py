#!/usr/bin/env python
"""The noise floor: how far apart two seeds land, under the reference's recipe and under the stable recipe.

Runs the real workflow twice in a scratch folder, on the same data slice, sizes and seeds (quick preset's
size by default: 4,000 train / 1,000 validation / 1,000 test images, 64 px, 3 epochs; seeds 0-4):
  reference  config.yaml's recipe (Adam at a constant learning rate, the last epoch's weights)
  stable     the same with presets/stable.yaml stacked on it (SGD + Nesterov, cosine, EMA, best epoch,
             augmentation with cached soft targets, BatchNorm momentum 0.9)
each with the frozen teacher and, per seed, the baseline student and the student distilled from it with Hinton
KD at config.yaml's alpha and temperature. Per seed the two students start from the same weights and see the
same batches, so their difference is paired.

Prints, per recipe: the teacher's test accuracy; the baseline's and the KD student's test accuracy mean +- std
over seeds; the mean and std of the paired (KD - baseline) differences, the paired t-test, and the minimum
detectable difference at 80% power for this many seeds; the runs the summary warned about as degenerate. Then
one row per run. Targets (issue "signal"): for the stable recipe, baseline std and paired-difference std at
most 1.5 points, at a mean accuracy no lower than the reference recipe's.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import ROOT, merge, npz_slice, results_dir, run_workflow, scratch_folder  # noqa: E402

from kdbench import cli, stats  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cifar10-seed-subset.npz"
TARGET_STD = 1.5  # points: the target for the stable recipe
RECIPES = {"reference": {}, "stable": yaml.safe_load((ROOT / "presets" / "stable.yaml").read_text())}


def benchmark_config(args, recipe: str) -> dict:
    """config.yaml + presets/quick.yaml + the recipe's preset on the real slice, the frozen teacher only, Hinton
    KD only."""
    base = merge(yaml.safe_load((ROOT / "config.yaml").read_text()),
                 yaml.safe_load((ROOT / "presets" / "quick.yaml").read_text()))
    base = merge(base, RECIPES[recipe])  # before the overlay below, which drops a teacher the recipe names
    return merge(base, {
        "run_name": f"noise-{recipe}", "description": "noise floor (benchmarks/noise_floor.py)",
        "data": npz_slice(args),
        "model": {"upsample": args.upsample},
        "train": {"epochs": args.epochs},
        "teachers": {"frozen": {"weights": args.weights}, "finetuned": None},
        "distillation": {"methods": {name: None for name in base["distillation"]["methods"] if name != "kd"}},
        "seeds": args.seeds, "threads": args.cores})


def recipe_rows(results: Path) -> pd.DataFrame:
    """The summary's one row per run (test accuracy in points) and its warnings."""
    table = pd.read_csv(results / "summary.csv")
    table = table[table["aggregate"] == "run"].copy()
    table["test_accuracy"] *= 100
    return table


def summary_warnings(summary: Path) -> list[str]:
    """The lines of the summary's "Warnings" section (degenerate models), if it has one."""
    lines = summary.read_text().splitlines()
    if "## Warnings" not in lines:
        return []
    section = lines[lines.index("## Warnings") + 1:]
    return [line for line in section[:next((i for i, l in enumerate(section) if l.startswith("## ")), None)]
            if line.startswith("- ")]


def measure(table: pd.DataFrame) -> dict:
    """Baseline and KD spread over seeds and the paired (KD - baseline) statistics, in points."""
    teacher = table[table["role"] == "teacher"]
    baseline = table[table["role"] == "baseline"].set_index("seed")["test_accuracy"].sort_index()
    distilled = table[table["role"] == "distilled"].set_index("seed")["test_accuracy"].sort_index()
    paired = stats.paired_seed_comparison(distilled.loc[baseline.index].tolist(), baseline.tolist())
    return {"teacher": float(teacher["test_accuracy"].iloc[0]),
            "baseline_mean": float(baseline.mean()), "baseline_std": float(baseline.std(ddof=1)),
            "kd_mean": float(distilled.mean()), "kd_std": float(distilled.std(ddof=1)),
            "diff_mean": paired["difference"], "diff_std": paired["diff_std"], "ci_low": paired["ci_low"],
            "ci_high": paired["ci_high"], "p_value": paired["p_value"], "mdd": paired["mdd"], "n": paired["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--train-size", type=cli.positive_int, default=4000)
    parser.add_argument("--val-size", type=cli.positive_int, default=1000)
    parser.add_argument("--test-size", type=cli.positive_int, default=1000)
    parser.add_argument("--upsample", type=cli.power_of_two, default=2)
    parser.add_argument("--epochs", type=cli.positive_int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--weights", default=None, help="teacher backbone: imagenet or the .h5 path; default random")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count(),
                        help="snakemake --cores and TensorFlow threads per job (jobs run one at a time)")
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder, deleted)")
    parser.add_argument("--json-out", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("a noise floor needs at least 2 seeds")
    if not Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file (the real CIFAR-10 slice, or any .npz of that layout)")

    from kdbench.train import device_description

    measured, per_run, wall, warnings = {}, [], {}, {}
    with scratch_folder(args.workdir, "noise-floor") as workdir:
        for recipe in args.recipes:
            config = benchmark_config(args, recipe)
            wall[recipe] = run_workflow(workdir / recipe, config, [], args.cores)
            table = recipe_rows(results_dir(workdir / recipe, config))
            measured[recipe] = measure(table)
            per_run.append(table.assign(recipe=recipe))
            warnings[recipe] = summary_warnings(results_dir(workdir / recipe, config) / "summary.md")
    runs_table = pd.concat(per_run)
    print_report(args, measured, runs_table, wall, warnings, device_description())
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"settings": vars(args), "measured": measured, "wall_s": wall,
                                                   "warnings": warnings,
                                                   "runs": runs_table.to_dict("records")}, indent=2,
                                                  default=str) + "\n")


def print_report(args, measured: dict, runs_table: pd.DataFrame, wall: dict, warnings: dict, device: str) -> None:
    print(f"\n## Noise floor\n\n{device}, {args.cores} threads; {args.train_size} train / {args.val_size} "
          f"validation / {args.test_size} test images of {args.data}, {32 * args.upsample} px, {args.epochs} "
          f"epochs; frozen teacher (weights {args.weights}); Hinton KD at config.yaml's settings; seeds "
          f"{args.seeds}\n")
    rows = [{"recipe": recipe, "teacher": f"{m['teacher']:.2f}",
             "baseline": f"{m['baseline_mean']:.2f} ± {m['baseline_std']:.2f}",
             "KD": f"{m['kd_mean']:.2f} ± {m['kd_std']:.2f}",
             "KD − baseline (paired)": f"{m['diff_mean']:+.2f} [{m['ci_low']:+.2f}, {m['ci_high']:+.2f}], "
                                       f"p = {m['p_value']:.3g}",
             "std of paired diff.": f"{m['diff_std']:.2f}", "MDD (80 %)": f"{m['mdd']:.2f}",
             f"stds ≤ {TARGET_STD}": "yes" if max(m["baseline_std"], m["diff_std"]) <= TARGET_STD else "no",
             "wall (min)": f"{wall[recipe] / 60:.1f}"} for recipe, m in measured.items()]
    print(pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True))
    if {"reference", "stable"} <= measured.keys():
        gain = measured["stable"]["baseline_mean"] - measured["reference"]["baseline_mean"]
        print(f"\nstable minus reference, baseline mean: {gain:+.2f} points")
    for recipe, found in warnings.items():
        print(f"\nsummary warnings, {recipe}: " + ("none" if not found else "\n" + "\n".join(found)))
    columns = ["recipe", "id", "seed", "test_accuracy", "val_accuracy", "test_loss", "epochs_run", "train_seconds"]
    print("\nPer run:\n")
    print(runs_table[[c for c in columns if c in runs_table]].to_markdown(index=False, floatfmt=".3f"))
    accuracies = runs_table.groupby("recipe")["test_accuracy"]
    print(f"\nlowest test accuracy per recipe: {accuracies.min().round(2).to_dict()}; "
          f"std over all runs: {accuracies.apply(lambda s: float(np.std(s, ddof=1))).round(2).to_dict()}")


if __name__ == "__main__":
    main()
