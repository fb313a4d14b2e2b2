#!/usr/bin/env python
"""Time the seed's way (caches off) against ours (caches on) on one data slice, in one run.

Runs the real workflow four times in a scratch folder, on the same slice and settings:
  seed     frozen teacher recomputes its backbone every epoch, teacher runs in every distillation step
  ours     backbone features computed once, teacher logits computed once (the defaults)
  ours-s1  ours with seed 1: the seed-to-seed noise that accuracy differences are judged against
  bf16     ours with train.precision: mixed_bfloat16 (the others run in float32, as the seed did)
each building the frozen teacher and a three-point temperature sweep of students distilled from it.
Prints time ratios, images/s, achieved GFLOP/s against this machine's measured matmul peak, peak memory
per job (Snakemake's benchmark files) and test accuracies.
"""

import argparse
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

from kdbench import cli  # noqa: E402

TEMPERATURES = [2, 4, 7]
ALPHA = 0.3
WAYS = {
    "seed": {"teachers": {"frozen": {"cache_features": False}}, "distillation": {"soft_targets": "online"}},
    "ours": {},
    "ours-s1": {"seeds": [1]},
    "bf16": {"train": {"precision": "mixed_bfloat16"}},
}


def merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def run_way(way: str, config: dict, workdir: Path, cores: int) -> float:
    """Run the workflow for the frozen teacher's sweep; returns its wall time in seconds."""
    folder = workdir / way
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    seed = config["seeds"][0]
    targets = ["results/eval/teacher-frozen/metrics.json"] + [
        f"results/eval/student-kd-frozen-a{ALPHA:g}-t{t:g}-s{seed}/metrics.json" for t in TEMPERATURES]
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(folder),
               "--configfile", str(folder / "config.yaml"), "--cores", str(cores), *targets]
    print(f"[{way}] {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    with open(folder / "snakemake.log", "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise cli.KdbenchError(f"the {way} run failed; see {folder / 'snakemake.log'}")
    return seconds


def read_way(folder: Path, seed: int) -> dict:
    """Training time, job wall time, peak memory and test accuracy of each model of one run."""
    def job(tsv):
        row = pd.read_csv(folder / "results" / "benchmarks" / tsv, sep="\t").iloc[0]
        return {"job_s": float(row["s"]), "max_rss_mb": float(row["max_rss"])}

    def later_epochs_s(name):  # epochs after the first, which also traces and compiles the step
        return float(pd.read_csv(folder / "results" / "models" / name / "history.csv")["epoch_seconds"][1:].sum())

    def model(name):
        return {**job(f"train/{name}.tsv"), "later_epochs_s": later_epochs_s(name),
                **json.loads((folder / "results" / "models" / name / "train.json").read_text()),
                "accuracy": json.loads((folder / "results" / "eval" / name / "metrics.json").read_text())["test"]["accuracy"]}

    out = {"teacher": model("teacher-frozen")}
    logits_tsv = folder / "results/benchmarks/teacher_logits/frozen.tsv"
    out["logits"] = job("teacher_logits/frozen.tsv") if logits_tsv.exists() else None
    for t in TEMPERATURES:
        out[f"kd-t{t}"] = model(f"student-kd-frozen-a{ALPHA:g}-t{t:g}-s{seed}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test (uint8, 32x32x3)")
    parser.add_argument("--train-size", type=cli.positive_int, default=1000)
    parser.add_argument("--test-size", type=cli.positive_int, default=500)
    parser.add_argument("--upsample", type=int, default=1, help="8 is the seed's 256 px (hours on a CPU)")
    parser.add_argument("--epochs", type=cli.positive_int, default=5)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--weights", default=None, help="teacher backbone: imagenet or the .h5 path; default random")
    parser.add_argument("--cores", type=cli.positive_int, default=os.cpu_count(),
                        help="snakemake --cores and TensorFlow threads per job (jobs run one at a time)")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS))
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder, deleted)")
    parser.add_argument("--json-out", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    if "seed" not in args.ways or "ours" not in args.ways:
        raise cli.KdbenchError("--ways needs at least seed and ours: the ratios compare them")

    from kdbench import cost, hardware, models, train

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    base = merge(base, {
        "run_name": "speed benchmark",
        "data": {"source": "npz", "path": str(Path(args.data).resolve()), "train_size": args.train_size,
                 "val_size": args.test_size, "test_size": args.test_size},
        "model": {"upsample": args.upsample, "weights": args.weights},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "precision": "float32"},
        "distillation": {"alpha": ALPHA, "temperature": TEMPERATURES, "soft_targets": "cached"},
        "seeds": [0], "threads": args.cores})
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="kdbench-speed-"))
    results = {"settings": vars(args), "wall_s": {}, "runs": {}}
    try:
        for way in args.ways:
            config = merge(base, WAYS[way])
            results["wall_s"][way] = run_way(way, config, workdir, args.cores)
            results["runs"][way] = read_way(workdir / way, config["seeds"][0])
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    train.configure_runtime(args.cores, seed=0)
    teacher_fwd = cost.flops_per_image(models.build_teacher(None, args.upsample, frozen=True))
    student_fwd = cost.flops_per_image(models.build_resnet18(args.upsample))
    peak = {dtype: hardware.matmul_peak_gflops(dtype) for dtype in ("float32", "bfloat16")}
    results.update(teacher_forward_gflop=teacher_fwd / 1e9, student_forward_gflop=student_fwd / 1e9,
                   matmul_peak_gflops=peak, device=train.device_description())
    print_report(results, args, teacher_fwd, student_fwd, peak)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str) + "\n")


def print_report(results: dict, args, teacher_fwd: int, student_fwd: int, peak: dict) -> None:
    runs, n = results["runs"], args.train_size * args.epochs
    seed, ours = runs["seed"], runs["ours"]
    kd = f"kd-t{TEMPERATURES[-1]}"
    # FLOPs per training image: a training step is ~3 forward passes (forward, input and weight gradients);
    # a frozen backbone only runs forward.
    step_flops = {"seed teacher": teacher_fwd, "seed KD": 3 * student_fwd + teacher_fwd, "ours KD": 3 * student_fwd}
    print(f"\n## kdbench speed benchmark\n\n{results['device']}, {args.cores} threads; {args.train_size} train / "
          f"{args.test_size} test images of {args.data}, {32 * args.upsample} px, {args.epochs} epochs, batch "
          f"{args.batch_size}, teacher weights {args.weights}; matmul peak {peak['float32']:.0f} GFLOP/s float32, "
          f"{peak['bfloat16']:.0f} GFLOP/s bfloat16 (2048x2048)\n")
    rows = []

    def row(what, slow_s, fast_s, slow_ips=None, fast_ips=None, gflops=None):
        rows.append({"step": what, "seed way (s)": f"{slow_s:.1f}", "ours (s)": f"{fast_s:.1f}",
                     "speed-up": f"{slow_s / fast_s:.2f}x",
                     "images/s seed / ours": f"{slow_ips:.0f} / {fast_ips:.0f}" if slow_ips else "",
                     "GFLOP/s seed / ours": gflops or ""})

    t_seed, t_ours = seed["teacher"]["train_seconds"], ours["teacher"]["train_seconds"]
    feature_gflops = teacher_fwd * args.train_size / ours["teacher"]["feature_seconds"] / 1e9
    row("frozen teacher: training", t_seed, t_ours, n / t_seed, n / t_ours,
        f"{step_flops['seed teacher'] * n / t_seed / 1e9:.0f} / {feature_gflops:.0f} (feature pass)")
    row("frozen teacher: whole job", seed["teacher"]["job_s"], ours["teacher"]["job_s"])
    d_seed, d_ours = seed[kd]["train_seconds"], ours[kd]["train_seconds"]
    row(f"one distillation run (T={TEMPERATURES[-1]}): training", d_seed, d_ours, n / d_seed, n / d_ours,
        f"{step_flops['seed KD'] * n / d_seed / 1e9:.0f} / {step_flops['ours KD'] * n / d_ours / 1e9:.0f}")
    if args.epochs > 1:
        n_later = args.train_size * (args.epochs - 1)
        l_seed, l_ours = seed[kd]["later_epochs_s"], ours[kd]["later_epochs_s"]
        row(f"one distillation run: epochs 2-{args.epochs} (step compiled)", l_seed, l_ours, n_later / l_seed,
            n_later / l_ours, f"{step_flops['seed KD'] * n_later / l_seed / 1e9:.0f} / "
                              f"{step_flops['ours KD'] * n_later / l_ours / 1e9:.0f}")
    row("one distillation run: whole job", seed[kd]["job_s"], ours[kd]["job_s"])
    row(f"DAG: teacher + {len(TEMPERATURES)}-point sweep + evaluation", results["wall_s"]["seed"],
        results["wall_s"]["ours"])
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(f"\nours computes the teacher logits once per teacher: {ours['logits']['job_s']:.1f} s (whole job).")
    if args.epochs > 1:
        gflops = step_flops["seed teacher"] * n_later / seed["teacher"]["later_epochs_s"] / 1e9
        print(f"The seed way's frozen teacher, epochs 2-{args.epochs}: {gflops:.0f} GFLOP/s.")

    print("\nPeak memory per job (max_rss, MB) and test accuracy (%):\n")
    models_ = ["teacher"] + [f"kd-t{t}" for t in TEMPERATURES]
    table = {way: {m: f"{run[m]['max_rss_mb']:.0f} MB, {100 * run[m]['accuracy']:.1f}%" for m in models_}
             for way, run in runs.items()}
    for way, run in runs.items():
        if run["logits"]:
            table[way]["teacher logits"] = f"{run['logits']['max_rss_mb']:.0f} MB"
    print(pd.DataFrame(table).fillna("-").to_markdown())
    if "bf16" in runs:
        b = runs["bf16"]
        print(f"\nmixed_bfloat16 vs float32 (ours): distillation training {d_ours / b[kd]['train_seconds']:.2f}x, "
              f"teacher training {t_ours / b['teacher']['train_seconds']:.2f}x, whole DAG "
              f"{results['wall_s']['ours'] / results['wall_s']['bf16']:.2f}x faster "
              f"({3 * student_fwd * n / b[kd]['train_seconds'] / 1e9:.0f} GFLOP/s in the KD step)")


if __name__ == "__main__":
    cli.run(main)
