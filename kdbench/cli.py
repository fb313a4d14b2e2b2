"""Shared plumbing for scripts/: quiet TensorFlow start-up and user errors without tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import glob
import math
import os
import signal
import sys
from typing import Callable


def _no_gpu_device_node() -> bool:
    """Linux without an NVIDIA device node (/dev/nvidia0, ...) nor WSL's GPU bridge (/dev/dxg): no GPU is
    reachable from this process, whatever libraries are installed."""
    return sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*") and not os.path.exists("/dev/dxg")


# Keep step logs readable: level 2 drops TensorFlow's info and warnings, errors still show. Where no GPU can
# exist, TensorFlow's CUDA probe logs "failed call to cuInit" at error level in every job; level 3 drops it
# there (and other C++ error lines with it: on a CPU a failure still raises a Python error). A value the user
# sets wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _no_gpu_device_node() else "2")

from kdbench import KdbenchError  # noqa: E402
from kdbench.hardware import JIT_COMPILE, PRECISIONS  # noqa: E402
from kdbench.io import no_space, no_space_message  # noqa: E402


class Stopped(KeyboardInterrupt):
    """SIGTERM (a cluster's walltime, Snakemake cancelling a job) raised in the main thread, like Ctrl-C."""


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def run(main: Callable[[], None]) -> None:
    """Run a script's main(); a KdbenchError becomes one 'error:' line and exit status 2.

    So does a full disk (ENOSPC) anywhere: 'error: no space left writing <path>'.
    SIGTERM and Ctrl-C unwind like an exception, so no output is left half written (see io.atomic_path)
    and training keeps its resume state (see train.fit_resumable): exit status 128 + signal number.
    """
    signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        main()
    except KdbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # a full disk under Keras, h5py or TensorFlow: one line, not a traceback
        full = no_space(err)
        if full is None:
            raise
        with contextlib.suppress(OSError):  # stderr may sit on the full disk too
            print(f"error: {no_space_message(full.filename or 'a file (the disk is full)')}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        signum = signal.SIGTERM if isinstance(err, Stopped) else signal.SIGINT
        print(f"stopped by {signal.Signals(signum).name}: files are only ever written whole; rerun the step "
              "(training resumes from its last finished epoch)", file=sys.stderr)
        sys.exit(128 + signum)


def _number(text: str, kind: type, allowed: str, ok: Callable[[float], bool]):
    """argparse type: parse `text` as `kind` and check it, with a message saying what is allowed."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number; allowed: {allowed}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {allowed}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, "an integer >= 1", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def positive_float(text: str) -> float:
    return _number(text, float, "a number > 0", lambda v: math.isfinite(v) and v > 0)


def fraction(text: str) -> float:
    return _number(text, float, "a number from 0 to 1", lambda v: 0 <= v <= 1)


def power_of_two(text: str) -> int:
    return _number(text, int, "1, 2, 4, 8 or 16", lambda v: v in (1, 2, 4, 8, 16))


def non_negative_float(text: str) -> float:
    return _number(text, float, "a number >= 0", lambda v: math.isfinite(v) and v >= 0)


def momentum(text: str) -> float:
    return _number(text, float, "a number from 0 up to (not including) 1", lambda v: 0 <= v < 1)


def ema_decay(text: str) -> float | None:
    """'none' (no weight averaging) or the moving average's decay, between 0 and 1 (e.g. 0.999)."""
    if text.lower() in ("none", "false", "off"):
        return None
    return _number(text, float, "none or a decay between 0 and 1 (e.g. 0.999)", lambda v: 0 < v < 1)


def milestones(text: str) -> list[int]:
    """'150,180,210' -> [150, 180, 210]: increasing epochs >= 1 ('' or 'none': no milestone)."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of epochs (e.g. 150,180,210)") \
            from None
    if values != sorted(set(values)) or values[0] < 1:
        raise argparse.ArgumentTypeError(f"'{text}': milestones must be increasing epochs >= 1")
    return values


def count(number: int, noun: str) -> str:
    """'1 epoch', '2 epochs': a count with its noun in the right number (nouns that take an s)."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def decay_factor(text: str) -> float:
    return _number(text, float, "a number > 0 and <= 1", lambda v: 0 < v <= 1)


def add_training_args(parser) -> None:
    """Flags every training script takes; rules pass each explicitly so Snakemake sees changes."""
    parser.add_argument("--data", required=True, help=".npz written by fetch_data.py")
    parser.add_argument("--upsample", type=power_of_two, default=8, help="x2 upsamplings inside the model: 8 = 256 px")
    parser.add_argument("--epochs", type=positive_int, required=True)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3,
                        help="the learning rate (with --schedule cosine: its peak, after the warm-up)")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd"],
                        help="adam (the reference's) or sgd with momentum and weight decay")
    parser.add_argument("--momentum", type=momentum, default=0.9, help="SGD's momentum (sgd only)")
    parser.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                        help="SGD's Nesterov momentum (default); --no-nesterov: plain momentum, PyTorch's default")
    parser.add_argument("--weight-decay", type=non_negative_float, default=5e-4,
                        help="SGD's weight decay (sgd only; 0: none), as --weight-decay-mode applies it")
    parser.add_argument("--weight-decay-mode", default="decoupled", choices=["decoupled", "l2"],
                        help="decoupled: Keras's (w -= lr x wd x w each step, outside the momentum); l2: "
                             "PyTorch's SGD (wd x w added to the gradient, through the momentum)")
    parser.add_argument("--schedule", default="constant", choices=["constant", "cosine", "multistep"],
                        help="constant learning rate (the reference's), cosine decay to 0 after a linear warm-up, "
                             "or multistep: x --lr-decay at each of --lr-milestones")
    parser.add_argument("--lr-milestones", type=milestones, default=[],
                        help="multistep only: comma-separated epochs at whose start the learning rate is "
                             "multiplied by --lr-decay, e.g. 150,180,210")
    parser.add_argument("--lr-decay", type=decay_factor, default=0.1, help="multistep only: the factor per milestone")
    parser.add_argument("--warmup-epochs", type=non_negative_int, default=1,
                        help="cosine only: epochs of linear warm-up from 0 to the learning rate")
    parser.add_argument("--ema", type=ema_decay, default=None,
                        help="none, or the decay of an exponential moving average of the weights (e.g. 0.999): the "
                             "averaged weights are validated every epoch and saved")
    parser.add_argument("--checkpoint", default="last", choices=["last", "best"],
                        help="the weights to save: the last epoch's, or those of the epoch with the best "
                             "validation accuracy (needs a validation split)")
    parser.add_argument("--test-every-epoch", action="store_true",
                        help="also score the test images after every epoch (history's test_accuracy, test_loss): the "
                             "papers' best-test-epoch figure, reported beside the honest one and never used to choose")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                        help="TensorFlow op determinism: same data, flags and seed on the same machine give "
                             "identical results (default: on)")
    parser.add_argument("--threads", type=positive_int, default=1, help="TensorFlow intra-op threads")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="Keras dtype policy; auto: mixed_bfloat16 on a CPU with native bf16, else float32")
    parser.add_argument("--jit-compile", default="auto", choices=list(JIT_COMPILE),
                        help="XLA compilation of the training step; auto: on a GPU only (Keras's default)")
    parser.add_argument("--bn-momentum", type=fraction, default=None,
                        help="momentum of every BatchNorm's moving statistics (default: the architecture's)")
    parser.add_argument("--tensorboard-dir", help="also write TensorBoard logs there (train.tensorboard: true)")
    parser.add_argument("--resume-dir", required=True,
                        help="scratch folder for resumable state (not a declared output)")
    parser.add_argument("--model-out", required=True, help="output .keras checkpoint")
    parser.add_argument("--history-out", required=True, help="output per-epoch CSV")
    parser.add_argument("--info-out", required=True, help="output JSON with run facts (time, params, device)")


def resume_key(args, *inputs: str | None) -> dict:
    """What a resumed run must share with the run it resumes: every flag but threads and outputs, and
    the sha256 of each input file (so changed data or teacher logits never continue stale weights)."""
    from kdbench.io import sha256_of
    from kdbench.hardware import resolve_precision  # the backend's GPU check (kdbench.runtime), not TensorFlow's

    flags = {key: value for key, value in vars(args).items()
             if key not in ("threads", "resume_dir", "model_out", "history_out", "info_out", "tensorboard_dir")}
    if "precision" in flags:  # 'auto' differs between machines: a resumed run must train in the same one
        flags["precision"] = resolve_precision(flags["precision"])
    return {"flags": flags, "inputs": {path: sha256_of(path) for path in inputs if path and os.path.isfile(path)}}


def training_info(args, **extra) -> dict:
    """The run facts every training script records next to its checkpoint."""
    return {"upsample": args.upsample, "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "optimizer": args.optimizer, "momentum": args.momentum,
            "weight_decay": args.weight_decay, "weight_decay_mode": args.weight_decay_mode, "nesterov": args.nesterov,
            "schedule": args.schedule, "warmup_epochs": args.warmup_epochs, "lr_milestones": args.lr_milestones,
            "lr_decay": args.lr_decay,
            "ema": args.ema, "checkpoint": args.checkpoint, "test_every_epoch": args.test_every_epoch,
            "seed": args.seed, "threads": args.threads,
            "jit_compile": args.jit_compile, "deterministic": args.deterministic,
            "precision_requested": args.precision, **extra}
