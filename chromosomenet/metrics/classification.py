"""Classification metrics from a confusion matrix (the paper's section 5.2, with its typo fixed).

Macro averages run over scikit-learn's default label set: every class in the ground truth or in the
predictions. A class a small split lacks does not count as a zero, but one that is predicted and absent
from the truth stays in, with its false positives (precision 0); which classes had no support is reported.

The paper prints specificity_j = TN/(TP+TN) (eq. 3); that is a typo for TN/(TN+FP). We report the
correct one as ``specificity`` and the printed one as ``specificity_paper_formula`` beside it.

Beyond the paper: Cohen's kappa, top-2 accuracy, calibration (ECE, NLL), a case-level bootstrap
confidence interval on accuracy, and the Table 4 quartile statistics. Every result is NaN-free.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ChromosomeNetError
from ..labels import NAMES, NUM_CLASSES

ECE_BINS = 15
PROB_SUM_TOL = 1e-3  # float32 softmax rows pass; probabilities rounded to a few decimals may not
_BOOT_CHUNK_CELLS = 2_000_000  # resamples are drawn in blocks of about this many draws (~16 MB)


class MetricsInputError(ChromosomeNetError, ValueError):
    """Labels, probabilities or groups that cannot be scored (a ValueError, for plain callers)."""


def confusion(y_true, y_pred, n: int = NUM_CLASSES) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    yt, yp = _labels(y_true, "y_true", n), _labels(y_pred, "y_pred", n)
    if len(yt) != len(yp):
        raise MetricsInputError(f"y_true has {len(yt)} labels but y_pred has {len(yp)}; pass one prediction "
                                "per instance")
    if len(yt) == 0:
        raise MetricsInputError("no instances to score (y_true is empty); evaluate on a non-empty split")
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (yt, yp), 1)
    return cm


def _labels(y, what: str, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise MetricsInputError(f"{what} has shape {y.shape}; pass a 1-D sequence of class ids")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n):
        bad = next(i for i, v in enumerate(y.tolist()) if not (isinstance(v, int) and 0 <= v < n))
        raise MetricsInputError(f"{what}[{bad}] = {y.tolist()[bad]!r} is not a class id 0..{n - 1}; "
                                "pass integer ids, not names or one-hot rows")
    return y.astype(np.int64)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, and 0 where b is 0 (scikit-learn's zero_division=0). Never clamp b: F1's denominator
    P + R is below 1 for a weak class, and clamping it to 1 halved a weak model's macro F1."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def _kappa(cm: np.ndarray) -> float:
    """Cohen's kappa; 0.0 where it is undefined (one class only, chance agreement = 1), never NaN."""
    n = cm.sum()
    po = np.trace(cm) / n
    pe = float(cm.sum(1) @ cm.sum(0)) / n**2
    return float((po - pe) / (1 - pe)) if pe < 1 else 0.0


def summarize(cm: np.ndarray) -> dict:
    """Accuracy; macro precision, sensitivity, specificity TN/(TN+FP) (and the paper's printed
    TN/(TP+TN)), F1 over the classes in the truth or the predictions (scikit-learn's default label set);
    kappa; per-class accuracy (= recall, for classes with support) and support."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] > len(NAMES):
        raise MetricsInputError(f"confusion matrix has shape {cm.shape}; expected square, at most "
                                f"{len(NAMES)}×{len(NAMES)}")
    if (cm < 0).any() or cm.sum() == 0:
        raise MetricsInputError("confusion matrix is empty or has negative counts; build it with "
                                "confusion(y_true, y_pred) from a non-empty split")
    tp = np.diag(cm)
    support = cm.sum(1)
    predicted = cm.sum(0)
    fp = predicted - tp
    fn = support - tp
    tn = cm.sum() - tp - fp - fn
    present = support > 0
    labelled = present | (predicted > 0)  # scikit-learn's unique_labels(y_true, y_pred)
    precision, recall = _div(tp, predicted), _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    specificity = _div(tn, tn + fp)
    spec_paper = _div(tn, tp + tn)
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / cm.sum()),
        "precision": float(precision[labelled].mean()),
        "sensitivity": float(recall[labelled].mean()),
        "specificity": float(specificity[labelled].mean()),
        "specificity_paper_formula": float(spec_paper[labelled].mean()),
        "f1": float(f1[labelled].mean()),
        "kappa": _kappa(cm),
        "per_class_accuracy": {NAMES[i]: (float(recall[i]) if present[i] else None) for i in range(len(tp))},
        "support": {NAMES[i]: int(support[i]) for i in range(len(tp))},
        "no_support": [NAMES[i] for i in np.flatnonzero(~present)],
    }


def check_probs(probs, n_rows: int) -> np.ndarray:
    """Probabilities as float64 N×C; each row finite, ≥ 0 and summing to 1 within PROB_SUM_TOL."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n_rows:
        raise MetricsInputError(f"probs has shape {p.shape}; expected ({n_rows}, n_classes), one row per instance")
    bad = ~np.isfinite(p).all(1) | (p < 0).any(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MetricsInputError(f"probs row {i} has a negative or non-finite value; pass softmax probabilities")
    sums = p.sum(1)
    bad = np.abs(sums - 1) > PROB_SUM_TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MetricsInputError(f"probs row {i} sums to {sums[i]:.6g}, not 1 (tolerance {PROB_SUM_TOL}); pass "
                                "softmax probabilities, not logits")
    return p


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int = 2) -> float:
    """Share of instances whose true class is among the k most probable (ties count in its favour)."""
    p_true = probs[np.arange(len(y_true)), y_true]
    return float(((probs > p_true[:, None]).sum(1) < k).mean())


def ece(y_true: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the max probability (Guo et al. 2017).

    Confidence = max row probability, correct = argmax == true class. Bins are ``n_bins`` equal
    widths over [0, 1], closed on the right: (0, 1/15], (1/15, 2/15], …, (14/15, 1]; a confidence
    exactly on an edge belongs to the lower bin. ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b|.
    """
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.searchsorted(edges[1:-1], conf, side="left")  # right-closed bins
    count = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, correct, n_bins) - np.bincount(b, conf, n_bins))  # per-bin Σ, not means
    return float(gap.sum() / count.sum())  # Σ_b n_b/N·|acc_b − conf_b| = Σ_b |Σcorrect − Σconf| / N


def nll(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean −log p(true class); p is clipped at float64 eps so a confident miss costs ~36, not inf."""
    p = probs[np.arange(len(y_true)), y_true]
    return float(-np.log(np.clip(p, np.finfo(np.float64).eps, 1.0)).mean())


def bootstrap_accuracy_ci(correct, groups=None, n_boot: int = 1000, seed: int = 0,
                          level: float = 0.95) -> dict:
    """Percentile bootstrap interval on accuracy, resampling groups (cases) with replacement.

    Instances of one case (one cell, one patient) are correlated, so resampling instances would
    understate the uncertainty; with ``groups=None`` instances are resampled and the result says so.
    Vectorised: per-unit correct/total counts, then each resample sums the counts of G units drawn
    with replacement (the same as multinomial weights on the units). Deterministic for a seed.
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.size == 0:
        raise MetricsInputError("no instances to resample; evaluate on a non-empty split")
    if n_boot < 1 or not 0 < level < 1:
        raise MetricsInputError(f"n_boot={n_boot}, level={level}: need n_boot ≥ 1 and 0 < level < 1")
    if groups is None:
        hits, totals = correct.astype(np.int64), np.ones(correct.size, dtype=np.int64)
    else:
        groups = np.asarray(groups)
        if groups.shape != correct.shape:
            raise MetricsInputError(f"groups has {groups.size} entries but there are {correct.size} instances; "
                                    "pass one case id per instance")
        _, inv = np.unique(groups, return_inverse=True)
        hits, totals = np.bincount(inv[correct], minlength=inv.max() + 1), np.bincount(inv)
    g = hits.size
    rng = np.random.default_rng(seed)
    accs = np.empty(n_boot)
    step = max(1, _BOOT_CHUNK_CELLS // g)
    for s in range(0, n_boot, step):
        idx = rng.integers(0, g, size=(min(step, n_boot - s), g))
        accs[s:s + len(idx)] = hits[idx].sum(1) / totals[idx].sum(1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(accs, [tail, 100 - tail])
    return {"ci": [float(lo), float(hi)], "resampling": "instances" if groups is None else "groups", "units": g}


def full_report(y_true, y_pred, probs, groups=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """summarize(confusion(...)) plus top2_accuracy, ece (15 right-closed equal-width bins on the
    max probability), nll, and accuracy_ci95 = [lo, hi] from a bootstrap over groups (cases) when
    given, else over instances (``ci_resampling`` says which; ``ci_units`` how many were resampled).
    ``probs=None`` (labels only) leaves top2_accuracy, ece and nll None."""
    p = None if probs is None else np.asarray(probs, dtype=np.float64)
    n = p.shape[1] if p is not None and p.ndim == 2 else NUM_CLASSES
    cm = confusion(y_true, y_pred, n)
    yt = np.asarray(y_true, dtype=np.int64)
    if p is not None:
        p = check_probs(p, len(yt))
    ci = bootstrap_accuracy_ci(yt == np.asarray(y_pred, dtype=np.int64), groups, n_boot, seed)
    # without probabilities (labels-only external predictions) the probability metrics are None
    return {
        **summarize(cm),
        "top2_accuracy": None if p is None else top_k_accuracy(yt, p, 2),
        "ece": None if p is None else ece(yt, p),
        "ece_bins": ECE_BINS,
        "nll": None if p is None else nll(yt, p),
        "accuracy_ci95": ci["ci"],
        "ci_resampling": ci["resampling"],
        "ci_units": ci["units"],
        "n_boot": n_boot,
        "seed": seed,
    }


def quartiles(values: Iterable[float | None] | Mapping[Any, float | None]) -> dict:
    """The paper's Table 4 statistics over per-class accuracies (None / NaN entries are skipped).

    q1, median, q3 use numpy.percentile's default ("linear") method, which reproduces the paper's
    Q1/median/Q3 from its Table 3. ``min``/``max`` are Tukey whisker ends: the lowest/highest value
    inside [Q1 − 1.5·IQR, Q3 + 1.5·IQR], as the paper's text defines them; the paper's printed Min/Max
    are in fact the plain extremes, given here as ``data_min``/``data_max``. For a mapping input,
    ``outlier_keys`` names the outliers.
    """
    items = list(values.items()) if isinstance(values, Mapping) else list(enumerate(values))
    items = [(k, float(v)) for k, v in items if v is not None and not np.isnan(v)]
    if not items:
        raise MetricsInputError("no values to summarise (empty, or all None/NaN); pass per-class accuracies")
    v = np.array([x for _, x in items])
    q1, med, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    inside = (v >= lo) & (v <= hi)  # never empty: the median lies inside
    out = sorted(((x, k) for (k, x), ok in zip(items, inside) if not ok), key=lambda t: t[0])
    result = {"min": float(v[inside].min()), "q1": q1, "median": med, "q3": q3, "iqr": iqr,
              "max": float(v[inside].max()), "outliers": [x for x, _ in out],
              "data_min": float(v.min()), "data_max": float(v.max()), "n": int(v.size)}
    if isinstance(values, Mapping):
        result["outlier_keys"] = [k for _, k in out]
    return result
