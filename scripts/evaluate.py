#!/usr/bin/env python
"""Evaluate one trained model: scikit-learn metrics on validation and test images, and its running cost."""

import argparse

from kdbench import cli, hardware, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help=".npz written by fetch_data.py")
    parser.add_argument("--model", required=True, help=".keras checkpoint")
    parser.add_argument("--train-info", required=True, help="JSON written by the model's training step")
    parser.add_argument("--train-benchmark", help="Snakemake benchmark TSV of the training job (peak memory)")
    parser.add_argument("--name", required=True, help="model name shown in the summary")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128)
    parser.add_argument("--throughput-batch", type=cli.positive_int, default=256,
                        help="batch size for the throughput measurement")
    parser.add_argument("--threads", type=cli.positive_int, default=1)
    parser.add_argument("--metrics-out", required=True, help="output JSON")
    parser.add_argument("--per-class-out", required=True, help="output CSV: classification report (test)")
    parser.add_argument("--confusion-out", required=True, help="output CSV: confusion matrix (test)")
    parser.add_argument("--confusion-png", required=True, help="output PNG: confusion matrix (test)")
    parser.add_argument("--predictions-out", required=True, help="output CSV: label and prediction per test image")
    parser.add_argument("--flops-cache", help="folder caching FLOP counts per architecture and input size")
    parser.add_argument("--logits-out", help="output .npy: the model's logits on the test images")
    parser.add_argument("--teacher-test-logits", help="a distilled student's teacher's test logits (.npy, written "
                        "by the teacher's evaluate step): adds agreement with the teacher to the metrics")
    args = parser.parse_args()
    runtime.select(None)  # KERAS_BACKEND (the workflow's train.backend), before keras is imported
    hardware.claim_gpus_if_asked()  # before the backend sees a GPU: one free GPU of this machine, locked

    import numpy as np
    import pandas as pd

    from kdbench import architectures, cost, datasets, evaluate, plots, train
    from kdbench.io import atomic_path, read_json, write_json

    train.configure_runtime(args.threads, seed=0)
    train_info = read_json(args.train_info)  # first: fail before any output is written
    arrays = datasets.load_dataset(args.data)
    model = architectures.load_model(args.model)

    def logits_on(split: str):
        logits = model.predict(arrays[f"x_{split}"].astype("float32"), batch_size=args.batch_size, verbose=0)
        return evaluate.check_finite(logits, args.model)

    labels, logits = arrays["y_test"], logits_on("test")
    metrics = {"model": args.name, "train": train_info,
               "test": evaluate.classification_metrics(labels, logits)}
    if len(arrays.get("x_val", [])):
        metrics["val"] = evaluate.classification_metrics(arrays["y_val"], logits_on("val"))
    if args.teacher_test_logits:
        metrics["agreement"] = evaluate.agreement(logits, np.load(args.teacher_test_logits, allow_pickle=False))
    confusion = evaluate.confusion_table(labels, logits, arrays["class_names"])
    with atomic_path(args.per_class_out) as tmp:
        evaluate.per_class_report(labels, logits, arrays["class_names"]).to_csv(tmp, index=False)
    with atomic_path(args.confusion_out) as tmp:
        confusion.to_csv(tmp)
    if args.logits_out:
        with atomic_path(args.logits_out) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, logits.astype(np.float32))
    with atomic_path(args.predictions_out) as tmp:
        pd.DataFrame({"label": labels, "prediction": logits.argmax(axis=1)}).to_csv(tmp, index_label="image")
    plots.confusion_matrix_png(confusion, f"{args.name}: test accuracy {100 * metrics['test']['accuracy']:.2f}%",
                               args.confusion_png)
    metrics["cost"] = cost.model_cost(model, args.throughput_batch, cache_dir=args.flops_cache)
    if args.train_benchmark:
        metrics["cost"]["train_peak_rss_mb"] = evaluate.peak_memory_mb(args.train_benchmark)
    write_json(args.metrics_out, metrics)
    print(f"{args.name}: test accuracy {metrics['test']['accuracy']:.4f}, loss {metrics['test']['loss']:.4f}, "
          f"macro F1 {metrics['test']['f1_macro']:.4f}; {metrics['cost']['latency_ms']:.1f} ms per image")


if __name__ == "__main__":
    cli.run(main)
