#!/usr/bin/env python
"""Cost of cached augmented soft targets: a 3-point KD sweep with augmentation, the teacher run online in every
step against its logits cached once on every epoch's views, side by side, through the real workflow.

Runs the workflow twice in a scratch folder, on the same data slice and settings (train.augment: true), each
building the frozen teacher and a three-point temperature sweep of students distilled from it:
  online   distillation.soft_targets: online: the teacher runs on every training batch of every KD run
  cached   distillation.soft_targets: cached: teacher_logits runs the teacher once over every epoch's views,
           an (epochs, images, classes) array that every KD run of the sweep reads
Prints each way's wall time and the ratio, and per job (Snakemake's benchmark files): the teacher's training,
the teacher-logits job, each KD run's training time (train.json) and job time.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdbench import cli  # noqa: E402
from speed import merge, run_workflow, scratch_folder  # noqa: E402  (this folder is on sys.path when run as a script)

TEMPERATURES = [2, 4, 7]
ALPHA = 0.3
WAYS = {"online": {"distillation": {"soft_targets": "online"}}, "cached": {"distillation": {"soft_targets": "cached"}}}


def kd_ids(config: dict) -> list[str]:
    """The distilled runs' ids, from the runs table the workflow builds from the same config."""
    from kdbench.runs import expand

    table = expand(config)
    return table.loc[table["role"] == "distilled", "id"].tolist()


def read_way(results: Path, ids: list[str]) -> dict:
    """Per job: Snakemake's wall seconds and peak memory, and each training run's own training seconds."""
    def job(tsv):
        path = results / "benchmarks" / tsv
        if not path.exists():
            return None
        row = pd.read_csv(path, sep="\t").iloc[0]
        return {"job_s": float(row["s"]), "max_rss_mb": float(row["max_rss"])}

    def trained(run_id):
        info = json.loads((results / "models" / run_id / "train.json").read_text())
        return {**job(f"train/{run_id}.tsv"), "train_s": float(info["train_seconds"])}

    return {"teacher": trained("teacher-frozen"), "logits": job("teacher_logits/teacher-frozen.tsv"),
            "kd": {run_id: trained(run_id) for run_id in ids}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3); default: "
                                       "synthetic images (timings only, the accuracies mean nothing)")
    parser.add_argument("--train-size", type=cli.positive_int, default=256)
    parser.add_argument("--val-size", type=cli.non_negative_int, default=64)
    parser.add_argument("--test-size", type=cli.positive_int, default=64)
    parser.add_argument("--upsample", type=cli.power_of_two, default=1, help="8 is the reference's 256 px")
    parser.add_argument("--epochs", type=cli.positive_int, default=2)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--teacher", default="resnet50", help="the frozen teacher's architecture")
    parser.add_argument("--weights", default=None, help="teacher backbone: imagenet or the .h5 path; default random")
    parser.add_argument("--precision", default="float32", choices=cli.PRECISIONS)
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count(),
                        help="snakemake --cores and TensorFlow threads per job (jobs run one at a time)")
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder, deleted)")
    parser.add_argument("--json-out", help="also write every measurement to this JSON file")
    args = parser.parse_args()

    from kdbench.train import device_description

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    data = ({"source": "npz", "path": str(Path(args.data).resolve())} if args.data else {"source": "synthetic"})
    base = merge(base, {
        "run_name": "augment-cost", "description": "augmented KD: online teacher against cached per-epoch targets",
        "data": {**data, "train_size": args.train_size, "val_size": args.val_size, "test_size": args.test_size},
        "model": {"upsample": args.upsample},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "precision": args.precision,
                  "augment": True},
        "seeds": [0], "threads": args.cores})
    # Snakemake merges the config file over config.yaml, so entries are switched off by name, not left out
    base["teachers"] = {**{name: None for name in base["teachers"]},
                        "frozen": {**base["teachers"]["frozen"], "architecture": args.teacher, "weights": args.weights}}
    base["distillation"]["methods"] = {**{name: None for name in base["distillation"]["methods"]},
                                       "kd": {"alpha": ALPHA, "temperature": TEMPERATURES}}
    ids = kd_ids(base)
    results = {"settings": vars(args), "wall_s": {}, "runs": {}, "device": device_description()}
    with scratch_folder(args.workdir, "augment-cost") as workdir:
        for way, overlay in WAYS.items():
            config = merge(base, overlay)
            targets = [f"results/augment-cost/models/{run_id}/model.keras" for run_id in ids]
            results["wall_s"][way] = run_workflow(workdir / way, config, targets, args.cores)
            results["runs"][way] = read_way(workdir / way / "results" / "augment-cost", ids)
    print_report(results, args, ids)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str) + "\n")


def print_report(results: dict, args, ids: list[str]) -> None:
    runs, wall = results["runs"], results["wall_s"]
    print(f"\n## Augmented KD: online teacher vs cached per-epoch targets\n\n{results['device']}, {args.cores} "
          f"threads; {args.train_size} train images ({args.data or 'synthetic'}), {32 * args.upsample} px, "
          f"{args.epochs} epochs, batch {args.batch_size}, {args.precision}; teacher {args.teacher} (frozen, "
          f"weights {args.weights}); kd alpha {ALPHA}, temperatures {TEMPERATURES}, augmentation on\n")

    def kd_sum(way, key):
        return sum(run[key] for run in runs[way]["kd"].values())

    def logits_s(way):
        return runs[way]["logits"]["job_s"] if runs[way]["logits"] else 0.0

    rows = [
        ("teacher training job (the same in both ways)", {w: runs[w]["teacher"]["job_s"] for w in runs}),
        ("teacher_logits job (every epoch's views, once)", {w: logits_s(w) for w in runs}),
        (f"{len(ids)} KD runs: training (train.json)", {w: kd_sum(w, "train_s") for w in runs}),
        (f"{len(ids)} KD runs: whole jobs", {w: kd_sum(w, "job_s") for w in runs}),
        (f"{len(ids)} KD runs + the teacher_logits job", {w: kd_sum(w, "job_s") + logits_s(w) for w in runs}),
        ("whole workflow, wall time", dict(wall)),
    ]
    table = [{"step": what, "online (s)": f"{seconds['online']:.1f}", "cached (s)": f"{seconds['cached']:.1f}",
              "online / cached": f"{seconds['online'] / seconds['cached']:.2f}x" if min(seconds.values()) else "-"}
             for what, seconds in rows]
    print(pd.DataFrame(table).to_markdown(index=False))
    print("\nPer KD run (job s / training s / peak MB):\n")
    per_run = {way: {run_id: f"{r['job_s']:.1f} / {r['train_s']:.1f} / {r['max_rss_mb']:.0f}"
                     for run_id, r in runs[way]["kd"].items()} for way in runs}
    print(pd.DataFrame(per_run).to_markdown())
    print(f"\nwall time: online {wall['online']:.1f} s, cached {wall['cached']:.1f} s, "
          f"ratio online / cached {wall['online'] / wall['cached']:.2f}")


if __name__ == "__main__":
    cli.run(main)
