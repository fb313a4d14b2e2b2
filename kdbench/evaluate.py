"""Test-set metrics with scikit-learn, computed from a model's logits."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import log_softmax
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix,
                             precision_recall_fscore_support)

from kdbench import KdbenchError


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
        labels, predictions, labels=range(logits.shape[1]), average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "n_test": int(len(labels)),
    }


def agreement(student_logits: np.ndarray, teacher_logits: np.ndarray) -> dict:
    """Does the student agree with its teacher, not only with the labels (Stanton et al., NeurIPS 2021):
    the share of images where both predict the same class, and mean KL(teacher || student) at T = 1."""
    if student_logits.shape != teacher_logits.shape:
        raise KdbenchError(f"teacher logits have shape {teacher_logits.shape}, the student's {student_logits.shape}: "
                           "they are not on the same test images; rerun the teacher's evaluate step")
    log_p = log_softmax(teacher_logits.astype(np.float64), axis=1)
    log_q = log_softmax(student_logits.astype(np.float64), axis=1)
    return {"top1_agreement": float((student_logits.argmax(axis=1) == teacher_logits.argmax(axis=1)).mean()),
            "kl_teacher_student": float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())}


def per_class_report(labels: np.ndarray, logits: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """scikit-learn's classification report as a table: one row per class plus the averages."""
    report = classification_report(np.asarray(labels).reshape(-1), logits.argmax(axis=1),
                                   labels=range(len(class_names)), target_names=class_names,
                                   output_dict=True, zero_division=0)
    return pd.DataFrame(report).T.rename_axis("class").reset_index()


def confusion_table(labels: np.ndarray, logits: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Confusion matrix with true classes as rows and predicted classes as columns."""
    matrix = confusion_matrix(np.asarray(labels).reshape(-1), logits.argmax(axis=1),
                              labels=range(len(class_names)))
    return pd.DataFrame(matrix, index=pd.Index(class_names, name="true"), columns=class_names)


def peak_memory_mb(benchmark_tsv: str) -> float | None:
    """Peak resident memory (MB) from a Snakemake benchmark file; None when it was not measured."""
    table = pd.read_csv(benchmark_tsv, sep="\t")
    value = pd.to_numeric(table["max_rss"], errors="coerce").max()
    return None if pd.isna(value) or value <= 0 else float(value)
