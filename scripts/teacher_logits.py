#!/usr/bin/env python
"""Compute a teacher's logits on the training images once, for every distillation run to reuse.

With --augment, on every epoch's augmented views (kdbench.augment: image i's view in epoch e is fixed by
--augment-seed, e and i), an array of shape (epochs, training images, classes): each epoch's soft targets,
shared by every logit method, setting and seed that trains on those views.
"""

import argparse

from kdbench import cli, hardware, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=".npz written by fetch_data.py")
    parser.add_argument("--model", required=True, help="teacher .keras checkpoint")
    parser.add_argument("--augment", action="store_true",
                        help="logits on each epoch's augmented views instead of the images as they are")
    parser.add_argument("--augment-seed", type=cli.non_negative_int, default=0,
                        help="the seed of the views (the students' --augment-seed)")
    parser.add_argument("--epochs", type=cli.positive_int, default=1,
                        help="with --augment: the epochs the students train (one set of views each)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128)
    parser.add_argument("--threads", type=cli.positive_int, default=1)
    parser.add_argument("--out", required=True,
                        help="output .npy: (training images, classes), or (epochs, training images, classes)")
    args = parser.parse_args()
    runtime.select(None)  # KERAS_BACKEND (the workflow's train.backend), before keras is imported
    hardware.claim_gpus_if_asked()  # before the backend sees a GPU: one free GPU of this machine, locked

    import numpy as np

    from kdbench import architectures, augment, datasets, evaluate, train
    from kdbench.io import atomic_path

    train.configure_runtime(args.threads, seed=0)
    teacher = architectures.load_model(args.model)
    x_train = datasets.load_dataset(args.data)["x_train"].astype("float32")
    if args.augment:
        logits = np.stack([teacher.predict(augment.epoch_views(x_train, args.augment_seed, epoch, args.batch_size),
                                           verbose=2) for epoch in range(args.epochs)])
    else:
        logits = teacher.predict(x_train, batch_size=args.batch_size, verbose=2)
    evaluate.check_finite(logits, args.model)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, logits.astype(np.float32))
    views = (f" on {cli.count(args.epochs, 'epoch')} of augmented views (seed {args.augment_seed})"
             if args.augment else "")
    print(f"wrote {args.out}: logits of {x_train.shape[0]} training images{views}")


if __name__ == "__main__":
    cli.run(main)
