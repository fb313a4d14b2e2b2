"""`kdbench compare results/A results/B ...`: finished runs side by side, in one markdown table.

The table has three parts: the settings that differ between the runs (read from what each run recorded: its
runs table, data/dataset.json and every model's train.json), test accuracy (mean ± std over seeds) per
configuration in each run, and, for each run after the first, a paired verdict against the first where both
trained the same configuration with the same seeds on the same test images (kdbench.stats: a paired t-test
over two or more seeds, plus McNemar over the test images; McNemar alone with one seed).
`--csv PATH` writes the same cells as rows (section, item, run, value, and the numbers behind them).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from kdbench import KdbenchError

# What train.json records that is an outcome or an identity, not a setting: left out of the settings compared.
NOT_SETTINGS = {"train_seconds", "initial_weights_sha256", "epochs_run", "kept_epoch", "params", "seed", "role",
                "architecture", "method", "settings", "teacher_architecture", "replicas"}
DATA_KEYS = ("dataset", "source", "train_size", "val_size", "test_size", "path", "sha256")
USAGE_EXAMPLE = "kdbench compare results/reference results/quick"


class Run:
    """One finished run folder, results/<run_name>/: its results table, runs table and recorded settings."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        if not self.folder.is_dir():
            raise KdbenchError(f"{folder}: no such run folder (a run writes results/<run_name>/; "
                               f"e.g. {USAGE_EXAMPLE})")
        missing = [name for name in ("summary.csv", "runs.tsv", "data/dataset.json")
                   if not (self.folder / name).is_file()]
        if missing:
            raise KdbenchError(f"{folder} is not a finished run: it lacks {', '.join(missing)}. Finish it first "
                               "(rerun the same `kdbench run` or snakemake command: finished jobs are kept)")
        from kdbench import runs
        from kdbench.io import read_json

        self.table = runs.read_tsv(self.folder / "runs.tsv")
        try:
            summary = pd.read_csv(self.folder / "summary.csv")
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise KdbenchError(f"cannot read {self.folder / 'summary.csv'} ({err}); rerun the summarize step") from err
        needed = {"aggregate", "id", "config", "test_accuracy"}
        if not needed <= set(summary.columns):
            raise KdbenchError(f"{self.folder / 'summary.csv'} lacks the columns "
                               f"{sorted(needed - set(summary.columns))}; rerun the summarize step")
        self.results = summary[summary["aggregate"] == "run"].set_index("id")
        self.data = read_json(self.folder / "data" / "dataset.json")
        self.labels = {row["config"]: runs.label(row) for _, row in self.table.iterrows()}

    def settings(self) -> dict[str, str]:
        """Flat `section.key: value` of what this run recorded. A key whose value differs between the run's
        models (each student's learning rate) shows every value, in the order of the runs table."""
        table = self.table
        students = table[table["role"] != "teacher"]
        flat = {f"data.{key}": _text(self.data[key]) for key in DATA_KEYS if key in self.data}
        flat["seeds"] = _text(sorted(set(students["seed"].tolist())))
        flat["teachers"] = _text([f"{row['teacher']} ({row['architecture']})"
                                  for _, row in table[table["role"] == "teacher"].iterrows()])
        flat["students"] = _text(list(dict.fromkeys(f"{row['student']} ({row['architecture']})"
                                                    for _, row in students.iterrows())))
        flat["methods"] = _text(list(dict.fromkeys(self.labels[config] for config in
                                                   table.loc[table["role"] == "distilled", "config"])))
        for prefix, group in (("teacher", table[table["role"] == "teacher"]), ("train", students)):
            records = [self._train_info(model) for model in group["id"]]
            for key in dict.fromkeys(key for record in records for key in record):
                values = list(dict.fromkeys(_text(record.get(key)) for record in records))
                flat[f"{prefix}.{key}"] = " / ".join(values)
        return flat

    def _train_info(self, model: str) -> dict:
        path = self.folder / "models" / model / "train.json"
        if not path.is_file():
            return {}
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise KdbenchError(f"cannot read {path} ({err}); rerun that model's training job to rewrite it") from err
        versions = info.pop("versions", None) or {}
        flat = {key: value for key, value in info.items()
                if key not in NOT_SETTINGS and not key.endswith("_seconds")}  # timings are outcomes too
        flat.update({f"versions.{key}": value for key, value in versions.items()})
        return flat

    def accuracy(self, config: str) -> pd.Series:
        """Test accuracy of a configuration's models, by seed."""
        rows = self.table[self.table["config"] == config]
        values = {int(row["seed"]): float(self.results.loc[row["id"], "test_accuracy"])
                  for _, row in rows.iterrows() if row["id"] in self.results.index}
        return pd.Series(values, dtype=float).sort_index()

    def correct(self, model: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels, per-image correctness) from the model's test predictions, or None when not written."""
        path = self.folder / "eval" / model / "test_predictions.csv"
        if not path.is_file():
            return None
        from kdbench.io import read_predictions

        table = read_predictions(path)
        return table["label"].to_numpy(), (table["label"] == table["prediction"]).to_numpy()


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_text, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "null" if value is None else str(value)


def differing_settings(runs: list[Run]) -> dict[str, list[str]]:
    """{setting: its value in each run} for the settings whose values are not all the same."""
    flats = [run.settings() for run in runs]
    keys = dict.fromkeys(key for flat in flats for key in flat)
    table = {key: [flat.get(key, "(not recorded)") for flat in flats] for key in keys}
    return {key: values for key, values in table.items() if len(set(values)) > 1}


def accuracy_cell(values: pd.Series) -> tuple[str, dict]:
    if values.empty:
        return "", {}
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    text = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if len(values) > 1 else "") + f" (n={len(values)})"
    return text, {"mean": mean, "std": std, "n": len(values)}


def paired_verdict(reference: Run, other: Run, config: str) -> tuple[str, dict]:
    """`other` minus `reference` on one configuration: seeds in common, same test images (their labels, in
    order, must match). Empty when there is nothing to pair."""
    from kdbench import stats

    ours = reference.table[reference.table["config"] == config].set_index("seed")["id"]
    theirs = other.table[other.table["config"] == config].set_index("seed")["id"]
    seeds = sorted(set(ours.index) & set(theirs.index))
    if not seeds:
        return "no seed in common", {}
    a, b = other.accuracy(config), reference.accuracy(config)
    seeds = [seed for seed in seeds if seed in a.index and seed in b.index]
    pairs = []
    for seed in seeds:
        mine, yours = reference.correct(ours[seed]), other.correct(theirs[seed])
        if mine is None or yours is None:
            continue
        if len(mine[0]) != len(yours[0]) or not np.array_equal(mine[0], yours[0]):
            return "different test images: not paired", {}
        pairs.append((yours[1], mine[1]))
    comparisons = []
    if len(seeds) >= 2:
        comparisons.append(stats.paired_seed_comparison(a[seeds].tolist(), b[seeds].tolist()))
    if len(pairs) == 1:
        comparisons.append(stats.paired_comparison(*pairs[0]))
    elif pairs:
        comparisons.append(stats.pooled_mcnemar(pairs))
    if not comparisons:
        return "no predictions to pair", {}
    first = comparisons[0]
    if np.isnan(first["p_value"]):
        verdict = "no test possible" + "".join(f" ({note})" for note in first.get("notes", [])[:1])
    else:
        verdict = "significant" if first["p_value"] < 0.05 else "not significant"
    text = (f"{100 * first['difference']:+.2f} points [{100 * first['ci_low']:+.2f}, {100 * first['ci_high']:+.2f}], "
            f"{first['test'].split(' (')[0]}, p = {first['p_value']:.3g}: {verdict}")
    return text, {"difference": first["difference"], "ci_low": first["ci_low"], "ci_high": first["ci_high"],
                  "p_value": first["p_value"], "test": first["test"],
                  "detail": "; ".join(stats.describe(comparison) for comparison in comparisons)}


def compare(folders: list[str]) -> tuple[str, list[dict]]:
    """(the markdown table, its cells as CSV rows)."""
    if len(folders) < 2:
        raise KdbenchError(f"compare needs two or more run folders, got {len(folders)}; e.g. {USAGE_EXAMPLE}")
    runs = [Run(folder) for folder in folders]
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        names = [str(run.folder) for run in runs]
    rows: list[dict] = []
    lines = ["| | " + " | ".join(names) + " |", "|:--|" + "--:|" * len(runs)]

    def section(title: str) -> None:
        lines.append(f"| **{title}** |" + " |" * len(runs))

    section("settings that differ")
    differing = differing_settings(runs)
    for key, values in differing.items():
        lines.append(f"| {key} | " + " | ".join(values) + " |")
        rows += [{"section": "setting", "item": key, "run": name, "value": value} for name, value in zip(names, values)]
    if not differing:
        lines.append("| (none: the recorded settings are the same) |" + " |" * len(runs))
    configs = list(dict.fromkeys(config for run in runs for config in run.table["config"]))
    labels = {config: next(run.labels[config] for run in runs if config in run.labels) for config in configs}
    section("test accuracy (%), mean ± std over seeds")
    for config in configs:
        cells = []
        for run, name in zip(runs, names):
            text, numbers = accuracy_cell(run.accuracy(config))
            cells.append(text)
            if numbers:
                rows.append({"section": "test accuracy", "item": labels[config], "run": name, "value": text, **numbers})
        lines.append(f"| {labels[config]} | " + " | ".join(cells) + " |")
    section(f"paired: each run minus {names[0]}, 95% CI")
    for config in configs:
        cells = ["(reference)"]
        for run, name in zip(runs[1:], names[1:]):
            text, numbers = paired_verdict(runs[0], run, config) if config in run.labels else ("not run", {})
            cells.append(text)
            rows.append({"section": "paired", "item": labels[config], "run": name, "value": text, **numbers})
        lines.append(f"| {labels[config]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", rows


CSV_COLUMNS = ["section", "item", "run", "value", "mean", "std", "n", "difference", "ci_low", "ci_high", "p_value",
               "test", "detail"]


def write_csv(rows: list[dict], path: str | Path) -> None:
    from kdbench.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows({key: "" if isinstance(value, float) and np.isnan(value) else value
                          for key, value in row.items()} for row in rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kdbench compare", description=__doc__.split("\n\n")[0],
                                     epilog=f"e.g. {USAGE_EXAMPLE} --csv comparison.csv")
    parser.add_argument("runs", nargs="+", metavar="RUN_FOLDER", help="finished runs, results/<run_name>")
    parser.add_argument("--csv", metavar="PATH", help="also write the table's cells as CSV rows there")
    args = parser.parse_args(argv)
    try:
        table, rows = compare(args.runs)
        if args.csv:
            write_csv(rows, args.csv)
    except KdbenchError as err:
        print(f"kdbench compare: error: {err}", file=sys.stderr)
        return 2
    print(table, end="")
    return 0
