"""Test-set metrics with scikit-learn, computed from a model's logits."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import log_softmax
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix,
                             precision_recall_fscore_support)

from kdbench import KdbenchError
from kdbench.datasets import get as _dataset

CLASS_NAMES = list(_dataset("cifar10").class_names)  # until callers pass the data set file's


def check_finite(logits: np.ndarray, model_path: str) -> np.ndarray:
    """Refuse NaN/inf predictions: metrics or soft targets computed from them would be meaningless."""
    bad = int((~np.isfinite(logits)).sum())
    if bad:
        raise KdbenchError(f"{model_path} predicts {bad} NaN/inf logits: its weights are broken "
                           "(diverged training?); retrain it")
    return logits


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict:
    """Accuracy, mean cross-entropy and macro precision/recall/F1 of logits against integer labels."""
    labels = np.asarray(labels).reshape(-1)
    predictions = logits.argmax(axis=1)
    log_probs = log_softmax(logits.astype(np.float64), axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, labels=range(len(CLASS_NAMES)), average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "n_test": int(len(labels)),
    }


def per_class_report(labels: np.ndarray, logits: np.ndarray) -> pd.DataFrame:
    """scikit-learn's classification report as a table: one row per class plus the averages."""
    report = classification_report(np.asarray(labels).reshape(-1), logits.argmax(axis=1),
                                   labels=range(len(CLASS_NAMES)), target_names=CLASS_NAMES,
                                   output_dict=True, zero_division=0)
    return pd.DataFrame(report).T.rename_axis("class").reset_index()


def confusion_table(labels: np.ndarray, logits: np.ndarray) -> pd.DataFrame:
    """Confusion matrix with true classes as rows and predicted classes as columns."""
    matrix = confusion_matrix(np.asarray(labels).reshape(-1), logits.argmax(axis=1),
                              labels=range(len(CLASS_NAMES)))
    return pd.DataFrame(matrix, index=pd.Index(CLASS_NAMES, name="true"), columns=CLASS_NAMES)


def peak_memory_mb(benchmark_tsv: str) -> float | None:
    """Peak resident memory (MB) from a Snakemake benchmark file; None when it was not measured."""
    table = pd.read_csv(benchmark_tsv, sep="\t")
    value = pd.to_numeric(table["max_rss"], errors="coerce").max()
    return None if pd.isna(value) or value <= 0 else float(value)
