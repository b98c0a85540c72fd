"""Metrics cross-checked against scikit-learn; calibration, bootstrap and quartiles by hand; figures."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import (accuracy_score, cohen_kappa_score, log_loss, multilabel_confusion_matrix,
                             precision_recall_fscore_support, recall_score, top_k_accuracy_score)

from chromosomenet.labels import NAMES
from chromosomenet.metrics.classification import confusion, full_report, quartiles, summarize
from chromosomenet.metrics.figures import boxplot_by_class_png, boxplot_by_model_png, confusion_png, per_class_png

LABELS = list(range(24))
NO_SUPPORT, NEVER_PREDICTED = 23, 5  # Y has no test images; chromosome 6 is never predicted


def _random_case(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels without class 23, predictions never 5, probabilities leaning to the true class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 23, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 24, n))
    pred[pred == NEVER_PREDICTED] = NEVER_PREDICTED + 1
    probs = rng.dirichlet(np.ones(24), n)
    probs[np.arange(n), y] += rng.random(n) * 2
    return y, pred, probs / probs.sum(1, keepdims=True)


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    y = np.array([0, 0, 0, 1, 1, 2, 5, 5, 22, 22, 10, 10])
    p = np.array([0, 0, 1, 1, 23, 2, 4, 6, 22, 0, 10, 9])  # 23 predicted but absent; 5 never predicted
    return y, p


def _weak_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Weak and degenerate predictors, where per-class precision + recall is far below 1."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 23, 229)  # class 23 absent from the truth, as in the other cases
    chance = rng.integers(0, 24, len(y))
    chance[chance == NEVER_PREDICTED] = 0
    constant = np.full(len(y), 3)
    weak = np.where(rng.random(len(y)) < 0.1, y, rng.integers(0, 24, len(y)))
    weak[weak == NEVER_PREDICTED] = 1
    return [(y, chance), (y, constant), (y, weak)]


def _cases():
    return [_random_case(s)[:2] for s in (0, 1, 2)] + [_hand_case()] + _weak_cases()


@pytest.mark.parametrize("y,p", _cases(), ids=["random0", "random1", "random2", "hand", "chance", "constant",
                                               "weak10pct"])
def test_summary_matches_sklearn(y, p):
    s = summarize(confusion(y, p))
    present = sorted(set(y.tolist()))
    assert NAMES[NO_SUPPORT] in s["no_support"] and s["per_class_accuracy"][NAMES[NO_SUPPORT]] is None
    assert s["accuracy"] == pytest.approx(accuracy_score(y, p))
    # scikit-learn's default label set: every class in the truth or the predictions (Y is predicted, not true)
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert (s["precision"], s["sensitivity"], s["f1"]) == pytest.approx((prec, rec, f1), abs=1e-9)
    if NO_SUPPORT in p:  # the predicted-only class counts: the truth's classes alone give another number
        only_true = precision_recall_fscore_support(y, p, labels=present, average="macro", zero_division=0)[0]
        assert s["precision"] != pytest.approx(only_true, abs=1e-9)
    labelled = sorted(set(y.tolist()) | set(p.tolist()))
    assert s["kappa"] == pytest.approx(cohen_kappa_score(y, p))
    per = recall_score(y, p, labels=LABELS, average=None, zero_division=0)
    for j in LABELS:
        want = per[j] if j in present else None
        assert s["per_class_accuracy"][NAMES[j]] == (pytest.approx(want) if want is not None else None)
        assert s["support"][NAMES[j]] == int((y == j).sum())
    mcm = multilabel_confusion_matrix(y, p, labels=LABELS)  # [[tn, fp], [fn, tp]] per class
    tn, fp, tp = mcm[labelled, 0, 0], mcm[labelled, 0, 1], mcm[labelled, 1, 1]
    assert s["specificity"] == pytest.approx(np.mean(tn / (tn + fp)))
    assert s["specificity_paper_formula"] == pytest.approx(np.mean(tn / (tp + tn)))


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn warns that this one-class case is undefined
def test_kappa_undefined_is_zero_not_nan():
    y = np.zeros(5, dtype=int)
    s = summarize(confusion(y, y))
    assert s["kappa"] == 0.0 == cohen_kappa_score(y, y, replace_undefined_by=0.0)
    assert s["accuracy"] == 1.0 and len(s["no_support"]) == 23


def _walk(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)
    else:
        yield x


def test_full_report_matches_sklearn_and_is_nan_free_json():
    y, p, probs = _random_case(3)
    r = full_report(y, p, probs, groups=np.arange(len(y)) // 6, n_boot=200)
    assert r["top2_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=2, labels=LABELS))
    assert r["nll"] == pytest.approx(log_loss(y, probs, labels=LABELS))
    assert r["ci_resampling"] == "groups" and r["ci_units"] == 100
    assert r["kappa"] == pytest.approx(cohen_kappa_score(y, p))
    assert not any(isinstance(v, float) and math.isnan(v) for v in _walk(r))
    json.dumps(r)  # plain Python types only: reports are written as JSON


def _row(cls: int, top: float) -> np.ndarray:
    row = np.full(24, (1 - top) / 23)
    row[cls] = top
    return row


def test_ece_hand_example():
    # confidences 0.9 (right), 0.9 (wrong), 0.5 (right), 0.3 (right): bins (13/15..14/15], (7/15..8/15],
    # (4/15..5/15]; ECE = 2/4·|0.5−0.9| + 1/4·|1−0.5| + 1/4·|1−0.3| = 0.2 + 0.125 + 0.175 = 0.5
    y = np.array([0, 2, 3, 4])
    probs = np.stack([_row(0, 0.9), _row(1, 0.9), _row(3, 0.5), _row(4, 0.3)])
    assert full_report(y, probs.argmax(1), probs, n_boot=10)["ece"] == pytest.approx(0.5)
    # Bins are closed on the right: 0.4 = 6/15 sits with (1/3, 0.4], 0.41 in the next bin.
    y = np.array([0, 2])
    probs = np.stack([_row(0, 0.4), _row(1, 0.41)])
    assert full_report(y, probs.argmax(1), probs, n_boot=10)["ece"] == pytest.approx(0.5 * 0.6 + 0.5 * 0.41)


def _clustered(seed: int, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cases (30–70 instances) wholly right or wholly wrong: instances inside a case are correlated."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(30, 71, n_groups)  # unequal sizes, so resampled accuracies are not a coarse lattice
    groups = np.repeat(np.arange(n_groups), sizes)
    good = np.repeat(rng.random(n_groups) < 0.8, sizes)
    y = rng.integers(0, 24, groups.size)
    p = np.where(good, y, (y + 1) % 24)
    probs = np.full((y.size, 24), 1 / 24)
    return y, p, probs, groups


def test_bootstrap_ci_deterministic_contains_point_and_respects_groups():
    y, p, probs, groups = _clustered(0, n_groups=20)
    a = full_report(y, p, probs, groups=groups, seed=7)
    b = full_report(y, p, probs, groups=groups, seed=7)
    assert a["accuracy_ci95"] == b["accuracy_ci95"]
    assert full_report(y, p, probs, groups=groups, seed=8)["accuracy_ci95"] != a["accuracy_ci95"]
    lo, hi = a["accuracy_ci95"]
    assert lo <= a["accuracy"] <= hi
    inst = full_report(y, p, probs, seed=7)
    assert inst["ci_resampling"] == "instances" and inst["ci_units"] == y.size
    ilo, ihi = inst["accuracy_ci95"]
    assert ilo <= inst["accuracy"] <= ihi
    assert (hi - lo) > 3 * (ihi - ilo)  # 20 correlated cases carry far less information than ~1,000 instances


def test_bootstrap_is_fast():
    y, p, probs = _random_case(4, n=10_000)
    t = time.perf_counter()
    full_report(y, p, probs, n_boot=1000)  # instances: the largest resampling unit count
    assert time.perf_counter() - t < 3.0  # ~0.3 s alone; headroom for a busy 2-core machine


def test_quartiles_hand_example_with_outlier():
    q = quartiles([1, 2, 3, 4, 5, 6, 7, 8, 9, 100, None])
    # numpy linear: Q1 = 3.25, median 5.5, Q3 = 7.75, IQR 4.5, fences −3.5 and 14.5
    assert (q["q1"], q["median"], q["q3"], q["iqr"]) == pytest.approx((3.25, 5.5, 7.75, 4.5))
    assert q["outliers"] == [100.0] and (q["min"], q["max"]) == (1.0, 9.0)
    assert (q["data_min"], q["data_max"], q["n"]) == (1.0, 100.0, 10)
    assert quartiles({"X": 0.5, "1": 0.9, "2": 0.91, "3": 0.92, "4": 0.93})["outlier_keys"] == ["X"]


def test_quartiles_reproduce_paper_table4():
    # Table 3 row of baseline#1 → Table 4 row: Min 92.55, Q1 96.73, Median 97.64, Q3 98.24, IQR 1.51, Max 99.09.
    b1 = [99.09, 98.37, 98.00, 96.73, 98.37, 98.00, 98.91, 96.55, 97.28, 96.91, 98.19, 98.00, 95.99,
          96.85, 96.52, 96.73, 99.09, 97.27, 98.18, 98.18, 97.07, 98.53, 96.12, 92.55]
    q = quartiles(b1)
    assert (q["q1"], q["median"], q["q3"], q["iqr"]) == pytest.approx((96.73, 97.64, 98.24, 1.51), abs=0.015)
    # The paper's Min is the plain minimum: 92.55 lies below Q1 − 1.5·IQR, a Tukey outlier.
    assert q["data_min"] == 92.55 and q["outliers"] == [92.55] and q["min"] == 95.99
    assert q["data_max"] == q["max"] == 99.09


def test_bad_input_errors():
    y, p, probs = _random_case(5, n=20)
    with pytest.raises(ValueError, match="empty"):
        full_report([], [], np.zeros((0, 24)))
    with pytest.raises(ValueError, match="empty"):
        summarize(np.zeros((24, 24)))
    bad = probs.copy()
    bad[7] *= 0.9
    with pytest.raises(ValueError, match=r"probs row 7 sums to 0\.9"):
        full_report(y, p, bad)
    bad[7] = np.nan
    with pytest.raises(ValueError, match="probs row 7 has a negative or non-finite"):
        full_report(y, p, bad)
    with pytest.raises(ValueError, match="y_true has 20 labels but y_pred has 19"):
        confusion(y, p[:-1])
    with pytest.raises(ValueError, match=r"y_pred\[3\] = 24 is not a class id 0\.\.23"):
        confusion(y, np.r_[p[:3], 24, p[4:]])
    with pytest.raises(ValueError, match="groups has 19 entries but there are 20"):
        full_report(y, p, probs, groups=np.arange(19))
    with pytest.raises(ValueError, match="no values"):
        quartiles([None, float("nan")])


def _table(n_models: int = 8) -> dict[str, dict[str, float | None]]:
    rng = np.random.default_rng(0)
    t = {f"baseline#{m + 1}": {c: float(np.clip(0.985 + 0.008 * rng.standard_normal(), 0, 1)) for c in NAMES}
         for m in range(n_models)}
    t["baseline#1"]["Y"] = 0.9255  # an outlier, as in the paper
    t["baseline#2"]["Y"] = None  # no test images for this model
    return t


def _check_png(path: Path, min_w: int = 500, min_h: int = 300) -> None:
    assert path.exists() and path.stat().st_size > 5_000
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_w and im.size[1] >= min_h
    assert not [q for q in path.parent.iterdir() if q.name.startswith(".")]  # no temp files left behind


def test_figures(tmp_path):
    y, p = _hand_case()
    s = summarize(confusion(y, p))
    table = _table()
    _check_png(per_class_png(s["per_class_accuracy"], tmp_path / "per_class.png", "hand case"))
    _check_png(boxplot_by_class_png(table, tmp_path / "fig4.png"))
    _check_png(boxplot_by_model_png(table, tmp_path / "fig5.png"))
    _check_png(confusion_png(confusion(y, p), tmp_path / "cm.png"))
    with pytest.raises(ValueError, match="outside"):
        per_class_png({"1": 99.1}, tmp_path / "pct.png")
    with pytest.raises(ValueError, match="unknown class names"):
        boxplot_by_model_png({"m": {"Z": 0.5}}, tmp_path / "bad.png")


@pytest.mark.parametrize("kind", ["near-uniform", "confidently-wrong"])
def test_full_report_matches_sklearn_on_degenerate_probabilities(kind):
    y, _ = _weak_cases()[0]
    rng = np.random.default_rng(11)
    probs = rng.dirichlet(np.full(24, 50.0), len(y))  # no exact ties: sklearn breaks them its own way
    if kind == "confidently-wrong":
        probs[np.arange(len(y)), (y + 1) % 24] += 5
        probs /= probs.sum(1, keepdims=True)
    p = probs.argmax(1)
    r = full_report(y, p, probs, n_boot=50)
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert (r["accuracy"], r["precision"], r["sensitivity"], r["f1"]) == pytest.approx(
        (accuracy_score(y, p), prec, rec, f1), abs=1e-9)
    assert r["kappa"] == pytest.approx(cohen_kappa_score(y, p))
    assert r["top2_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=2, labels=LABELS))
    assert r["nll"] == pytest.approx(log_loss(y, probs, labels=LABELS))
