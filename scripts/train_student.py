#!/usr/bin/env python
"""Train a student: from scratch (baseline) or distilled from a teacher with a registered KD method."""

import argparse
import json
from pathlib import Path

from kdbench import KdbenchError, cli, hardware, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--architecture", default="resnet18", help="a kdbench.architectures name")
    parser.add_argument("--method", help="distillation method (kdbench.methods); none: the baseline")
    parser.add_argument("--settings", default="{}", help="the method's settings as JSON, e.g. "
                        "'{\"alpha\": 0.3, \"temperature\": 7.0}' (missing ones take the method's defaults)")
    teacher = parser.add_mutually_exclusive_group()
    teacher.add_argument("--teacher-logits", help="cached teacher logits on the training images (.npy)")
    teacher.add_argument("--teacher-model", help="teacher .keras checkpoint, run online on every batch")
    parser.add_argument("--teacher-architecture", help="the teacher's architecture (feature methods tap its stages)")
    parser.add_argument("--augment", action="store_true",
                        help="train on augmented views (4 px padded random crop, horizontal flip), image i's view "
                             "in epoch e fixed by (--augment-seed, e, i); cached --teacher-logits must then hold "
                             "the teacher's logits on every epoch's views (teacher_logits.py --augment)")
    parser.add_argument("--augment-seed", type=cli.non_negative_int, default=0,
                        help="the seed of the augmented views; independent of --seed, so that every run of a "
                             "teacher sees the same views")
    cli.add_training_args(parser)
    args = parser.parse_args()
    runtime.select(None, args.deterministic)  # KERAS_BACKEND (the workflow's train.backend), before keras
    hardware.claim_gpus_if_asked()  # before the backend sees a GPU: one free GPU of this machine, locked
    if args.method and not (args.teacher_logits or args.teacher_model):
        raise KdbenchError(f"--method {args.method} needs --teacher-logits or --teacher-model")

    import keras

    from kdbench import architectures, augment, datasets, distill, methods, recipe, train

    architectures.get(args.architecture)  # unknown names fail before TensorFlow starts work
    settings = {}
    if args.method:
        try:
            given = json.loads(args.settings)
        except json.JSONDecodeError as err:
            raise KdbenchError(f"--settings is not JSON ({err}): {args.settings}") from err
        problems = methods.settings_errors(args.method, given) if isinstance(given, dict) else ["not a JSON object"]
        if problems or any(isinstance(value, list) for value in given.values()):
            raise KdbenchError(f"--settings for {args.method}: {'; '.join(problems) or 'one value per setting'}")
        settings = methods.setting_grid(args.method, given)[0]
        if methods.get(args.method).NEEDS == "features" and not args.teacher_model:
            raise KdbenchError(f"method {args.method} needs the teacher's features: pass --teacher-model")
    train.configure_runtime(args.threads, args.seed, args.deterministic)
    precision = hardware.set_precision(args.precision)
    jit_compile = hardware.jit_compile_flag(args.jit_compile)
    arrays = datasets.load_dataset(args.data)
    x_train, y_train = arrays["x_train"].astype("float32"), arrays["y_train"]
    validation = datasets.validation_split(arrays)
    if args.checkpoint == "best" and validation is None:
        raise KdbenchError("--checkpoint best keeps the epoch with the best validation accuracy, and the data has "
                           "no validation split: give it one (data.val_size > 0) or use --checkpoint last")
    epoch_targets = {}
    if args.teacher_logits:  # with --teacher-model the teacher runs on every batch instead
        logits = distill.load_teacher_logits(args.teacher_logits, len(x_train), len(arrays["class_names"]),
                                             epochs=args.epochs if args.augment else None)
        if args.augment:
            epoch_targets["teacher_logits"] = logits
    views = augment.EpochViews(args.augment_seed, epoch_targets) if args.augment else None
    strategy = train.distribution_strategy()
    with strategy.scope():  # models and optimizer state are created inside it (mirrored over GPUs)
        student = architectures.build(args.architecture, len(arrays["class_names"]), args.upsample, name="student",
                                      bn_momentum=args.bn_momentum)
        initial_weights = train.weights_digest(student)  # same seed, same architecture: same start, paired runs
        if not args.method:
            model, targets = student, y_train
            model.compile(optimizer=recipe.from_args(args, len(x_train)),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"], jit_compile=jit_compile)
        else:
            teacher_model = architectures.load_model(args.teacher_model) if args.teacher_model else None
            targets = {"label": y_train}
            if args.teacher_logits and not args.augment:  # augmented: the epoch's row joins in the pipeline
                targets["teacher_logits"] = logits
            model = distill.Distiller(student, args.method, settings, teacher=teacher_model,
                                      student_architecture=args.architecture,
                                      teacher_architecture=args.teacher_architecture)
            model.compile(optimizer=recipe.from_args(args, len(x_train)), jit_compile=jit_compile)
    train_ds = train.make_dataset(x_train, targets, args.batch_size, shuffle=True, seed=args.seed, views=views)
    mode = (f"{args.method} {json.dumps(settings)} ({'cached' if args.teacher_logits else 'online'} teacher)"
            if args.method else "baseline")
    print(f"training student {args.architecture} ({mode}): {len(x_train)} images, {32 * args.upsample} px, "
          f"{cli.count(args.epochs, 'epoch')}, {precision}"
          f"{f', augmented (seed {args.augment_seed})' if args.augment else ''}; "
          f"{args.optimizer}, {args.schedule} learning rate, ema {args.ema}, {args.checkpoint} epoch kept; "
          f"device: {train.device_description()}", flush=True)
    callbacks = [views] if views else []  # first: it sets the epoch before the epoch's data is drawn
    callbacks += [train.ValidationMetrics(student, *validation)] if validation else []
    if args.test_every_epoch:
        callbacks.append(train.ValidationMetrics(student, arrays["x_test"].astype("float32"), arrays["y_test"],
                                                 prefix="test"))
    best = train.BestEpoch(student, Path(args.resume_dir) / "best") if args.checkpoint == "best" else None
    callbacks += [best] if best else []
    if args.method:
        callbacks.append(distill.EpochCounter())
    history = train.fit_resumable(model, train_ds, args.epochs, args.resume_dir, extra_callbacks=callbacks,
                                  tensorboard_dir=args.tensorboard_dir,
                                  run_key={**cli.resume_key(args, args.data, args.teacher_logits, args.teacher_model),
                                           **({"views": augment.VERSION} if args.augment else {})})
    kept = best.restore() if best else {"kept_epoch": int(len(history))}
    info = cli.training_info(args, role="distilled" if args.method else "baseline", architecture=args.architecture,
                             initial_weights_sha256=initial_weights,
                             precision=precision, augment=args.augment, replicas=strategy.num_replicas_in_sync,
                             **({"augment_seed": args.augment_seed} if args.augment else {}), **kept)
    if args.method:
        info.update(method=args.method, settings=settings,
                    soft_targets="cached" if args.teacher_logits else "online")
    train.save_training_outputs(student, history, args.model_out, args.history_out, args.info_out, info,
                                args.resume_dir)


if __name__ == "__main__":
    cli.run(main)
