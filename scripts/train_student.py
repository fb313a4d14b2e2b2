#!/usr/bin/env python
"""Train a ResNet18 student: from scratch (baseline) or distilled from a teacher (Hinton KD on logits)."""

import argparse

from kdbench import KdbenchError, cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    teacher = parser.add_mutually_exclusive_group()
    teacher.add_argument("--teacher-logits", help="cached teacher logits on the training images (.npy)")
    teacher.add_argument("--teacher-model", help="teacher .keras checkpoint, run online on every batch")
    parser.add_argument("--teacher-name", help="teacher label recorded with the run (e.g. frozen)")
    parser.add_argument("--alpha", type=cli.fraction, default=0.3, help="weight of the hard-label loss (0 to 1)")
    parser.add_argument("--temperature", type=cli.positive_float, default=7.0,
                        help="softmax temperature of the soft loss (> 0)")
    parser.add_argument("--augment", action="store_true",
                        help="random flips and shifts of the training images (needs --teacher-model to distil)")
    cli.add_training_args(parser)
    args = parser.parse_args()
    distilling = bool(args.teacher_logits or args.teacher_model)
    if args.augment and args.teacher_logits:
        raise KdbenchError("cached teacher logits were computed on unaugmented images, so they do not match "
                           "augmented ones: distil with --teacher-model (distillation.soft_targets: online) "
                           "or drop --augment")

    import keras

    from kdbench import datasets, hardware, models, train
    from kdbench.distill import HARD_LOSS, Distiller, load_teacher_logits

    train.configure_runtime(args.threads, args.seed, args.deterministic)
    precision = hardware.set_precision(args.precision)
    jit_compile = hardware.jit_compile_flag(args.jit_compile)
    arrays = datasets.load_dataset(args.data)
    x_train, y_train = models.preprocess(arrays["x_train"]), arrays["y_train"]
    strategy = train.distribution_strategy()
    with strategy.scope():  # models and optimizer state are created inside it (mirrored over GPUs)
        student = models.build_resnet18(args.upsample, name="student")
        if not distilling:
            model, targets = student, y_train
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=HARD_LOSS,
                          metrics=["accuracy"], jit_compile=jit_compile)
        else:
            teacher_model = models.load_model(args.teacher_model) if args.teacher_model else None
            targets = {"label": y_train}
            if args.teacher_logits:  # with --teacher-model the teacher runs on every batch instead
                targets["teacher_logits"] = load_teacher_logits(args.teacher_logits, len(x_train))
            model = Distiller(student, args.alpha, args.temperature, teacher=teacher_model)
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), jit_compile=jit_compile)
    train_ds = train.make_dataset(x_train, targets, args.batch_size, shuffle=True, seed=args.seed,
                                  augment=args.augment)
    mode = (f"KD alpha={args.alpha} T={args.temperature} "
            f"({'cached' if args.teacher_logits else 'online'} teacher)") if distilling else "baseline"
    print(f"training student ({mode}): {len(x_train)} images, {32 * args.upsample} px, {args.epochs} epochs, "
          f"{precision}{', augmented' if args.augment else ''}", flush=True)
    history = train.fit_resumable(model, train_ds, args.epochs, args.resume_dir, run_key=cli.resume_key(
        args, args.data, args.teacher_logits, args.teacher_model))
    info = cli.training_info(args, kind="student-kd" if distilling else "student-baseline", precision=precision,
                             augment=args.augment, replicas=strategy.num_replicas_in_sync)
    if distilling:
        info.update(teacher=args.teacher_name, alpha=args.alpha, temperature=args.temperature,
                    soft_targets="cached" if args.teacher_logits else "online")
    train.save_training_outputs(student, history, args.model_out, args.history_out, args.info_out, info,
                                args.resume_dir)


if __name__ == "__main__":
    cli.run(main)
