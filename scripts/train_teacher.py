#!/usr/bin/env python
"""Train a ResNet50 teacher (frozen ImageNet backbone + MLP head, or fully fine-tuned) on CIFAR-10."""

import argparse

from kdbench import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", required=True, choices=["frozen", "finetuned"],
                        help="frozen: only the head trains; finetuned: every layer trains")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet, none (random init) or a path to the ResNet50 no-top .h5 file")
    cli.add_training_args(parser)
    args = parser.parse_args()
    weights = None if args.weights.lower() in ("none", "null") else args.weights

    from kdbench import data, models, train
    import keras

    train.configure_runtime(args.threads, args.seed, args.deterministic)
    arrays = data.load_dataset(args.data)
    model = models.build_teacher(weights, args.upsample, frozen=args.kind == "frozen")
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    train_ds = train.make_dataset(data.preprocess(arrays["x_train"]), arrays["y_train"],
                                  args.batch_size, shuffle=True, seed=args.seed)
    print(f"training {args.kind} teacher: {len(arrays['x_train'])} images, {32 * args.upsample} px, "
          f"{args.epochs} epochs, weights={weights}", flush=True)
    history = train.fit_resumable(model, train_ds, args.epochs, args.resume_dir,
                                  run_key=cli.resume_key(args, args.data, weights))
    train.save_training_outputs(model, history, args.model_out, args.history_out, args.info_out,
                                cli.training_info(args, kind=f"teacher-{args.kind}", weights=str(weights)),
                                args.resume_dir)


if __name__ == "__main__":
    cli.run(main)
