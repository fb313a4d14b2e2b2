import numpy as np

from kdbench.datasets import get
from kdbench.evaluate import classification_metrics, confusion_table, per_class_report

CLASSES = list(get("cifar10").class_names)


def test_metrics_on_constructed_predictions():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    predicted = np.array([0, 0, 1, 0, 2, 2, 3, 3, 4, 1])  # two mistakes
    logits = np.full((10, 10), -5.0)
    logits[np.arange(10), predicted] = 5.0
    metrics = classification_metrics(labels, logits)
    assert metrics["accuracy"] == 0.8
    assert metrics["n_test"] == 10
    # every row puts probability e^5 / (e^5 + 9 e^-5) on its prediction
    p_right = np.exp(5) / (np.exp(5) + 9 * np.exp(-5))
    p_wrong = np.exp(-5) / (np.exp(5) + 9 * np.exp(-5))
    np.testing.assert_allclose(metrics["loss"], -(8 * np.log(p_right) + 2 * np.log(p_wrong)) / 10, rtol=1e-9)
    # macro over all 10 classes; classes 5..9 never occur and count as 0
    recall = [1, 0.5, 1, 1, 0.5]
    precision = [2 / 3, 0.5, 1, 1, 1]
    np.testing.assert_allclose(metrics["recall_macro"], sum(recall) / 10)
    np.testing.assert_allclose(metrics["precision_macro"], sum(precision) / 10)


def test_confusion_table_and_report_layout():
    labels = np.array([0, 1, 1])
    logits = np.eye(10)[[0, 0, 1]]
    table = confusion_table(labels, logits, CLASSES)
    assert table.loc["automobile", "airplane"] == 1 and table.loc["automobile", "automobile"] == 1
    assert table.to_numpy().sum() == 3
    report = per_class_report(labels, logits, CLASSES).set_index("class")
    assert report.loc["airplane", "precision"] == 0.5
    assert report.loc["automobile", "recall"] == 0.5
