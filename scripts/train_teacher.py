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
    parser.add_argument("--cache-features", action=argparse.BooleanOptionalAction, default=False,
                        help="frozen only: run the backbone once per image and train the head on those "
                             "features (--no-cache-features: the backbone runs in every epoch)")
    cli.add_training_args(parser)
    args = parser.parse_args()
    weights = None if args.weights.lower() in ("none", "null") else args.weights

    from kdbench import datasets, hardware, models, teacher, train

    train.configure_runtime(args.threads, args.seed, args.deterministic)
    precision = hardware.set_precision(args.precision)
    arrays = datasets.load_dataset(args.data)
    print(f"training {args.kind} teacher: {len(arrays['x_train'])} images, {32 * args.upsample} px, "
          f"{args.epochs} epochs, weights={weights}, {precision}, "
          f"{'cached backbone features' if args.cache_features else 'backbone in every step'}", flush=True)
    strategy = train.distribution_strategy()
    with strategy.scope():  # models and optimizer state are created inside it (mirrored over GPUs)
        model = models.build_teacher(weights, args.upsample, frozen=args.kind == "frozen")
        history, feature_seconds = teacher.fit_teacher(
            model, models.preprocess(arrays["x_train"]), arrays["y_train"], upsample=args.upsample,
            learning_rate=args.learning_rate, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
            resume_dir=args.resume_dir, cache_features=args.cache_features,
            jit_compile=hardware.jit_compile_flag(args.jit_compile),
            run_key=cli.resume_key(args, args.data, weights))
    info = cli.training_info(args, kind=f"teacher-{args.kind}", weights=str(weights), precision=precision,
                             cache_features=args.cache_features, feature_seconds=feature_seconds,
                             replicas=strategy.num_replicas_in_sync)
    train.save_training_outputs(model, history, args.model_out, args.history_out, args.info_out, info,
                                args.resume_dir)


if __name__ == "__main__":
    cli.run(main)
