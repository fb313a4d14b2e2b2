"""Shared plumbing for scripts/: quiet TensorFlow start-up and user errors without tracebacks."""

from __future__ import annotations

import os
import sys
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep step logs readable; errors still show

from kdbench import KdbenchError  # noqa: E402
from kdbench.hardware import JIT_COMPILE, PRECISIONS  # noqa: E402


def run(main: Callable[[], None]) -> None:
    """Run a script's main(); a KdbenchError becomes one 'error:' line and exit status 2."""
    try:
        main()
    except KdbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; finished epochs are kept and a rerun resumes from them", file=sys.stderr)
        sys.exit(130)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def add_training_args(parser) -> None:
    """Flags every training script takes; rules pass each explicitly so Snakemake sees changes."""
    parser.add_argument("--data", required=True, help=".npz written by fetch_data.py")
    parser.add_argument("--upsample", type=int, default=8, help="x2 upsamplings inside the model: 8 = 256 px")
    parser.add_argument("--epochs", type=positive_int, required=True)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=1, help="TensorFlow intra-op threads")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="Keras dtype policy; auto: mixed_bfloat16 on a CPU with native bf16, else float32")
    parser.add_argument("--jit-compile", default="auto", choices=list(JIT_COMPILE),
                        help="XLA compilation of the training step; auto: on a GPU only (Keras's default)")
    parser.add_argument("--resume-dir", required=True,
                        help="scratch folder for resumable state (not a declared output)")
    parser.add_argument("--model-out", required=True, help="output .keras checkpoint")
    parser.add_argument("--history-out", required=True, help="output per-epoch CSV")
    parser.add_argument("--info-out", required=True, help="output JSON with run facts (time, params, device)")


def training_info(args, **extra) -> dict:
    """The run facts every training script records next to its checkpoint."""
    return {"upsample": args.upsample, "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "seed": args.seed, "threads": args.threads,
            "jit_compile": args.jit_compile, **extra}
