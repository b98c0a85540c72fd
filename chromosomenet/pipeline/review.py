"""Which chromosomes a person should review: risk–coverage, and a threshold with a guarantee.

A call is flagged when its confidence is below a threshold. The threshold is chosen on validation
cells so that the chromosomes left unflagged are right at a target rate (99.9 % by default). A point
estimate of that rate on a few thousand chromosomes is noisy (99.9 % tuned on validation landed at
99.21–99.88 % on test), so :func:`pick_threshold` can instead require the one-sided Clopper–Pearson
upper bound of the unflagged error rate to stay within the target: with 95 % confidence, the promise
holds for new cells drawn like the validation ones.

Some chromosomes go to a person whatever the model says: those whose crop the importer (or the
Space's metaphase path) could not free of a neighbour's ink (``merged``) or that fill too little of
their box (``low_fill``, ``empty``). On the shipped ResNet-10t the two most confident validation
errors were such a pair (a 21 and a 22 of one merged blob swapped, at 0.9966 / 0.9986); with them
out of the automatic set, the bound above flagged 30 % of the test chromosomes instead of all of
them (22 % once the model read both turns of the view). The threshold is tuned on the rest only
(:func:`forced_review` says which).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import beta

from ..errors import ChromosomeNetError

__all__ = ["risk_coverage", "pick_threshold", "error_upper_bound", "unflagged", "forced_review", "ALWAYS_REVIEW"]

ALWAYS_REVIEW = ("merged", "low_fill", "empty")  # quality flags whose chromosomes a person always reviews


class ReviewInputError(ChromosomeNetError, ValueError):
    """Correctness and confidence values that do not belong together."""


def _check_scores(correct: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok, conf = np.asarray(correct, dtype=bool).ravel(), np.asarray(confidence, dtype=np.float64).ravel()
    if len(ok) != len(conf) or len(ok) == 0:
        raise ReviewInputError(f"got {len(ok)} correctness values and {len(conf)} confidences; pass one of "
                                  "each per chromosome, at least one")
    if not np.isfinite(conf).all():
        raise ReviewInputError("confidences contain NaN or infinite values; pass CellCall.confidence values")
    return ok, conf


def risk_coverage(correct: np.ndarray, confidence: np.ndarray) -> dict:
    """Accuracy of the chromosomes left unflagged, for every threshold that changes the flagged set.

    Flagging is ``confidence < threshold``, so equal confidences are flagged together. Lists run from
    flagging none (threshold = the lowest confidence) to flagging all (just above the highest); with
    nothing left unflagged the accuracy is 1.0 by convention (no automatic call can be wrong).
    Returns {'threshold', 'fraction_flagged', 'accuracy'} (lists) and 'n'.
    """
    ok, conf = _check_scores(correct, confidence)
    order = np.argsort(conf, kind="stable")
    conf_s, ok_s = conf[order], ok[order]
    uniq = np.unique(conf_s)
    thresholds = np.append(uniq, np.nextafter(uniq[-1], np.inf))
    flagged = np.searchsorted(conf_s, thresholds, side="left")
    right_flagged = np.concatenate([[0], np.cumsum(ok_s)])[flagged]
    kept = len(ok) - flagged
    acc = np.divide(ok.sum() - right_flagged, kept, out=np.ones(len(kept)), where=kept > 0)
    return {"threshold": thresholds.tolist(), "fraction_flagged": (flagged / len(ok)).tolist(),
            "accuracy": acc.tolist(), "n": int(len(ok))}


def error_upper_bound(errors: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound on an error rate seen as ``errors`` of ``n`` (1.0 for n = 0)."""
    if n <= 0:
        return 1.0
    return 1.0 if errors >= n else float(beta.ppf(level, errors + 1, n - errors))


def pick_threshold(correct: np.ndarray, confidence: np.ndarray, target_accuracy: float = 0.999,
                   confidence_level: float | None = None) -> float:
    """The threshold flagging the smallest fraction whose unflagged accuracy reaches the target.

    ``confidence_level`` None: the point estimate must reach it; e.g. 0.95: the Clopper–Pearson lower
    bound of the unflagged accuracy must (stricter, and it holds on new cells with that confidence).
    Pick it on validation data, then apply it with :func:`flag`. If no partial flagging reaches the
    target, the fall-back is to flag everything (a threshold just above the highest confidence):
    every chromosome then goes to a person, which is the safe default for a clinical report.
    """
    if not 0 < target_accuracy <= 1:
        raise ReviewInputError(f"target_accuracy = {target_accuracy!r} must lie in (0, 1]")
    if confidence_level is not None and not 0 < confidence_level < 1:
        raise ReviewInputError(f"confidence_level = {confidence_level!r} must lie in (0, 1)")
    curve = risk_coverage(correct, confidence)
    n = curve["n"]
    for t, flagged, acc in zip(curve["threshold"], curve["fraction_flagged"], curve["accuracy"]):
        kept = n - round(flagged * n)
        if kept == 0:
            return float(t)  # flag everything: always acceptable
        if confidence_level is None:
            ok = acc >= target_accuracy - 1e-12
        else:
            ok = 1 - error_upper_bound(round(kept * (1 - acc)), kept, confidence_level) >= target_accuracy - 1e-12
        if ok:
            return float(t)
    return float(curve["threshold"][-1])


def forced_review(quality, always: tuple[str, ...] = ALWAYS_REVIEW) -> np.ndarray:
    """True where a quality string (``"separated;overlap"``, ``"ok"``, …) holds one of ``always``."""
    want = set(always)
    return np.asarray([bool(want & set(str(q).split(";"))) for q in quality], dtype=bool)


def unflagged(correct: np.ndarray, confidence: np.ndarray, threshold: float, level: float = 0.95,
              forced: np.ndarray | None = None) -> dict:
    """Accuracy of the chromosomes a threshold (and ``forced`` review) leaves unflagged, with its lower bound."""
    ok, conf = _check_scores(correct, confidence)
    kept = conf >= threshold
    if forced is not None:
        kept &= ~np.asarray(forced, dtype=bool).ravel()
    n, errors = int(kept.sum()), int((~ok[kept]).sum())
    return {"n": n, "errors": errors, "accuracy": (n - errors) / n if n else None,
            "lower_bound": 1 - error_upper_bound(errors, n, level) if n else None, "level": level}


