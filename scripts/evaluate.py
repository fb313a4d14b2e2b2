#!/usr/bin/env python
"""Evaluate one trained model on the test images with scikit-learn metrics."""

import argparse

from kdbench import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help=".npz written by fetch_data.py")
    parser.add_argument("--model", required=True, help=".keras checkpoint")
    parser.add_argument("--train-info", required=True, help="JSON written by the model's training step")
    parser.add_argument("--name", required=True, help="model name shown in the summary")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128)
    parser.add_argument("--threads", type=cli.positive_int, default=1)
    parser.add_argument("--metrics-out", required=True, help="output JSON")
    parser.add_argument("--per-class-out", required=True, help="output CSV: classification report")
    parser.add_argument("--confusion-out", required=True, help="output CSV: confusion matrix")
    args = parser.parse_args()

    from kdbench import data, evaluate, models, train
    from kdbench.io import atomic_path, read_json, write_json

    train.configure_runtime(args.threads, seed=0)
    arrays = data.load_dataset(args.data)
    model = models.load_model(args.model)
    logits = model.predict(data.preprocess(arrays["x_test"]), batch_size=args.batch_size, verbose=0)
    metrics = evaluate.classification_metrics(arrays["y_test"], logits)
    for table, path in ((evaluate.per_class_report(arrays["y_test"], logits), args.per_class_out),
                        (evaluate.confusion_table(arrays["y_test"], logits), args.confusion_out)):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=table.index.name is not None)
    write_json(args.metrics_out, {"model": args.name, **metrics, "train": read_json(args.train_info)})
    print(f"{args.name}: test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, "
          f"macro F1 {metrics['f1_macro']:.4f}")


if __name__ == "__main__":
    cli.run(main)
