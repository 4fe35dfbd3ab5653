"""Whole-set classification metrics from a confusion matrix (TF computes the matrix)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def classification_report(y_true, y_pred, labels: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support.

    A class with no predictions (or no examples) gets precision (recall) 0, as scikit-learn's
    zero_division=0 does, so macro-F1 is not inflated by empty classes.
    """
    n = len(labels)
    cm = tf.math.confusion_matrix(np.asarray(y_true), np.asarray(y_pred), num_classes=n)
    cm = cm.numpy().astype(np.int64)
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n),
                   where=(precision + recall) > 0)
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "examples": int(total),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
    }


def format_report(name: str, report: dict) -> str:
    """A fixed-width table: one row per class, then accuracy and macro-F1."""
    labels = list(report["per_class"])
    width = max(12, *(len(label) for label in labels)) + 2
    lines = [f"{name}: accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
             f"({report['examples']} examples)",
             f"  {'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, m in report["per_class"].items():
        lines.append(f"  {label:<{width}}{m['precision']:>10.4f}{m['recall']:>10.4f}"
                     f"{m['f1']:>10.4f}{m['support']:>10d}")
    return "\n".join(lines)
