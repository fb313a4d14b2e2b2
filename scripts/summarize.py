#!/usr/bin/env python
"""Aggregate every run's evaluation into summary.md, summary.csv and the summary figures."""

import argparse
import json
import os
from pathlib import Path

from kdbench import KdbenchError, cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, help="runs.tsv: one row per run, in the order of the files below")
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json of each run (evaluate.py)")
    parser.add_argument("--predictions", nargs="+", required=True,
                        help="test_predictions.csv of each run (evaluate.py; for paired tests)")
    parser.add_argument("--histories", nargs="+", required=True, help="history.csv of each run (training)")
    parser.add_argument("--confusion-pngs", nargs="+", required=True, help="confusion_matrix.png of each run")
    parser.add_argument("--data-info", required=True, help="JSON written by fetch_data.py")
    parser.add_argument("--expect", help="JSON of what the config asks for (dataset, sizes, epochs, batch_size, "
                        "precision): runs whose records disagree are refused")
    parser.add_argument("--title", default="kdbench run", help="run name shown in the header")
    parser.add_argument("--description", default="", help="one line under the title")
    parser.add_argument("--out", required=True, help="output markdown file")
    parser.add_argument("--csv-out", required=True, help="output CSV: one row per run plus mean/std rows")
    parser.add_argument("--accuracy-vs-cost", required=True, help="output PNG")
    parser.add_argument("--training-curves", required=True, help="output PNG")
    parser.add_argument("--sweep-heatmap", help="output PNG (runs that sweep two settings of a method)")
    args = parser.parse_args()


    from kdbench import report, runs
    from kdbench.io import atomic_path, read_history, read_json, read_metrics, read_predictions

    table = runs.read_tsv(args.runs)
    ids = table["id"].tolist()
    per_run = {"--metrics": args.metrics, "--predictions": args.predictions, "--histories": args.histories,
               "--confusion-pngs": args.confusion_pngs}
    for flag, paths in per_run.items():  # the rule lists each file in runs-table order, in the run's folder
        if len(paths) != len(ids) or any(Path(p).parent.name != i for p, i in zip(paths, ids)):
            raise KdbenchError(f"{flag} must list one file per run of {args.runs}, in its order")
    records = {i: read_metrics(p) for i, p in zip(ids, args.metrics)}
    predictions = {i: read_predictions(p) for i, p in zip(ids, args.predictions)}
    correct = {i: (frame["label"] == frame["prediction"]).to_numpy() for i, frame in predictions.items()}
    data_info = read_json(args.data_info)
    if args.expect:
        problems = report.mismatches(table, records, data_info, json.loads(args.expect))
        if problems:
            raise KdbenchError("these results were made with other settings than this config's (stale files, or "
                               "Snakemake's records deleted); delete the runs named and rerun:\n  "
                               + "\n  ".join(problems))
    results = report.results_table(table, records)
    figure_paths = {"accuracy_vs_cost": args.accuracy_vs_cost, "training_curves": args.training_curves,
                    "sweep_heatmap": args.sweep_heatmap}
    histories = {run_id: read_history(path) for run_id, path in zip(ids, args.histories)}
    # a distilled model's logged loss includes its KD terms: only plain cross-entropy compares with test loss
    train_losses = {run_id: float(histories[run_id]["loss"].iloc[-1]) for run_id, role in zip(ids, table["role"])
                    if role != "distilled"}
    warnings = report.model_warnings(results, {i: frame["prediction"].to_numpy() for i, frame in predictions.items()},
                                     train_losses, data_info["num_classes"])
    report.write_figures(results, histories, figure_paths)

    here = os.path.dirname(os.path.abspath(args.out))

    def relative(path: str) -> str:
        return os.path.relpath(os.path.abspath(path), here)

    figures = {"test accuracy against parameters and latency": relative(args.accuracy_vs_cost),
               "training loss and validation accuracy per epoch": relative(args.training_curves)}
    if args.sweep_heatmap:
        figures["validation accuracy over the swept settings"] = relative(args.sweep_heatmap)
    for run_id, png in zip(ids, args.confusion_pngs):
        figures[f"confusion matrix: {run_id}"] = relative(png)
    text, csv = report.build_summary(args.title, args.description, data_info, results, records,
                                     correct, figures, warnings, predictions, histories)
    with atomic_path(args.csv_out) as tmp:
        csv.to_csv(tmp, index=False)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    cli.run(main)
