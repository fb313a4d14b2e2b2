#!/usr/bin/env python
"""Compute a teacher's logits on the training images once, for every distillation run to reuse."""

import argparse

from kdbench import cli, hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help=".npz written by fetch_data.py")
    parser.add_argument("--model", required=True, help="teacher .keras checkpoint")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128)
    parser.add_argument("--threads", type=cli.positive_int, default=1)
    parser.add_argument("--out", required=True, help="output .npy of shape (training images, classes)")
    args = parser.parse_args()
    hardware.claim_gpus_if_asked()  # before TensorFlow sees a GPU: one free GPU of this machine, locked

    import numpy as np

    from kdbench import architectures, datasets, evaluate, train
    from kdbench.io import atomic_path

    train.configure_runtime(args.threads, seed=0)
    teacher = architectures.load_model(args.model)
    x_train = datasets.load_dataset(args.data)["x_train"].astype("float32")
    logits = teacher.predict(x_train, batch_size=args.batch_size, verbose=2)
    evaluate.check_finite(logits, args.model)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, logits.astype(np.float32))
    print(f"wrote {args.out}: logits of {len(logits)} training images")


if __name__ == "__main__":
    cli.run(main)
