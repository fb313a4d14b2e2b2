#!/usr/bin/env python
"""Time the seed's way (caches off, float32) against ours (caches on, our defaults) on one data slice, in one run.

Runs the real workflow four times in a scratch folder, on the same slice and settings:
  seed     float32; the frozen teacher recomputes its backbone every epoch, the teacher runs in every KD step
  cached   float32 with both caches on: the caches' gain alone
  ours     the defaults: caches on and train.precision auto (mixed_bfloat16 on a CPU with native bf16)
  ours-s1  ours with seed 1: the seed-to-seed noise that accuracy differences are judged against
each building the frozen teacher and a three-point temperature sweep of students distilled from it.
Prints time ratios, images/s, achieved GFLOP/s against this machine's measured matmul peak, peak memory
per job (Snakemake's benchmark files) and test accuracies.
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdbench import cli, runs  # noqa: E402

TEMPERATURES = [2, 4, 7]
ALPHA = 0.3
WAYS = {
    "seed": {"teachers": {"frozen": {"cache_features": False}}, "distillation": {"soft_targets": "online"},
             "train": {"precision": "float32"}},
    "cached": {"train": {"precision": "float32"}},
    "ours": {},
    "ours-s1": {"seeds": [1]},
}


def merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def npz_slice(args) -> dict:
    """The config's data section for the --data npz and the --train-size/--val-size/--test-size slice."""
    return {"source": "npz", "path": str(Path(args.data).resolve()), "train_size": args.train_size,
            "val_size": args.val_size, "test_size": args.test_size}


@contextlib.contextmanager
def scratch_folder(keep: str | None, name: str):
    """The folder `keep` (left in place) or, without one, a temporary folder deleted afterwards, even on failure."""
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"kdbench-{name}-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def run_workflow(folder: Path, config: dict, targets: list[str], cores: int) -> float:
    """Run the workflow for `targets` with `config` in `folder` (logged there); returns its wall time in seconds."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(folder),
               "--configfile", str(folder / "config.yaml"), "--cores", str(cores), *targets]
    print(f"[{folder.name}] {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    with open(folder / "snakemake.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise cli.KdbenchError(f"the {folder.name} run failed; see {folder / 'snakemake.log'}")
    return seconds


def results_dir(folder: Path, config: dict) -> Path:
    """Where the workflow run in `folder` with `config` writes: results/<run_name>/."""
    return folder / "results" / config["run_name"]


def with_teacher_weights(config: dict, weights: str | None) -> dict:
    """`config` with every teacher's backbone weights set to `weights` (None: random initialisation)."""
    return merge(config, {"teachers": {name: {"weights": weights} for name in runs.present(config["teachers"])}})


def sweep_runs(config: dict) -> dict:
    """The run ids this benchmark reads, from the runs table: the frozen teacher and, per temperature, the
    student distilled from it with Hinton KD at the first seed ({"teacher": id, "kd-t7": id, ...})."""
    table = runs.expand(config)
    teacher = table[(table["role"] == "teacher") & (table["teacher"] == "frozen")]
    distilled = table[(table["role"] == "distilled") & (table["teacher"] == "frozen") & (table["method"] == "kd")
                      & (table["seed"] == config["seeds"][0])]
    ids = {"teacher": teacher["id"].iloc[0]}
    for _, row in distilled.iterrows():
        ids[f"kd-t{json.loads(row['settings'])['temperature']:g}"] = row["id"]
    return ids


def run_way(way: str, config: dict, workdir: Path, cores: int) -> float:
    """Run the workflow for the frozen teacher's sweep; returns its wall time in seconds."""
    results = results_dir(Path("."), config)
    targets = [str(results / "eval" / model / "metrics.json") for model in sweep_runs(config).values()]
    return run_workflow(workdir / way, config, targets, cores)


def read_way(folder: Path, config: dict) -> dict:
    """Training time, job wall time, peak memory, test accuracy and FLOPs per image of each model of one run."""
    results = results_dir(folder, config)

    def job(tsv):
        row = pd.read_csv(results / "benchmarks" / tsv, sep="\t").iloc[0]
        return {"job_s": float(row["s"]), "max_rss_mb": float(row["max_rss"])}

    def model(name):
        metrics = json.loads((results / "eval" / name / "metrics.json").read_text())
        return {**job(f"train/{name}.tsv"), **json.loads((results / "models" / name / "train.json").read_text()),
                "accuracy": metrics["test"]["accuracy"], "flops_per_image": metrics["cost"]["flops_per_image"]}

    ids = sweep_runs(config)
    out = {key: model(name) for key, name in ids.items()}
    logits_tsv = f"teacher_logits/{ids['teacher']}.tsv"  # absent where the teacher ran online
    out["logits"] = job(logits_tsv) if (results / "benchmarks" / logits_tsv).exists() else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3)")
    parser.add_argument("--train-size", type=cli.positive_int, default=256)
    parser.add_argument("--test-size", type=cli.positive_int, default=128, help="also the validation size")
    parser.add_argument("--upsample", type=cli.positive_int, default=8, help="8 is the seed's 256 px")
    parser.add_argument("--epochs", type=cli.positive_int, default=5)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--weights", default=None, help="teacher backbone: imagenet or the .h5 path; default random")
    parser.add_argument("--throughput-batch", type=cli.positive_int, default=32,
                        help="evaluation's throughput batch (the same in every way; smaller keeps it short)")
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count(),
                        help="snakemake --cores and TensorFlow threads per job (jobs run one at a time)")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS))
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder, deleted)")
    parser.add_argument("--json-out", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if "seed" not in args.ways or "ours" not in args.ways:
        raise cli.KdbenchError("--ways needs at least seed and ours: the ratios compare them")

    from kdbench import hardware, train

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    base = merge(base, {
        "run_name": "speed",
        "data": {"source": "npz", "path": str(Path(args.data).resolve()), "train_size": args.train_size,
                 "val_size": args.test_size, "test_size": args.test_size},
        "model": {"upsample": args.upsample},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size},
        "distillation": {"methods": {"kd": {"alpha": ALPHA, "temperature": TEMPERATURES}}},
        "evaluation": {"throughput_batch": args.throughput_batch},
        "seeds": [0], "threads": args.cores})
    base = with_teacher_weights(base, args.weights)
    results = {"settings": vars(args), "wall_s": {}, "runs": {}}
    with scratch_folder(args.workdir, "speed") as workdir:
        for way in args.ways:
            config = merge(base, WAYS[way])
            results["wall_s"][way] = run_way(way, config, workdir, args.cores)
            results["runs"][way] = read_way(workdir / way, config)

    train.configure_runtime(args.cores, seed=0)
    # forward FLOPs per image as evaluation counted them (float32: the seed way's models)
    teacher_fwd = results["runs"]["seed"]["teacher"]["flops_per_image"]
    student_fwd = results["runs"]["seed"][f"kd-t{TEMPERATURES[-1]:g}"]["flops_per_image"]
    peak = {dtype: hardware.matmul_peak_gflops(dtype) for dtype in ("float32", "bfloat16")}
    results.update(teacher_forward_gflop=teacher_fwd / 1e9, student_forward_gflop=student_fwd / 1e9,
                   matmul_peak_gflops=peak, device=train.device_description())
    print_report(results, args, teacher_fwd, student_fwd, peak)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str) + "\n")


def print_report(results: dict, args, teacher_fwd: int, student_fwd: int, peak: dict) -> None:
    runs, wall, n = results["runs"], results["wall_s"], args.train_size * args.epochs
    kd = f"kd-t{TEMPERATURES[-1]}"
    fast_ways = [way for way in ("cached", "ours") if way in runs]
    precision = {way: run["teacher"]["precision"] for way, run in runs.items()}
    print(f"\n## kdbench speed benchmark\n\n{results['device']}, {args.cores} threads; {args.train_size} train / "
          f"{args.test_size} test images of {args.data}, {32 * args.upsample} px, {args.epochs} epochs, batch "
          f"{args.batch_size}, teacher weights {args.weights}; precision: "
          + ", ".join(f"{way} {p}" for way, p in precision.items())
          + f"; matmul peak {peak['float32']:.0f} GFLOP/s float32, {peak['bfloat16']:.0f} GFLOP/s bfloat16 "
          "(2048x2048)\n")

    def logits_s(way):  # the cached ways' one teacher pass over the training images, shared by every KD run
        return runs[way]["logits"]["job_s"] if runs[way]["logits"] else 0.0

    # (what, seconds per way, training images processed or None, forward FLOPs per image in each way)
    # A training step counts as 3 forward passes (forward, input and weight gradients); a frozen
    # backbone only runs forward; the cached frozen teacher's FLOPs are its one feature pass.
    steps = [
        ("frozen teacher: training", {w: r["teacher"]["train_seconds"] for w, r in runs.items()}, n,
         {"seed": teacher_fwd, "cached": teacher_fwd / args.epochs, "ours": teacher_fwd / args.epochs}),
        ("frozen teacher: whole job", {w: r["teacher"]["job_s"] for w, r in runs.items()}, None, None),
        (f"one distillation run (T={TEMPERATURES[-1]}): training", {w: r[kd]["train_seconds"] for w, r in runs.items()},
         n, {"seed": 3 * student_fwd + teacher_fwd, "cached": 3 * student_fwd, "ours": 3 * student_fwd}),
        ("one distillation run: whole job", {w: r[kd]["job_s"] for w, r in runs.items()}, None, None),
        ("one distillation run: whole job + the teacher-logits job it reads",
         {w: r[kd]["job_s"] + logits_s(w) for w, r in runs.items()}, None, None),
        (f"whole DAG: teacher + {len(TEMPERATURES)}-point sweep + evaluation", dict(wall), None, None),
    ]
    rows = []
    for what, seconds, images, flops in steps:
        row = {"step": what, **{f"{way} (s)": f"{seconds[way]:.1f}" for way in ["seed", *fast_ways]}}
        row.update({f"{way} speed-up": f"{seconds['seed'] / seconds[way]:.2f}x" for way in fast_ways})
        if images:
            row["images/s"] = " / ".join(f"{images / seconds[w]:.0f}" for w in ["seed", *fast_ways])
            row["GFLOP/s"] = " / ".join(f"{flops[w] * images / seconds[w] / 1e9:.0f}" for w in ["seed", *fast_ways])
        rows.append(row)
    print(pd.DataFrame(rows).fillna("").to_markdown(index=False))
    print("\nimages/s and GFLOP/s are given as " + " / ".join(["seed", *fast_ways]) + ". "
          + " ".join(f"{way} spent {logits_s(way):.1f} s once on the teacher logits (whole job)." for way in fast_ways))

    print("\nPeak memory per job (max_rss, MB) and test accuracy (%):\n")
    models_ = ["teacher"] + [f"kd-t{t}" for t in TEMPERATURES]
    table = {way: {m: f"{run[m]['max_rss_mb']:.0f} MB, {100 * run[m]['accuracy']:.1f}%" for m in models_}
             for way, run in runs.items()}
    for way, run in runs.items():
        if run["logits"]:
            table[way]["teacher logits"] = f"{run['logits']['max_rss_mb']:.0f} MB"
    print(pd.DataFrame(table).fillna("-").to_markdown())


if __name__ == "__main__":
    cli.run(main)
