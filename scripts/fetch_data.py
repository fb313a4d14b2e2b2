#!/usr/bin/env python
"""Fetch the CIFAR-10 slices the benchmark uses and store them as one .npz (uint8 images, int labels)."""

import argparse

from kdbench import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"],
                        help="which data set (its classes, official archive and checksum)")
    parser.add_argument("--source", required=True, choices=["download", "archive", "npz", "synthetic"],
                        help="download: Keras downloader; archive: cifar-10-python.tar.gz or its extracted "
                             "folder; npz: x_train/y_train/x_test/y_test arrays; synthetic: generated")
    parser.add_argument("--path", help="file or folder for --source archive/npz")
    parser.add_argument("--train-size", type=cli.positive_int, required=True)
    parser.add_argument("--val-size", type=cli.non_negative_int, default=0,
                        help="validation images: the official training images right after the first --train-size")
    parser.add_argument("--test-size", type=cli.positive_int, required=True)
    parser.add_argument("--no-verify-checksum", action="store_true",
                        help="accept an archive whose sha256 differs from the official one")
    parser.add_argument("--seed", type=int, default=0, help="seed for --source synthetic")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--info-out", required=True, help="output JSON describing where the data came from")
    args = parser.parse_args()

    from kdbench.datasets import fetch, save_dataset
    from kdbench.io import write_json

    arrays, provenance = fetch(args.dataset, args.source, args.path, args.train_size, args.test_size, args.val_size,
                               verify_checksum=not args.no_verify_checksum, seed=args.seed)
    save_dataset(args.out, arrays, provenance["class_names"])
    write_json(args.info_out, provenance)
    print(f"wrote {args.out}: {len(arrays['x_train'])} train / {len(arrays['x_val'])} validation / "
          f"{len(arrays['x_test'])} test images "
          f"from {args.source}")


if __name__ == "__main__":
    cli.run(main)
