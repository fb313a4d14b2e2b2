#!/usr/bin/env python
"""Aggregate every model's evaluation into results/summary.md, summary.csv and the summary figures."""

import argparse
import os
from pathlib import Path

from kdbench import cli


def by_model(paths: list[str]) -> dict[str, str]:
    """Map results/<stage>/<model>/<file> paths to their model name (the parent folder)."""
    return {Path(path).parent.name: path for path in paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files from evaluate.py")
    parser.add_argument("--predictions", nargs="+", required=True,
                        help="test_predictions.csv files from evaluate.py (for paired tests)")
    parser.add_argument("--histories", nargs="+", required=True, help="history.csv files from training")
    parser.add_argument("--data-info", required=True, help="JSON written by fetch_data.py")
    parser.add_argument("--title", default="kdbench run", help="run name shown in the header")
    parser.add_argument("--out", required=True, help="output markdown file")
    parser.add_argument("--csv-out", required=True, help="output CSV: one row per run plus mean/std rows")
    parser.add_argument("--accuracy-vs-cost", required=True, help="output PNG")
    parser.add_argument("--training-curves", required=True, help="output PNG")
    parser.add_argument("--sweep-heatmap", required=True, help="output PNG")
    args = parser.parse_args()

    import pandas as pd

    from kdbench import report
    from kdbench.io import atomic_path, read_json

    records = [read_json(path) for path in args.metrics]
    correct = {model: (table["label"] == table["prediction"]).to_numpy()
               for model, table in ((m, pd.read_csv(p)) for m, p in by_model(args.predictions).items())}
    histories = {model: pd.read_csv(path) for model, path in by_model(args.histories).items()}
    figure_paths = {"accuracy_vs_cost": args.accuracy_vs_cost, "training_curves": args.training_curves,
                    "sweep_heatmap": args.sweep_heatmap}
    report.write_figures(records, histories, figure_paths)

    here = os.path.dirname(os.path.abspath(args.out))
    relative = {name: os.path.relpath(os.path.abspath(path), here) for name, path in figure_paths.items()}
    figures = {"test accuracy against parameters and latency": relative["accuracy_vs_cost"],
               "training loss and accuracy per epoch": relative["training_curves"],
               "validation accuracy over the alpha x temperature grid": relative["sweep_heatmap"]}
    for path, record in zip(args.metrics, records):
        confusion = Path(path).with_name("confusion_matrix.png")
        figures[f"confusion matrix: {record['model']}"] = os.path.relpath(confusion.resolve(), here)
    text, csv = report.build_summary(args.title, read_json(args.data_info), records, correct, figures)
    with atomic_path(args.csv_out) as tmp:
        csv.to_csv(tmp, index=False)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    cli.run(main)
