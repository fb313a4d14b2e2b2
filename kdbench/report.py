"""Build the summary (markdown + CSV) and its figures from the runs table and the evaluate step's files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kdbench import architectures, methods, plots, published, runs, runtime, stats
from kdbench.config import RECIPE_KEYS
from kdbench.runs import label

# Test accuracies (%) the reference notebook reported: 10,000 train / 2,000 test images, 256 px, 5 epochs,
# softmax outputs, Hinton KD at alpha 0.3 and T 7, teachers named as in config.yaml. Keyed by
# (role, teacher, method settings).
REFERENCE_ACCURACY = {
    ("teacher", "frozen", ""): 78.15,
    ("teacher", "finetuned", ""): 63.80,
    ("baseline", "", ""): 64.09,
    ("distilled", "frozen", '{"alpha": 0.3, "temperature": 7.0}'): 62.95,
    ("distilled", "finetuned", '{"alpha": 0.3, "temperature": 7.0}'): 60.90,
}
REFERENCE_SETUP = {"train_size": 10000, "test_size": 2000, "upsample": 8, "epochs": 5}

RUN_COLUMNS = ["id", "config", "role", "architecture", "upsample", "student", "teacher", "method", "settings", "seed"]
NUMERIC_COLUMNS = ["test_accuracy", "test_loss", "test_f1_macro", "val_accuracy", "top1_agreement",
                   "kl_teacher_student", "params", "size_mb",
                   "macs_per_image", "flops_per_image", "latency_ms", "throughput_images_per_s", "train_seconds",
                   "train_peak_rss_mb", "epochs_run"]


def results_table(runs: pd.DataFrame, records: dict[str, dict]) -> pd.DataFrame:
    """The runs table joined with each run's metrics: one row per trained model."""
    rows = []
    for run in runs.to_dict("records"):
        record = records[run["id"]]
        train, cost = record["train"], record.get("cost", {})
        rows.append({**{key: run[key] for key in RUN_COLUMNS},
                     "test_accuracy": record["test"]["accuracy"], "test_loss": record["test"]["loss"],
                     "test_f1_macro": record["test"]["f1_macro"],
                     "val_accuracy": record.get("val", {}).get("accuracy"),
                     "top1_agreement": record.get("agreement", {}).get("top1_agreement"),
                     "kl_teacher_student": record.get("agreement", {}).get("kl_teacher_student"),
                     "params": train["params"],
                     "size_mb": cost.get("size_mb"), "macs_per_image": cost.get("macs_per_image"),  # None before MACs
                     "flops_per_image": cost.get("flops_per_image"),
                     "latency_ms": cost.get("latency_ms"),
                     "throughput_images_per_s": cost.get("throughput_images_per_s"),
                     "train_seconds": train["train_seconds"], "train_peak_rss_mb": cost.get("train_peak_rss_mb"),
                     "epochs_run": train["epochs_run"]})
    table = pd.DataFrame(rows, columns=RUN_COLUMNS + NUMERIC_COLUMNS)
    table[NUMERIC_COLUMNS] = table[NUMERIC_COLUMNS].apply(pd.to_numeric)  # None (not measured) -> NaN
    return table


def mismatches(runs: pd.DataFrame, records: dict[str, dict], data_info: dict, expected: dict) -> list[str]:
    """Where a run's own record disagrees with the config the summary is for (stale files from another config:
    Snakemake's metadata, which would have rerun them, can be deleted by users)."""
    problems = [f"the data set has {key} {data_info.get(key)!r}, the config asks for {expected[key]!r}"
                for key in ("dataset", "train_size", "val_size", "test_size") if data_info.get(key) != expected[key]]
    for run in runs.to_dict("records"):
        train = records[run["id"]]["train"]
        wanted = {"epochs": expected["epochs"], "batch_size": expected["batch_size"],
                  "precision_requested": expected["precision"], "upsample": run["upsample"], "seed": run["seed"],
                  "role": run["role"]}
        wanted.update({key: expected[key] for key in RECIPE_KEYS if key in expected})
        if run["role"] != "teacher" and "augment" in expected:  # students: train.augment
            wanted["augment"] = expected["augment"]
        if run["role"] == "teacher" and run["teacher"] in expected.get("teacher_augment", {}):  # their own key
            wanted["augment"] = expected["teacher_augment"][run["teacher"]]
        if run["role"] == "distilled":
            wanted.update(method=run["method"], settings=json.loads(run["settings"]))
        # one backend per summary; records from before train.backend existed ran on TensorFlow
        wanted["backend"] = expected.get("backend", "tensorflow")
        if "ema" in wanted:  # off is false in the config and null in the record
            wanted["ema"] = wanted["ema"] or None
        recorded = {"backend": "tensorflow", **train}
        problems += [f"{run['id']} was trained with {key} {recorded.get(key)!r}, the config asks for {value!r}"
                     for key, value in wanted.items() if recorded.get(key) != value]
    return problems


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one seed) and n per config, in runs-table order."""
    grouped = results.groupby("config", sort=False)
    table = grouped[[c for c in RUN_COLUMNS if c not in ("id", "config", "seed")]].first()
    table["n"] = grouped.size()
    table = table.join(grouped[NUMERIC_COLUMNS].mean())
    table = table.join(grouped[NUMERIC_COLUMNS].std(ddof=1).fillna(0.0).add_suffix("_std"))
    table = table.reset_index()
    table["label"] = [label(row) for row in table.to_dict("records")]
    return table


def select_settings(results: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """The config chosen per (teacher, student, method): best mean validation accuracy over seeds.

    Ties go to the config listed first in the runs table, so the choice is deterministic; test accuracy
    is never looked at.
    """
    distilled = results[results["role"] == "distilled"]
    means = distilled.groupby(["teacher", "student", "method", "config"], sort=False)["val_accuracy"].mean()
    chosen = {}
    for (teacher, student, method), group in means.groupby(level=[0, 1, 2], sort=False):
        chosen[(teacher, student, method)] = group.droplevel([0, 1, 2]).fillna(-1.0).idxmax()
    return chosen


def paired_comparisons(a: pd.DataFrame, b: pd.DataFrame, correct: dict[str, np.ndarray]) -> list[dict]:
    """The runs of config a against those of config b, seed by seed (same initial weights and batch order): a
    paired t-test over two or more shared seeds, plus McNemar pooled over their test images; with one seed,
    McNemar over its test images only."""
    a, b = a.set_index("seed"), b.set_index("seed")
    seeds = sorted(set(a.index) & set(b.index))
    comparisons = []
    if len(seeds) >= 2:
        comparisons.append(stats.paired_seed_comparison(a.loc[seeds, "test_accuracy"].tolist(),
                                                        b.loc[seeds, "test_accuracy"].tolist()))
    pairs = [(correct[a.loc[s, "id"]], correct[b.loc[s, "id"]]) for s in seeds
             if a.loc[s, "id"] in correct and b.loc[s, "id"] in correct]
    if len(pairs) == 1:
        comparisons.append(stats.paired_comparison(*pairs[0]))
    elif pairs:
        comparisons.append(stats.pooled_mcnemar(pairs))
    return comparisons


def compare_to_baseline(results: pd.DataFrame, config: str, correct: dict[str, np.ndarray]) -> list[dict]:
    """A distilled config against the baseline of the same student (paired_comparisons)."""
    distilled = results[results["config"] == config]
    student = distilled["student"].iloc[0]
    return paired_comparisons(distilled, results[(results["role"] == "baseline") & (results["student"] == student)],
                              correct)


def methods_markdown(results: pd.DataFrame, table: pd.DataFrame, chosen: dict, correct: dict,
                     level: float = 0.05) -> list[str]:
    """Every pair of methods (their selected settings) distilled from the same teacher into the same student.

    The better mean test accuracy first, so differences read as gains; each pair's paired test
    (paired_comparisons: t over seeds, else McNemar) with its p adjusted for the number of pairs in the group
    (Benjamini-Hochberg: with ten pairs, one p below 0.05 by chance is likely). Markdown lines, one table per
    (teacher, student) that has two or more methods.
    """
    from scipy import stats as scipy_stats

    means = table.set_index("config")
    lines = []
    groups = {}
    for (teacher, student, _), config in chosen.items():
        groups.setdefault((teacher, student), []).append(config)
    for (teacher, student), configs in groups.items():
        if len(configs) < 2:
            continue
        configs = sorted(configs, key=lambda c: -means.loc[c, "test_accuracy"])
        rows = []
        for i, better in enumerate(configs):
            for worse in configs[i + 1:]:
                first = next(iter(paired_comparisons(results[results["config"] == better],
                                                     results[results["config"] == worse], correct)), None)
                if first is not None:
                    rows.append({"better": better, "worse": worse, **first})
        if not rows:
            continue
        p_values = np.array([row["p_value"] for row in rows], float)
        tested = np.isfinite(p_values)  # a pair without spread has no p, and takes no part in the adjustment
        adjusted = np.full(len(rows), np.nan)
        if tested.any():
            adjusted[tested] = scipy_stats.false_discovery_control(p_values[tested])
        short = {c: means.loc[c, "label"].removesuffix(f" {teacher} -> {student}") for c in configs}
        cells = []
        for row, p_adjusted in zip(rows, adjusted):
            cells.append({"method": short[row["better"]], "against": short[row["worse"]],
                          "difference (points)": f"{100 * row['difference']:+.2f}",
                          "95% CI": f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]",
                          "test": row["test"], "p": f"{row['p_value']:.3g}", "adjusted p": f"{p_adjusted:.3g}",
                          f"separated at {level:g}": "yes" if p_adjusted < level else "no"})
        lines += [f"### {teacher} -> {student}", "", _markdown(cells, left=2), ""]
    return lines


def model_warnings(results: pd.DataFrame, predictions: dict[str, np.ndarray], train_losses: dict[str, float | None],
                   num_classes: int) -> dict[str, list[str]]:
    """Degenerate models (stats.degenerate_warnings) by run id: the summary warns about them instead of
    letting their accuracy pass for a measurement."""
    found = {}
    for run in results.to_dict("records"):
        if run["id"] in predictions:
            warnings = stats.degenerate_warnings(predictions[run["id"]], run["test_loss"],
                                                 train_losses.get(run["id"]), num_classes)
            if warnings:
                found[run["id"]] = warnings
    return found


def teacher_warnings(results: pd.DataFrame) -> list[str]:
    """One line per (teacher, student) where the teacher's test accuracy is below the mean test accuracy of that
    student's baseline: its distillation measures imitation of a weaker model, not the effect of a teacher."""
    lines = []
    teachers = results[results["role"] == "teacher"].groupby("teacher", sort=False)["test_accuracy"].mean()
    baselines = results[results["role"] == "baseline"].groupby("student", sort=False)["test_accuracy"]
    taught = results[results["role"] == "distilled"][["teacher", "student"]].drop_duplicates()
    for teacher, student in taught.itertuples(index=False):
        if teacher not in teachers.index or student not in baselines.groups:
            continue
        seeds = baselines.get_group(student)
        if teachers[teacher] < seeds.mean():
            over = f"mean of {_plural(len(seeds), 'seed')}" if len(seeds) > 1 else "one seed"
            lines.append(f"- teacher {teacher} scores {100 * teachers[teacher]:.2f} % on the test images, below "
                         f"the baseline {student}'s {100 * seeds.mean():.2f} % ({over}), the student it teaches: "
                         "distilling it measures imitation of a weaker model, not what a good teacher gives.")
    return lines


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _pm(mean: float, std: float, n: int, scale: float = 100, digits: int = 2) -> str:
    if pd.isna(mean):
        return ""
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if n > 1 else "")


def _optional(value, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def _markdown(rows: list[dict], left: int = 1) -> str:
    """A table whose cells are printed as written (tabulate would re-parse '12.00' into '12'); the first
    `left` columns (names) aligned left, the rest (numbers) right."""
    frame = pd.DataFrame(rows)
    return frame.to_markdown(index=False, disable_numparse=True,
                             colalign=["left"] * left + ["right"] * (len(frame.columns) - left))


def reference_matches(data_info: dict, results: pd.DataFrame, first_train: dict) -> bool:
    """Whether this run has the reference notebook's data, sizes, resolution and epochs."""
    facts = {"train_size": data_info.get("train_size"), "test_size": data_info.get("test_size"),
             "upsample": int(results["upsample"].max()), "epochs": first_train.get("epochs")}
    return (facts == REFERENCE_SETUP and set(results["upsample"]) == {8} and data_info.get("source") != "synthetic"
            and data_info.get("dataset", "cifar10") == "cifar10")


def accuracy_markdown(table: pd.DataFrame, with_reference: bool) -> str:
    rows = []
    with_agreement = table["top1_agreement"].notna().any()
    for row in table.to_dict("records"):
        cells = {"model": row["label"], "n": str(row["n"]),
                 "test accuracy (%)": _pm(row["test_accuracy"], row["test_accuracy_std"], row["n"]),
                 "val accuracy (%)": _pm(row["val_accuracy"], row["val_accuracy_std"], row["n"]),
                 "test loss": _pm(row["test_loss"], row["test_loss_std"], row["n"], scale=1, digits=3),
                 "macro F1": _pm(row["test_f1_macro"], row["test_f1_macro_std"], row["n"], scale=1, digits=3)}
        if with_agreement:
            cells["agreement with teacher (%)"] = _pm(row["top1_agreement"], row["top1_agreement_std"], row["n"])
            cells["KL(teacher ‖ student)"] = _pm(row["kl_teacher_student"], row["kl_teacher_student_std"],
                                                 row["n"], scale=1, digits=3)
        if with_reference:
            key = (row["role"], row["teacher"], row["settings"] if row["role"] == "distilled" else "")
            cells["reference notebook (%)"] = _optional(REFERENCE_ACCURACY.get(key), ".2f")
        rows.append(cells)
    return _markdown(rows)


def _mean_ci(values, scale: float = 100, digits: int = 2, confidence: float = 0.95) -> str:
    """'72.50 ± 0.31': the mean and the half-width of its t confidence interval over seeds (the mean alone for one)."""
    from scipy import stats as scipy_stats

    values = np.asarray([v for v in values if not pd.isna(v)], float)
    if not len(values):
        return ""
    text = f"{scale * values.mean():.{digits}f}"
    if len(values) > 1:
        half = scipy_stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        text += f" ± {scale * half:.{digits}f}"
    return text


def test_epoch_accuracies(results: pd.DataFrame, records: dict[str, dict],
                          histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run with per-epoch test scores (evaluation.test_every_epoch: history's test_accuracy): the honest
    figure, the test accuracy of the epoch the run keeps (train.json's kept_epoch: the last, or the one chosen
    on validation), and the papers' figure, the best test accuracy over the epochs. Empty when no run has them."""
    rows = []
    for run in results.to_dict("records"):
        history = histories.get(run["id"])
        if history is None or "test_accuracy" not in history or history["test_accuracy"].isna().all():
            continue
        train = records[run["id"]]["train"]
        kept = int(train.get("kept_epoch") or history["epoch"].max())
        at_kept = history.loc[history["epoch"] == kept, "test_accuracy"]
        honest = float(at_kept.iloc[-1]) if len(at_kept) else float("nan")
        best = float(history["test_accuracy"].max())
        rows.append({"id": run["id"], "config": run["config"], "kept": train.get("checkpoint", "last"),
                     "honest": honest, "best_test": best, "best_test_epoch": int(
                         history.loc[history["test_accuracy"].idxmax(), "epoch"]), "optimism": best - honest})
    return pd.DataFrame(rows, columns=["id", "config", "kept", "honest", "best_test", "best_test_epoch",
                                       "optimism"])


def _kept_label(kinds) -> str:
    kinds = set(kinds)
    if kinds == {"best"}:
        return "epoch chosen on validation"
    return "last epoch" if kinds == {"last"} else "last or validation-chosen epoch"


def protocols_markdown(table: pd.DataFrame, per_epoch: pd.DataFrame) -> str:
    """Both protocols per configuration: the honest test accuracy (the kept epoch), the papers' best-test-epoch
    accuracy, and the optimism of the latter (best minus honest, points), each as mean ± 95% CI over seeds."""
    rows = []
    labels = table.set_index("config")["label"]
    for config, group in per_epoch.groupby("config", sort=False):
        rows.append({"model": labels[config], "n": str(len(group)),
                     f"honest: {_kept_label(group['kept'])} (%)": _mean_ci(group["honest"]),
                     "papers': best test epoch (%)": _mean_ci(group["best_test"]),
                     "best test epoch": ", ".join(map(str, group["best_test_epoch"])),
                     "optimism (points)": _mean_ci(group["optimism"])})
    return _markdown(rows)


def protocol_differences(data_info: dict, records: dict[str, dict], results: pd.DataFrame) -> list[str]:
    """How this summary's runs depart from the protocol the published figures assume (kdbench.published), each
    difference named once; empty when every run follows it."""
    found = []
    for run_id in results["id"]:
        found += [problem for problem in published.protocol_mismatches(data_info, records[run_id]["train"])
                  if problem not in found]
    return found


def published_markdown(table: pd.DataFrame, results: pd.DataFrame, per_epoch: pd.DataFrame) -> str:
    """The configurations with a published figure: kdbench's mean ± 95% CI over seeds under both protocols beside
    it, and the source; empty when none has one."""
    teacher_architectures = (results[results["role"] == "teacher"].groupby("teacher")["architecture"].first()
                             .to_dict())
    by_config = per_epoch.groupby("config")
    rows = []
    for row in table.to_dict("records"):
        settings = json.loads(row["settings"]) if row["role"] == "distilled" else None
        found = published.figure(row["role"], row["architecture"], teacher_architectures.get(row["teacher"], ""),
                                 row["method"], settings)
        if found is None:
            continue
        seeds = results[results["config"] == row["config"]]
        best = by_config.get_group(row["config"])["best_test"] if row["config"] in by_config.groups else []
        rows.append({"model": row["label"], "n": str(row["n"]),
                     "kdbench, honest (%)": _mean_ci(seeds["test_accuracy"]),
                     "kdbench, best test epoch (%)": _mean_ci(best),
                     "published (%)": f"{found[0]:.2f}", "source": found[1]})
    return _markdown(rows) if rows else ""


def cost_markdown(table: pd.DataFrame) -> str:
    return _markdown([{
        "model": row["label"], "params": f"{int(row['params']):,}", "size (MB)": _optional(row["size_mb"], ".1f"),
        "GMACs / image": _optional(row["macs_per_image"] / 1e9, ".2f"),
        "GFLOPs / image": _optional(row["flops_per_image"] / 1e9, ".2f"),
        "latency, batch 1 (ms)": _optional(row["latency_ms"], ".1f"),
        "throughput (images/s)": _optional(row["throughput_images_per_s"], ".0f"),
        "training time": format_seconds(row["train_seconds"]),
        "training peak memory (MB)": _optional(row["train_peak_rss_mb"], ".0f"),
    } for row in table.to_dict("records")])


def sweep_markdown(table: pd.DataFrame, chosen: str) -> str:
    """One row per setting of a swept method: its settings and mean validation accuracy; * marks the choice."""
    rows = []
    for row in table.to_dict("records"):
        settings = json.loads(row["settings"])
        rows.append({**{key: f"{value:g}" if isinstance(value, float) else str(value)
                        for key, value in settings.items()},
                     "val accuracy (%)": _pm(row["val_accuracy"], row["val_accuracy_std"], row["n"])
                     + (" *" if row["config"] == chosen else "")})
    return _markdown(rows)


def recipe(train: dict) -> str:
    """'Adam, constant learning rate, last epoch' or 'SGD (Nesterov), cosine learning rate, EMA 0.99, best epoch'
    or 'SGD, L2 weight decay (PyTorch's), multistep learning rate (x0.1 at epochs 150, 180, 210), last epoch'."""
    optimizer = train.get("optimizer", "adam")
    if optimizer == "sgd":
        optimizer = "SGD (Nesterov)" if train.get("nesterov", True) else "SGD"
        if train.get("weight_decay_mode") == "l2":
            optimizer += ", L2 weight decay (PyTorch's)"
    parts = [{"adam": "Adam"}.get(optimizer, optimizer), f"{train.get('schedule', 'constant')} learning rate"]
    if train.get("schedule") == "multistep":
        parts[-1] += (f" (x{train.get('lr_decay', 0.1):g} at epochs "
                      f"{', '.join(map(str, train.get('lr_milestones', [])))})")
    if train.get("ema") not in (None, False, "none"):
        parts.append(f"EMA {train['ema']}")
    parts.append(f"{train.get('checkpoint', 'last')} epoch kept")
    return ", ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _teacher_kind(architecture: str, train: dict) -> str:
    """architectures.teacher_training with where its weights started: a zoo network always from random init."""
    kind = architectures.teacher_training(architecture, bool(train.get("train_backbone")))
    if not architectures.is_backbone_teacher(architecture):
        return f"{kind} from random init"
    return f"{kind}, weights: {'random init' if train.get('weights') in (None, 'None') else train['weights']}"


def run_header(title: str, description: str, data_info: dict, results: pd.DataFrame, trains: list[dict]) -> list[str]:
    """What was run: data, image size, schedule, teachers, seeds, versions and device."""
    source = data_info["source"]
    if source == "synthetic":
        source = "synthetic (generated images, NOT CIFAR-10: numbers say nothing about real accuracy)"
    elif data_info.get("path"):
        source = f"{source} ({data_info['path']})"
    seeds = sorted(results.loc[results["role"] != "teacher", "seed"].unique().tolist())
    first_train = trains[0]
    versions = first_train["versions"]
    teachers = [f"{run['teacher']} ({run['architecture']}, {_teacher_kind(run['architecture'], train)})"
                for run, train in zip(results.to_dict("records"), trains) if run["role"] == "teacher"]
    lines = [f"# kdbench summary: {title}", ""]
    if description:
        lines += [description, ""]
    lines += [
        f"- data: {data_info.get('dataset', 'cifar10')} from {source}; {data_info['train_size']:,} train / "
        f"{data_info.get('val_size', 0):,} validation / {data_info['test_size']:,} test images",
        "- input: 32-px images, resized inside each model: " + ", ".join(
            f"{architecture} {32 * factor} px" + (f" (x{factor})" if factor > 1 else "")
            for architecture, factor in
            results[["architecture", "upsample"]].drop_duplicates().itertuples(index=False)),
        f"- training: {_plural(first_train['epochs'], 'epoch')}, batch {first_train['batch_size']}, "
        f"{recipe(first_train)}, {first_train.get('precision', 'float32')}; teachers trained once, students once "
        f"per seed {seeds}",
    ]
    if teachers:
        lines.append(f"- teachers: {'; '.join(teachers)}")
    lines += [f"- software: {runtime.software_line(versions)}",
              f"- device: {first_train['device']}", ""]
    return lines


def verdict_lines(results: pd.DataFrame, table: pd.DataFrame, chosen: dict, correct: dict) -> list[str]:
    """The chosen setting of every teacher x student x method against that student's baseline."""
    lines = []
    labels = table.set_index("config")["label"]
    for (teacher, student, method), config in chosen.items():
        swept = results[(results["role"] == "distilled") & (results["teacher"] == teacher)
                        & (results["student"] == student) & (results["method"] == method)]["config"].nunique()
        why = f"selected on validation accuracy among {swept} settings" if swept > 1 else "the only setting run"
        first, *others = compare_to_baseline(results, config, correct) or [None]
        if first:
            lines.append(f"- {labels[config]} ({why}) vs baseline {student}: {stats.describe(first)}.")
            lines += [f"  - and {stats.describe(other)}." for other in others]
    return lines


def mistakes_markdown(predictions: pd.DataFrame, class_names: list[str], k: int = 10) -> str:
    """The k most frequent mistakes of one run (label and prediction columns) as a markdown table."""
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(predictions["label"], predictions["prediction"], labels=range(len(class_names)))
    pairs = plots.top_confused_pairs(pd.DataFrame(counts, index=class_names, columns=class_names), k)
    pairs["share_of_true"] = (100 * pairs["share_of_true"]).map("{:.1f}".format)
    pairs = pairs.rename(columns={"true": "true class", "predicted": "predicted as", "count": "images",
                                  "share_of_true": "% of the true class"})
    return pairs.to_markdown(index=False, disable_numparse=True)


def build_summary(title: str, description: str, data_info: dict, results: pd.DataFrame,
                  records: dict[str, dict], correct: dict[str, np.ndarray],
                  figures: dict[str, str] | None = None,
                  warnings: dict[str, list[str]] | None = None,
                  predictions: dict[str, pd.DataFrame] | None = None,
                  histories: dict[str, pd.DataFrame] | None = None) -> tuple[str, pd.DataFrame]:
    """The markdown document and the summary.csv table (runs plus per-config mean and std rows).

    With more classes than a confusion-matrix picture can label (CIFAR-100), `predictions` (label and
    prediction per test image, by run id) give each run's most frequent mistakes as a table instead.
    `histories` (by run id) with per-epoch test scores give both protocols' figures (test_epoch_accuracies)."""
    if results.empty:
        raise ValueError("no runs to summarise")
    table = aggregate(results)
    chosen = select_settings(results)
    first_train = records[results["id"].iloc[0]]["train"]
    with_reference = reference_matches(data_info, results, first_train)
    lines = run_header(title, description, data_info, results, [records[i]["train"] for i in results["id"]])
    if warnings:
        lines += ["## Warnings", "", "These models are degenerate: their accuracy does not measure what they "
                  "learned, and comparisons involving them mean little.", ""]
        lines += [f"- {run_id}: {'; '.join(found)}." for run_id, found in warnings.items()] + [""]
    weak_teachers = teacher_warnings(results)
    if weak_teachers:
        lines += ["## Warning: teachers weaker than their students", "", *weak_teachers, ""]
    lines += ["## Accuracy", "", "Mean ± standard deviation over seeds (n)."
              + (" Agreement: the share of test images where a distilled student predicts its teacher's class, "
                 "and the mean KL divergence from the teacher's to the student's predictions (T = 1)."
                 if results["top1_agreement"].notna().any() else "")
              + (" 'reference notebook' is the accuracy the reference notebook reported for the same model "
                 "and setting on the same data sizes, resolution and epochs." if with_reference else ""),
              "", accuracy_markdown(table, with_reference), ""]
    per_epoch = test_epoch_accuracies(results, records, histories or {})
    beside_published = published_markdown(table, results, per_epoch)
    differences = protocol_differences(data_info, records, results)
    if beside_published and not differences:
        lines += ["## Published numbers beside ours", "", "This run follows the protocol of the CIFAR-100 tables of "
                  "CRD and DKD (kdbench.published: data, pair, recipe and method settings), so their published "
                  "top-1 is shown beside kdbench's mean ± 95% confidence interval over seeds. 'honest' is the "
                  "evaluated model's test accuracy (the protocol has no validation split: the last epoch); the "
                  "papers report the best test accuracy over the epochs, kdbench's 'best test epoch' column.",
                  "", beside_published, ""]
    elif beside_published:
        lines += ["## Published numbers, not comparable with this run", "", "These models have a published "
                  "CIFAR-100 top-1 (CRD, DKD), shown only for where it stands: this run departs from the protocol "
                  "those figures were measured under, so its numbers and the papers' do not measure the same "
                  "thing. The run differs in: " + "; ".join(differences) + ". `presets/crd.yaml` is the protocol.",
                  "", beside_published, ""]
    if not per_epoch.empty:
        lines += ["## Both protocols: the kept epoch and the best test epoch", "", "From the test accuracy scored "
                  "after every epoch (evaluation.test_every_epoch), mean ± 95% confidence interval over seeds. "
                  "'honest' is the epoch the run keeps, chosen without looking at the test images; 'best test "
                  "epoch' is the papers' protocol, the highest test accuracy over the epochs, which selects on the "
                  "test images; 'optimism' is the second minus the first, in points, seed by seed: how much "
                  "best-test-epoch reporting inflates the figure.", "", protocols_markdown(table, per_epoch), ""]
    verdicts = verdict_lines(results, table, chosen, correct)
    if verdicts:
        lines += ["## Does distillation beat the baseline?", "", *verdicts, ""]
    against = methods_markdown(results, table, chosen, correct)
    if against:
        lines += ["## Which method helps most?", "", "Each pair of methods with the same teacher and student (the "
                  "setting each selected on validation), the one with the higher mean test accuracy first; "
                  "'adjusted p' corrects for the number of pairs compared (Benjamini-Hochberg), and 'separated' "
                  "means adjusted p < 0.05. A pair not separated is not shown to differ: it may still differ by "
                  "less than these seeds can detect.", "", *against]
    lines += ["## Cost", "", "Latency and throughput are measured on this run's device by the evaluate step; "
              "training time and peak memory come from the training jobs.", "", cost_markdown(table), ""]
    for (teacher, student, method), config in chosen.items():
        swept = table[(table["role"] == "distilled") & (table["teacher"] == teacher)
                      & (table["student"] == student) & (table["method"] == method)]
        if len(swept) > 1:
            lines += [f"## Sweep: {method}, {teacher} -> {student}", "",
                      "Validation accuracy (%), mean over seeds; * marks the setting selected, whose test "
                      "accuracy is the one compared with the baseline above.", "", sweep_markdown(swept, config), ""]
    class_names = data_info.get("class_names") or []
    if predictions and len(class_names) > plots.ANNOTATED_CLASSES:
        lines += ["## Most frequent mistakes", "", f"With {len(class_names)} classes the confusion-matrix "
                  "pictures below carry no names; these are each run's ten most frequent (true, predicted) pairs "
                  "on the test images.", ""]
        for run_id in results["id"]:
            lines += [f"### {run_id}", "", mistakes_markdown(predictions[run_id], class_names), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{caption}]({path})" for caption, path in figures.items()] + [""]
    return "\n".join(lines), summary_csv(results, table)


def summary_csv(results: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Rows per run (aggregate 'run') plus 'mean' and 'std' rows per config, with stable columns."""
    keys = [c for c in RUN_COLUMNS if c not in ("id", "seed")] + ["n"]
    means = table[keys + NUMERIC_COLUMNS].assign(aggregate="mean")
    stds = table[keys].join(table[[f"{c}_std" for c in NUMERIC_COLUMNS]].set_axis(NUMERIC_COLUMNS, axis=1))
    combined = pd.concat([results.assign(aggregate="run", n=1), means, stds.assign(aggregate="std")],
                         ignore_index=True)
    return combined[["aggregate", "n", *RUN_COLUMNS, *NUMERIC_COLUMNS]]


def sweep_grids(results: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, tuple]]:
    """Per teacher x student x method that swept exactly two settings: the grid of mean validation accuracy
    (first setting on rows, second on columns) and the (row, column) of the selected setting."""
    grids = {}
    chosen = select_settings(results)
    for (teacher, student, method), (settings, swept) in runs.two_setting_sweeps(results).items():
        group = results.loc[settings.index]
        grid = settings.assign(val_accuracy=group["val_accuracy"]).pivot_table(
            index=swept[0], columns=swept[1], values="val_accuracy", aggfunc="mean")
        best = settings[group["config"] == chosen[(teacher, student, method)]].iloc[0]
        grids[f"{method}, {teacher} -> {student}"] = (grid, (best[swept[0]], best[swept[1]]))
    return grids


def label_cross_entropy(run: dict, history: pd.DataFrame) -> pd.DataFrame:
    """`history` with its `hard_loss` term as plain cross-entropy on the labels, so that a distilled run's curve
    compares with a baseline's `loss`. A method that weights the term (kd: alpha x CE) says by how much in its
    optional `hard_weight(settings)`."""
    weight = getattr(methods.get(run["method"]), "hard_weight", None) if run["method"] else None
    if weight is None or "hard_loss" not in history:
        return history
    factor = weight(json.loads(run["settings"]))
    return history.assign(hard_loss=history["hard_loss"] / factor if factor > 0 else float("nan"))


def write_figures(results: pd.DataFrame, histories: dict[str, pd.DataFrame], paths: dict[str, str]) -> None:
    """accuracy_vs_cost and training_curves PNGs, and the sweep heat map when its path is given.

    The training curves show the teachers, the baselines and the selected setting of each method (all of a
    sweep's settings would make the figure unreadable), one curve per configuration: the mean over its seeds,
    epoch by epoch (a line per seed made 29 lines of a 3-seed methods run); `histories` is keyed by run id.
    """
    table = aggregate(results)
    plots.accuracy_vs_cost_png(table, paths["accuracy_vs_cost"], label_column="label", group_column="role")
    shown = set(select_settings(results).values()) | set(table.loc[table["role"] != "distilled", "config"])
    labels = table.set_index("config")["label"]
    curves = {}
    for config, config_runs in results[results["config"].isin(shown)].groupby("config", sort=False):
        seeds = [label_cross_entropy(run, histories[run["id"]]) for run in config_runs.to_dict("records")]
        mean = pd.concat(seeds).groupby("epoch", as_index=False).mean(numeric_only=True)
        curves[labels[config] + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else "")] = mean
    terms = sorted({f"{term}_loss" for method in results["method"] if method
                    for term in methods.get(method).TERMS if term != "hard"})
    plots.training_curves_png(curves, paths["training_curves"], distillation_terms=terms)
    if paths.get("sweep_heatmap"):
        grids = sweep_grids(results)
        plots.sweep_heatmap_png({name: grid for name, (grid, _) in grids.items()},
                                {name: cell for name, (_, cell) in grids.items()}, paths["sweep_heatmap"])
