"""Classification metrics from a confusion matrix (the paper's section 5.2, with its typo fixed).

Macro averages run over the classes present in the ground truth (support > 0), so a class that a
small split lacks does not count as a zero; which classes had no support is reported.
"""
from __future__ import annotations

import numpy as np

from .labels import NAMES, NUM_CLASSES


def confusion(y_true, y_pred, n: int = NUM_CLASSES) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.maximum(b, 1), 0.0)


def summarize(cm: np.ndarray) -> dict:
    """Accuracy; macro precision, sensitivity, specificity TN/(TN+FP), F1; per-class accuracy (= recall)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(1)
    predicted = cm.sum(0)
    fp = predicted - tp
    fn = support - tp
    tn = cm.sum() - tp - fp - fn
    present = support > 0
    precision, recall = _div(tp, predicted), _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    specificity = _div(tn, tn + fp)
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "sensitivity": float(recall[present].mean()) if present.any() else 0.0,
        "specificity": float(specificity[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_accuracy": {NAMES[i]: (float(recall[i]) if present[i] else None) for i in range(len(tp))},
        "no_support": [NAMES[i] for i in np.flatnonzero(~present)],
    }
