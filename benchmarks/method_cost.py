#!/usr/bin/env python
"""Training time per epoch of every distillation method against the baseline's, in one workflow run.

Runs the real workflow once, on one data slice: one teacher, the baseline student and one student per
registered method (kdbench.methods.METHODS, each at its defaults; kd at config.yaml's alpha and temperature),
trained only (no evaluation). Jobs run one at a time with every core, so their times compare. By default
the sizes are the quick preset's resolution (64 px) on a smaller slice, so that it takes minutes.

Prints, per method: seconds of the first epoch (tracing and warm-up included), seconds per epoch after the
first (from each run's history.csv) and its ratio to the baseline's, and what the method reads from the
teacher. Logit methods read the teacher's logits, computed once per teacher by the teacher_logits job (its
time is printed too); feature methods run the teacher on every batch, which their epochs include.
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

from kdbench import cli, methods  # noqa: E402
from kdbench.runs import expand  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cifar10-seed-subset.npz"


def benchmark_config(args) -> dict:
    """config.yaml with the slice, one teacher (weights null) and every method at its defaults, one seed."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    if args.teacher not in base["teachers"]:
        raise cli.KdbenchError(f"--teacher {args.teacher}: config.yaml has {', '.join(base['teachers'])}")
    # merged over config.yaml by Snakemake too: entries are switched off by name, not left out
    teachers = {name: None for name in base["teachers"]}
    teachers[args.teacher] = {"weights": None}
    return merge(base, {
        "run_name": "method-cost",
        "description": "training time per epoch of every method (benchmarks/method_cost.py)",
        "data": npz_slice(args),
        "model": {"upsample": args.upsample},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size},
        "teachers": teachers,
        "distillation": {"methods": {name: {} for name in methods.METHODS}},
        "seeds": [args.seed], "threads": args.cores})


def read_runs(results: Path, students: pd.DataFrame) -> pd.DataFrame:
    """One row per student: its method, first-epoch seconds, mean seconds of the later epochs, precision."""
    rows = []
    for _, run in students.iterrows():
        seconds = pd.read_csv(results / "models" / run["id"] / "history.csv")["epoch_seconds"]
        info = json.loads((results / "models" / run["id"] / "train.json").read_text())
        method = run["method"] or "baseline"
        rows.append({"method": method, "id": run["id"],
                     "reads": methods.get(method).NEEDS if method != "baseline" else "-",
                     "first_epoch_s": float(seconds.iloc[0]), "later_epoch_s": float(seconds.iloc[1:].mean()),
                     "precision": info["precision"], "device": info["device"]})
    table = pd.DataFrame(rows)
    table["ratio"] = table["later_epoch_s"] / table.loc[table["method"] == "baseline", "later_epoch_s"].iloc[0]
    return table


def teacher_logits_seconds(results: Path, teacher_id: str) -> float:
    """Wall seconds of the teacher_logits job (Snakemake's benchmark file)."""
    return float(pd.read_csv(results / "benchmarks" / "teacher_logits" / f"{teacher_id}.tsv", sep="\t")["s"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA),
                        help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3); default %(default)s")
    parser.add_argument("--teacher", default="frozen", help="config.yaml's teacher to distil (default: frozen)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    parser.add_argument("--train-size", type=cli.positive_int, default=1000)
    parser.add_argument("--val-size", type=cli.non_negative_int, default=200)
    parser.add_argument("--test-size", type=cli.positive_int, default=200)
    parser.add_argument("--epochs", type=cli.positive_int, default=3, help="at least 2: the first is timed apart")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--upsample", type=cli.power_of_two, default=2, help="model.upsample (quick preset: 2)")
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count(),
                        help="snakemake --cores and TensorFlow threads per job (jobs run one at a time)")
    parser.add_argument("--workdir", help="keep the run here (default: a temporary folder, deleted)")
    parser.add_argument("--json-out", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if args.epochs < 2:
        raise cli.KdbenchError("--epochs must be at least 2: the first epoch (tracing, warm-up) is timed apart")

    config = benchmark_config(args)
    table = expand(config)
    students = table[table["role"] != "teacher"]
    teacher_id = table.loc[table["role"] == "teacher", "id"].iloc[0]
    results = results_dir(Path("."), config)
    targets = [str(results / "models" / model / "history.csv") for model in students["id"]]
    load = {"start": os.getloadavg()[0]}
    with scratch_folder(args.workdir, "method-cost") as workdir:
        wall = run_workflow(workdir / "run", config, targets, args.cores)
        load["end"] = os.getloadavg()[0]
        measured = read_runs(results_dir(workdir / "run", config), students)
        logits_s = teacher_logits_seconds(results_dir(workdir / "run", config), teacher_id)

    print(f"\n## kdbench method cost\n\n{measured['device'].iloc[0]}, {args.cores} threads, precision "
          f"{', '.join(sorted(measured['precision'].unique()))}; teacher {args.teacher} (weights null); "
          f"{args.train_size} train images of {args.data} at {32 * args.upsample} px, {args.epochs} epochs, batch "
          f"{args.batch_size}, seed {args.seed}; load average (1 min) {load['start']:.1f} at the start, "
          f"{load['end']:.1f} at the end\n")
    shown = pd.DataFrame({"method": measured["method"], "reads from the teacher": measured["reads"],
                          "first epoch (s)": measured["first_epoch_s"].map("{:.1f}".format),
                          "s/epoch after the first": measured["later_epoch_s"].map("{:.1f}".format),
                          "ratio to baseline": measured["ratio"].map("{:.2f}x".format)})
    print(shown.to_markdown(index=False, disable_numparse=True))
    print(f"\nThe logit methods' teacher_logits job (once per teacher, shared by every logit run): {logits_s:.1f} s. "
          f"Whole workflow run: {wall:.0f} s.")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"settings": vars(args), "load_average": load, "wall_s": wall, "teacher_logits_s": logits_s,
             "runs": measured.to_dict("records")}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    cli.run(main)
