#!/usr/bin/env python3
"""The GPU check (issue 21): the workflow under JAX on one NVIDIA GPU, in one command of at most ~9 minutes.

It runs on a bare Linux machine with Python 3.12, JAX and PyTorch with CUDA, no TensorFlow and no internet,
given this project and the folder .gpu-check/ that `--prepare` fills here (where PyPI can be reached):

    .venv/bin/python benchmarks/gpu_check.py --prepare      # here: wheels/ and the data, ~53 MB (printed)
    python3 benchmarks/gpu_check.py                          # there: install, run, print the table

On the GPU machine it
1. installs the wheels that machine lacks (keras, snakemake and their needs) with `pip --no-index --no-deps`
   into .gpu-check/site, put first on PYTHONPATH: the machine's own Python is a virtual environment, and a
   venv made from it with --system-site-packages would see the base interpreter's packages, not its JAX;
2. runs the workflow under KERAS_BACKEND=jax twice: (a) the default reference experiment at full size
   (10,000 images, 256 px, 5 epochs; presets/offline.yaml's teachers, weights: null) and (b) the quick preset
   (4,000 images, 64 px, 3 epochs), both on real CIFAR-10 (the shared slice, data.source: npz);
3. prints one table: wall time per job and in all (Snakemake's benchmark files), images/s per training job
   (its steady epochs), achieved TFLOP/s against the GPU's dense bf16 peak (--peak-tflops, default 989: the
   H100/H200 SXM data sheet's figure), peak GPU memory per job (nvidia-smi, sampled), test accuracies.

Each run stops at its time limit (--limit-a, --limit-b seconds: 300 + 150 by default, so that install, both
runs and the table fit in 8 minutes); the table then shows the jobs that finished and says the run was cut.
Each run's table is printed as soon as it ends. With --out, the table (.md), its figures (.json) and the jobs'
logs (-logs.tar.gz) are written there too.
`--cpu` is the dry path that the tests run (with --no-install): the tiny preset on the CPU, any backend.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / ".gpu-check"  # ignored by git; carry it to the GPU machine (--folder elsewhere)
SHARED_DATA = ROOT.parent / "shared" / "data" / "cifar10-seed-subset.npz"
H200_BF16_PEAK_TFLOPS = 989.0  # dense bf16, NVIDIA's H100/H200 SXM data sheets (1,979 is with sparsity)
# Training one image costs about 3 forward passes (the backward pass about two): the usual estimate, and the
# one the table's TFLOP/s uses with kdbench.cost's analytic forward FLOPs.
TRAINING_PASSES = 3

# Python packages of the GPU machines' image ('cuda', as /work/.library/device/KINDS.md listed them on
# 2026-11-17): --prepare carries every other package that keras and snakemake need.
ON_GPU_IMAGE = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cycler cython diffrax einops equinox
etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping
jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
mypy-extensions nanobind narwhals networkx ninja numba numpy numpyro onnx opencv-python-headless optax opt-einsum
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pytest python-dateutil pyyaml regex
requests rich safetensors scikit-image scikit-learn scipy seaborn setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorstore threadpoolctl tifffile timm tokenizers toolz torch tqdm
transformers treescope triton typer typing-inspect urllib3 werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
# Not carried: PuLP (16 MB of solver binaries) serves only Snakemake's ILP scheduler; the check runs the
# greedy one. typing-extensions is carried although the image has it: pydantic needs a recent one.
LEFT_OUT = {"pulp"}
TOP_LEVEL = ["keras", "snakemake"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- preparing the folder here ------------------------------------------------------------------------------

def needed_packages() -> dict[str, str]:
    """name -> version of keras's and snakemake's dependency closure (as this environment has it, markers
    evaluated for Linux, CPython 3.12) that the GPU image lacks."""
    from packaging.requirements import Requirement

    marker_env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    versions: dict[str, str] = {}
    todo = list(TOP_LEVEL)
    while todo:
        name = canonical(todo.pop())
        if name in versions:
            continue
        distribution = importlib.metadata.distribution(name)
        versions[name] = distribution.version
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(marker_env):
                todo.append(requirement.name)
    return {name: version for name, version in sorted(versions.items())
            if name not in ON_GPU_IMAGE and name not in LEFT_OUT}


def prepare(folder: Path, data: Path, python_version: str) -> None:
    """Fill `folder`: wheels/ for CPython `python_version` on manylinux x86_64, and cifar10.npz."""
    wheels = folder / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    platforms = [arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                                 "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
                 for arg in ("--platform", tag)]
    for name, version in needed_packages().items():
        spec = f"{name}=={version}"
        binary = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                                 "--python-version", python_version, "--implementation", "cp", *platforms,
                                 "-d", str(wheels), spec], capture_output=True, text=True)
        if binary.returncode != 0:  # no wheel on PyPI (connection-pool): build one from its source here
            built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-binary", name,
                                    "-w", str(wheels), spec], capture_output=True, text=True)
            if built.returncode != 0:
                sys.exit(f"no wheel of {spec} for Python {python_version}: {binary.stderr[-500:]}"
                         f"{built.stderr[-500:]}")
            built_wheels = list(wheels.glob(f"{name.replace('-', '_')}-*.whl"))
            if not all(w.name.endswith("-none-any.whl") for w in built_wheels):
                sys.exit(f"{spec} has no wheel on PyPI and builds a compiled one here: it would not run there")
    target = folder / "cifar10.npz"
    if not data.is_file():
        sys.exit(f"no data slice at {data}: give --data (an .npz with x_train, y_train, x_test, y_test)")
    if target.resolve() != data.resolve():
        shutil.copyfile(data, target)
    wheel_bytes = sum(p.stat().st_size for p in wheels.glob("*.whl"))
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split("\0")
    project_bytes = sum((ROOT / p).stat().st_size for p in tracked if p and (ROOT / p).is_file())
    total = wheel_bytes + target.stat().st_size + project_bytes
    print(f"{len(list(wheels.glob('*.whl')))} wheels, {wheel_bytes / 2**20:.1f} MiB; data {target.name} "
          f"{target.stat().st_size / 2**20:.1f} MiB; the working tree {project_bytes / 2**20:.1f} MiB: "
          f"{total / 2**20:.1f} MiB travel (the device's limit: 64 MiB)")
    if total > 64 * 2**20:
        sys.exit("over 64 MiB: carry a smaller data slice (--data) or clean untracked files")


# --- running the workflow -----------------------------------------------------------------------------------

def install(folder: Path) -> Path:
    site = folder / "site"
    wheels = sorted(str(p) for p in (folder / "wheels").glob("*.whl"))
    if not wheels:
        sys.exit(f"no wheels in {folder / 'wheels'}: run `benchmarks/gpu_check.py --prepare` where PyPI is reached")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *wheels], check=True)
    return site


class GpuMemory:
    """The most GPU memory nvidia-smi shows for each job's process, sampled every `interval` seconds; a job is
    (kind, model id) read from its command line (its output paths), as the benchmark files name it."""

    PATTERNS = [("train", re.compile(r"--model-out \S*/models/([^/\s]+)/")),
                ("evaluate", re.compile(r"--metrics-out \S*/eval/([^/\s]+)/")),
                ("teacher_logits", re.compile(r"--out \S*/logits/([^/\s]+)\.npy"))]

    def __init__(self, interval: float = 0.5):
        self.interval, self.peaks, self.total_peak = interval, {}, 0
        self.available = shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _query(self, what: str) -> list[list[str]]:
        try:
            out = subprocess.run(["nvidia-smi", f"--query-{what}", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """One reading: the GPUs' memory in all, and each job process's."""
        for row in self._query("gpu=memory.used"):
            if row and row[0].isdigit():
                self.total_peak = max(self.total_peak, int(row[0]))
        for row in self._query("compute-apps=pid,used_memory"):
            if len(row) < 2 or not row[0].isdigit() or not row[1].isdigit():
                continue
            try:
                command = Path(f"/proc/{row[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            for kind, pattern in self.PATTERNS:
                match = pattern.search(command)
                if match:
                    key = (kind, match.group(1))
                    self.peaks[key] = max(self.peaks.get(key, 0), int(row[1]))


def snakemake(workdir: Path, presets: list[str], overrides: Path) -> list[str]:
    """The command line of Snakemake on this workflow in `workdir` (outputs land there), presets + overrides."""
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", *[str(ROOT / "presets" / f"{p}.yaml") for p in presets], str(overrides)]


def run_workflow(folder: Path, workdir: Path, name: str, presets: list[str], settings: dict, cores: int,
                 limit: float, env: dict, jobs_per_gpu: int | None) -> dict:
    """Snakemake on presets + `settings` (a nested YAML, the last --configfile); stopped after `limit` s."""
    overrides = folder / f"{name}.yaml"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    overrides.write_text(json.dumps({"run_name": name, **settings}, indent=1) + "\n")  # JSON is YAML
    shutil.rmtree(workdir / "results" / name, ignore_errors=True)
    # greedy scheduler: the ILP one needs PuLP, not carried; no lock: a run cut at its limit leaves one behind
    command = [*snakemake(workdir, presets, overrides), "--cores", str(cores), "--scheduler", "greedy", "--nolock"]
    if jobs_per_gpu:  # the config's own switch: that many jobs share the GPU, each in a locked slot
        command += ["--config", f"gpu_jobs_per_device={jobs_per_gpu}"]  # last: --config takes every word after it
    print(f"\n== {name}: {' '.join(command[1:])}", flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log = (folder / f"{name}.snakemake.log").open("w")
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # its own process group: stopped whole at the limit
    try:
        process.wait(timeout=limit)
        stopped = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stopped = True
    log.close()
    seconds = time.monotonic() - start
    tail = (folder / f"{name}.snakemake.log").read_text(errors="replace").splitlines()[-15:]
    if process.returncode != 0 and not stopped:
        print("\n".join(tail), flush=True)
    return {"name": name, "seconds": seconds, "stopped": stopped, "returncode": process.returncode}


# --- the table ----------------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _epoch_seconds(history: Path) -> list[float]:
    try:
        with history.open() as handle:
            return [float(row["epoch_seconds"]) for row in csv.DictReader(handle) if row.get("epoch_seconds")]
    except (OSError, KeyError, ValueError):
        return []


def job_rows(results: Path, memory: dict, peak_tflops: float) -> list[dict]:
    """One row per job that finished (a benchmark file of Snakemake's), in the order they finished."""
    data = _read_json(results / "data" / "dataset.json")
    train_images = data.get("train_size")
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv"), key=lambda p: p.stat().st_mtime):
        kind = tsv.parent.name if tsv.parent.name != "benchmarks" else tsv.stem
        model = tsv.stem if kind != tsv.stem else ""
        with tsv.open() as handle:
            record = next(csv.DictReader(handle, delimiter="\t"), {})
        row = {"job": f"{kind} {model}".strip(), "wall_s": float(record.get("s", "nan")),
               "images_per_s": None, "tflops": None, "peak_share": None, "note": "",
               "gpu_mib": memory.get((kind, model)), "test_accuracy": None}
        metrics = _read_json(results / "eval" / model / "metrics.json") if model else {}
        if kind == "evaluate" and metrics:
            row["test_accuracy"] = metrics.get("test", {}).get("accuracy")
        if kind == "train" and train_images:
            info = _read_json(results / "models" / model / "train.json")
            epochs = _epoch_seconds(results / "models" / model / "history.csv")
            flops = metrics.get("cost", {}).get("flops_per_image")
            images = train_images
            if info.get("cache_features") and info.get("feature_seconds"):
                # a frozen teacher: its backbone runs once on the training and validation images, then only
                # the head trains (kdbench.teacher)
                seconds, passes = float(info["feature_seconds"]), 1
                images = train_images + int(data.get("val_size") or 0)
                row["note"] = "backbone features of train + val images, once (incl. compile)"
            elif epochs:
                steady = epochs[1:] or epochs  # the first epoch holds the compilation
                seconds, passes = statistics.median(steady), TRAINING_PASSES
                row["note"] = "median epoch after the first" if epochs[1:] else "one epoch, incl. compile"
            else:
                seconds = None
            if seconds:
                row["images_per_s"] = images / seconds
                if flops:
                    row["tflops"] = passes * flops * images / seconds / 1e12
                    row["peak_share"] = row["tflops"] / peak_tflops
            row["precision"] = info.get("precision")
        rows.append(row)
    return rows


def _cell(value, fmt: str) -> str:
    return "" if value is None or value != value else format(value, fmt)


def table(runs: list[dict], peak_tflops: float) -> str:
    lines = ["| run | job | wall (s) | images/s | TFLOP/s | % of bf16 peak | peak GPU memory (MiB) | test accuracy "
             "(%) | how |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        for row in run["rows"]:
            lines.append(f"| {run['label']} | {row['job']} | {_cell(row['wall_s'], '.1f')} | "
                         f"{_cell(row['images_per_s'], ',.0f')} | {_cell(row['tflops'], '.1f')} | "
                         f"{_cell(None if row['peak_share'] is None else 100 * row['peak_share'], '.1f')} | "
                         f"{_cell(row['gpu_mib'], 'd')} | "
                         f"{_cell(None if row['test_accuracy'] is None else 100 * row['test_accuracy'], '.2f')} | "
                         f"{row['note']} |")
        state = (f"stopped at its limit, {run['unfinished'] if run['unfinished'] is not None else 'some'} jobs "
                 "unfinished" if run["stopped"]
                 else "finished" if run["returncode"] == 0 else f"FAILED (exit {run['returncode']}; see its log)")
        memory = f", GPU memory at most {run['gpu_total_mib']} MiB in all" if run.get("gpu_total_mib") else ""
        lines.append(f"| {run['label']} | **all ({state})** | **{run['seconds']:.1f}** | | | | | | "
                     f"{len(run['rows'])} jobs timed{memory} |")
    return "\n".join(lines) + (f"\n\nTFLOP/s: {TRAINING_PASSES} x kdbench.cost's forward FLOPs per image x the "
                               f"training images / the epoch's seconds (frozen teacher: 1 forward pass); the peak "
                               f"is {peak_tflops:g} TFLOP/s of dense bf16 (--peak-tflops).\n")


def unfinished_jobs(folder: Path, workdir: Path, name: str, env: dict, presets: list[str]) -> int | None:
    """Jobs a cut run left to do (a dry run after it; the `all` target not counted); None where unknown."""
    command = [*snakemake(workdir, presets, folder / f"{name}.yaml"), "-n", "--quiet", "rules", "--nolock",
               "--rerun-incomplete"]
    out = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True).stdout
    match = re.search(r"^total\s+(\d+)", out, re.MULTILINE)
    return max(0, int(match.group(1)) - 1) if match else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="here: fill .gpu-check/ (wheels, data) and stop")
    parser.add_argument("--python-version", default="3.12", help="--prepare: the GPU machine's Python")
    parser.add_argument("--data", type=Path, help="the real-data .npz (default: .gpu-check/cifar10.npz; "
                        f"--prepare copies {SHARED_DATA.relative_to(ROOT.parent)} there)")
    parser.add_argument("--cpu", action="store_true", help="dry path: the tiny preset on the CPU (no GPU needed)")
    parser.add_argument("--no-install", action="store_true", help="use the keras and snakemake already installed")
    parser.add_argument("--backend", default="jax", help="KERAS_BACKEND of every job (default jax)")
    parser.add_argument("--only", choices=["a", "b"], help="run one of the two experiments")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_PEAK_TFLOPS,
                        help="the GPU's dense bf16 peak in TFLOP/s (default %(default)g, H100/H200 SXM)")
    parser.add_argument("--precision", default="mixed_bfloat16",
                        help="train.precision (default mixed_bfloat16, what the bf16 peak is for; auto: float32 "
                        "on a GPU)")
    parser.add_argument("--jobs-per-gpu", type=int, default=3,
                        help="GPU jobs at once (default 3; 1: one at a time, each job's figures alone)")
    parser.add_argument("--limit-a", type=float, default=300, help="seconds for (a) before it is stopped")
    parser.add_argument("--limit-b", type=float, default=150, help="seconds for (b) before it is stopped")
    parser.add_argument("--reference-epochs", type=int, help="size (a) down: fewer epochs than the reference's 5")
    parser.add_argument("--reference-train-size", type=int, help="size (a) down: fewer than 10,000 images")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--folder", type=Path, default=FOLDER, help="the carried folder (default .gpu-check)")
    parser.add_argument("--workdir", type=Path, default=ROOT, help="where results/<run>/ go (default: here)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and the figures (.json) here")
    args = parser.parse_args(argv)

    folder, workdir = args.folder.resolve(), args.workdir.resolve()
    data = (args.data or folder / "cifar10.npz").resolve()
    if args.prepare:
        prepare(folder, args.data or SHARED_DATA, args.python_version)
        return 0
    env = {**os.environ, "KERAS_BACKEND": args.backend, "PYTHONUNBUFFERED": "1"}
    print(f"Python {sys.version.split()[0]} at {sys.executable}; backend {args.backend}", flush=True)
    if shutil.which("nvidia-smi"):
        print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip(), flush=True)
    if not args.no_install:
        start = time.monotonic()
        site = install(folder)
        env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(site)
        print(f"installed {len(list((folder / 'wheels').glob('*.whl')))} wheels in {time.monotonic() - start:.0f} s",
              flush=True)
    # JAX: memory on demand, so that jobs share the GPU and nvidia-smi shows what each used (not a 75 % block);
    # a compilation cache shared by the jobs (the evaluations of one architecture compile the same program).
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder / "jax-cache"))
    if args.cpu:
        env.setdefault("JAX_PLATFORMS", "cpu")
        env["CUDA_VISIBLE_DEVICES"] = ""  # a machine with a GPU still runs the dry path on its CPU

    real = {"data": {"source": "npz", "path": str(data)}}
    if args.cpu:  # tiny sizes, no teachers (a baseline student: a test's minute); (b) reads --data if given
        small = {"teachers": {"frozen": None, "finetuned": None}}
        experiments = [("a", "gpu-check-a", ["tiny"], small, args.limit_a),
                       ("b", "gpu-check-b", ["tiny"], {**small, **(real if args.data else {})}, args.limit_b)]
    else:
        if not data.is_file():
            sys.exit(f"no data at {data}: run --prepare here and carry .gpu-check/, or give --data")
        reference = {"train": {"precision": args.precision}, **real}
        if args.reference_epochs:
            reference["train"]["epochs"] = args.reference_epochs
        if args.reference_train_size:
            reference["data"] = {**reference["data"], "train_size": args.reference_train_size}
        experiments = [("a", "gpu-reference", ["offline"], reference, args.limit_a),
                       ("b", "gpu-quick", ["quick", "offline"], {"train": {"precision": args.precision}, **real},
                        args.limit_b)]
    labels = {"a": "(a) reference", "b": "(b) quick"}
    runs = []
    for key, name, presets, settings, limit in experiments:
        if args.only and key != args.only:
            continue
        with GpuMemory() as memory:
            run = run_workflow(folder, workdir, name, presets, settings, args.cores, limit, env,
                               None if args.cpu else args.jobs_per_gpu)
        run["rows"] = job_rows(workdir / "results" / name, memory.peaks, args.peak_tflops)
        run["label"], run["gpu_total_mib"] = labels[key], memory.total_peak or None
        run["unfinished"] = unfinished_jobs(folder, workdir, name, env, presets) if run["stopped"] else 0
        runs.append(run)
        print("\n" + table([run], args.peak_tflops), flush=True)  # in case the whole command is cut later
        if args.out:
            write_out(args.out, runs, args.peak_tflops, folder, workdir)
    if len(runs) > 1:
        print("\n" + table(runs, args.peak_tflops), flush=True)
    return 0 if all(run["returncode"] == 0 for run in runs) else 1


def write_out(out: Path, runs: list[dict], peak_tflops: float, folder: Path, workdir: Path) -> None:
    """The table, its figures and the jobs' logs (Snakemake's and each job's), for a machine that is given back."""
    import tarfile

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table(runs, peak_tflops))
    out.with_suffix(".json").write_text(json.dumps(runs, indent=1, default=str) + "\n")
    with tarfile.open(out.with_name(f"{out.stem}-logs.tar.gz"), "w:gz") as archive:
        for run in runs:
            log = folder / f"{run['name']}.snakemake.log"
            if log.is_file():
                archive.add(log, arcname=log.name)
            logs = workdir / "results" / run["name"] / "logs"
            if logs.is_dir():
                archive.add(logs, arcname=f"{run['name']}/logs")


if __name__ == "__main__":
    sys.exit(main())
