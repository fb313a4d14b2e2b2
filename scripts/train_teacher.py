#!/usr/bin/env python
"""Train a teacher: a pretrained backbone (frozen, with only its MLP head training, or fine-tuned) + head, or
any other architecture (the CIFAR zoo's resnet56, ...) end to end from random initialisation, as a student."""

import argparse

from kdbench import cli, hardware, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--architecture", default="resnet50",
                        help="an architecture of kdbench.architectures; one without backbone + head (not TEACHER) "
                             "takes --weights none --train-backbone --no-cache-features")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet, none (random init) or a path to the backbone's no-top .h5 file")
    parser.add_argument("--train-backbone", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-train-backbone: the backbone (BatchNorm too) is frozen and only the head trains")
    parser.add_argument("--cache-features", action=argparse.BooleanOptionalAction, default=False,
                        help="frozen backbone only: run it once per image and train the head on those "
                             "features (--no-cache-features: the backbone runs in every epoch)")
    parser.add_argument("--augment", action="store_true",
                        help="train on augmented views (4 px padded random crop, horizontal flip), image i's view "
                             "in epoch e fixed by (--augment-seed, e, i), as the students' (kdbench.augment)")
    parser.add_argument("--augment-seed", type=cli.non_negative_int, default=0, help="the seed of the views")
    cli.add_training_args(parser)
    args = parser.parse_args()
    runtime.select(None, args.deterministic)  # KERAS_BACKEND (the workflow's train.backend), before keras
    hardware.claim_gpus_if_asked()  # before the backend sees a GPU: one free GPU of this machine, locked
    weights = None if args.weights.lower() in ("none", "null") else args.weights

    from kdbench import architectures, augment, datasets, recipe, teacher, train

    architectures.get(args.architecture)  # an unknown name fails before the backend starts work
    teacher.check_options(args.architecture, weights, args.train_backbone, args.cache_features)  # and options
    trained = architectures.teacher_training(args.architecture, args.train_backbone)
    train.configure_runtime(args.threads, args.seed, args.deterministic)
    precision = hardware.set_precision(args.precision)
    arrays = datasets.load_dataset(args.data)
    x_train = arrays["x_train"].astype("float32")
    print(f"training teacher ({args.architecture}, {trained}): "
          f"{len(x_train)} images, {32 * args.upsample} px, {cli.count(args.epochs, 'epoch')}, weights={weights}, "
          f"{precision}, {'cached backbone features' if args.cache_features else 'backbone in every step'}"
          f"{f', augmented (seed {args.augment_seed})' if args.augment else ''}; "
          f"{args.optimizer}, {args.schedule} learning rate, ema {args.ema}, {args.checkpoint} epoch kept; "
          f"device: {train.device_description()}", flush=True)
    views = augment.EpochViews(args.augment_seed) if args.augment else None  # outside the strategy's scope
    test = (arrays["x_test"].astype("float32"), arrays["y_test"]) if args.test_every_epoch else None
    strategy = train.distribution_strategy()
    with strategy.scope():  # models and optimizer state are created inside it (mirrored over GPUs)
        model = teacher.build(args.architecture, len(arrays["class_names"]), args.upsample, weights=weights,
                              train_backbone=args.train_backbone, cache_features=args.cache_features,
                              bn_momentum=args.bn_momentum)
        history, feature_seconds, kept = teacher.fit_teacher(
            model, args.architecture, x_train, arrays["y_train"], learning_rate=args.learning_rate,
            batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, resume_dir=args.resume_dir,
            cache_features=args.cache_features, jit_compile=hardware.jit_compile_flag(args.jit_compile),
            run_key={**cli.resume_key(args, args.data, weights),
                     **({"views": augment.VERSION} if args.augment else {})},
            validation=datasets.validation_split(arrays),
            tensorboard_dir=args.tensorboard_dir, optimizer=recipe.from_args(args, len(x_train)),
            checkpoint=args.checkpoint, views=views, test=test)
    info = cli.training_info(args, role="teacher", architecture=args.architecture, weights=str(weights),
                             train_backbone=args.train_backbone, precision=precision,
                             cache_features=args.cache_features, feature_seconds=feature_seconds,
                             replicas=strategy.num_replicas_in_sync, augment=args.augment,
                             **({"augment_seed": args.augment_seed} if args.augment else {}), **kept)
    train.save_training_outputs(model, history, args.model_out, args.history_out, args.info_out, info,
                                args.resume_dir)


if __name__ == "__main__":
    cli.run(main)
