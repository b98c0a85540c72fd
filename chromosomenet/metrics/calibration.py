"""Temperature scaling (Guo et al. 2017): one number fitted on validation that makes a classifier's confidences
mean what they say, without changing any argmax.

The shipped classifiers were trained with label smoothing 0.1, which makes them under-confident (ECE about 9 %
on unseen cases: a call at 0.90 is right 99 % of the time). Dividing the log-probabilities by a temperature
``T`` < 1 sharpens them back. Probabilities suffice, no logits needed: ``softmax(log p / T)`` equals
``softmax(z / T)`` because ``log p`` is the logits ``z`` less one constant per row.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from .classification import nll

BOUNDS = (0.05, 20.0)  # temperatures outside are a broken model or a broken split, not a calibration


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Each row of probabilities re-tempered: ``softmax(log p / T)`` (T = 1 gives the rows back)."""
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-30, 1.0)) / temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def fit_temperature(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y_true`` (bounded, on log T)."""
    y_true = np.asarray(y_true)
    if not len(y_true):
        raise ValueError("fitting a temperature needs at least one labelled prediction")
    res = minimize_scalar(lambda s: nll(y_true, with_temperature(probs, float(np.exp(s)))),
                          bounds=tuple(np.log(BOUNDS)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))
