#!/usr/bin/env python
"""Training speed per Keras backend, side by side in one run: the same model, data, batch and recipe, trained
for a few epochs on TensorFlow, JAX and PyTorch (each that this checkout has: the current Python where it has
the backend, else .venv / .venv-jax / .venv-torch), one backend after the other so they never share the cores.

The first epoch includes tracing and compiling the step; the table's steady-state figure is the best of the
later epochs. The input pipeline is each backend's own (kdbench.runtime.make_dataset: tf.data on TensorFlow,
NumPy batches elsewhere), as a workflow job runs it.

    python benchmarks/backends.py                       # resnet20, 1,000 synthetic images, 3 epochs
    python benchmarks/backends.py --architecture resnet18-cifar --images 500
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdbench import runtime  # noqa: E402

# One backend's run: prints a JSON line {"backend", "version", "device", "epoch_seconds": [...]}.
CHILD = """
import json, sys, time
from kdbench import runtime
runtime.select(None)
import keras, numpy as np
from kdbench import architectures, train
architecture, images, epochs, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
train.configure_runtime(threads, seed=0)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (images, 32, 32, 3)).astype("float32")
y = rng.integers(0, 10, images)
model = architectures.build(architecture, 10, 1)
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        seconds.append(time.perf_counter() - self.start)

seconds = []
model.fit(train.make_dataset(x, y, batch, shuffle=True, seed=0), epochs=epochs, callbacks=[Timer()], verbose=0)
versions = runtime.versions()
print(json.dumps({"backend": runtime.name(), "version": versions[runtime.name()], "keras": versions["keras"],
                  "device": runtime.device_description(), "epoch_seconds": seconds}))
"""


def interpreters() -> dict[str, str]:
    """backend -> a Python that has it."""
    found = {}
    for backend in runtime.BACKENDS:
        probe = subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True)
        venv = ROOT / (".venv" if backend == "tensorflow" else f".venv-{backend}") / "bin" / "python"
        if probe.returncode == 0:
            found[backend] = sys.executable
        elif venv.exists():
            found[backend] = str(venv)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="resnet20", help="a kdbench.architectures name (32 px input)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: the first includes compiling")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="TensorFlow's and PyTorch's threads (JAX's CPU thread pool takes every core)")
    parser.add_argument("--backends", default=",".join(runtime.BACKENDS), help="comma-separated")
    args = parser.parse_args()
    found = interpreters()
    rows = []
    for backend in args.backends.split(","):
        if backend not in found:
            print(f"{backend}: not installed here (make setup BACKEND={backend}); left out", flush=True)
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run([found[backend], "-c", CHILD, args.architecture, str(args.images), str(args.epochs),
                                 str(args.batch_size), str(args.threads)], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{backend}: failed\n{result.stderr[-2000:]}", flush=True)
            continue
        record = json.loads(result.stdout.strip().splitlines()[-1])
        first, steady = record["epoch_seconds"][0], min(record["epoch_seconds"][1:])
        rows.append((backend, record, first, steady))
        print(f"{backend} {record['version']}: first epoch {first:.1f} s, steady {steady:.1f} s", flush=True)
    if not rows:
        return
    base = dict((backend, steady) for backend, _, _, steady in rows).get("tensorflow", rows[0][3])
    print(f"\n{args.architecture}, {args.images:,} images of 32 px, batch {args.batch_size}, {args.epochs} epochs; "
          f"{rows[0][1]['device']}, {os.cpu_count()} cores, Keras {rows[0][1]['keras']}\n")
    print("| backend | first epoch (s) | steady epoch (s) | images/s | steady time vs TensorFlow |")
    print("|---|---|---|---|---|")
    for backend, record, first, steady in rows:
        print(f"| {runtime.LABELS[backend]} {record['version']} | {first:.1f} | {steady:.1f} | "
              f"{args.images / steady:.0f} | {steady / base:.2f}x |")


if __name__ == "__main__":
    main()
