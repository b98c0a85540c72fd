"""The `evaluate` metric module: loads offline from the checkout and agrees with scikit-learn."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, precision_recall_fscore_support, top_k_accuracy_score

evaluate = pytest.importorskip("evaluate", reason="the `evaluate` extra is not installed")

METRIC = Path(__file__).resolve().parents[1] / "metrics" / "chromosomenet_metrics"


@pytest.fixture(scope="module")
def metric(tmp_path_factory):
    import os

    os.environ.setdefault("HF_MODULES_CACHE", str(tmp_path_factory.mktemp("modules")))
    return evaluate.load(str(METRIC))


@pytest.mark.parametrize("quality", [0.8, 0.05])  # a good and a weak (near-chance) classifier
def test_the_metric_agrees_with_sklearn(metric, quality: float):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 23, 400)  # a split without a Y, which the predictions may still name
    pred = np.where(rng.random(400) < quality, y, rng.integers(0, 24, 400))
    probs = rng.dirichlet(np.full(24, 5.0), 400)
    probs[np.arange(400), pred] += 1
    probs /= probs.sum(1, keepdims=True)
    groups = [f"case{i // 10}" for i in range(400)]
    r = metric.compute(predictions=pred.tolist(), references=y.tolist(), probabilities=probs.tolist(), groups=groups,
                       n_boot=100)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert r["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert (r["precision"], r["sensitivity"], r["f1"]) == pytest.approx((prec, rec, f1), abs=1e-9)
    assert r["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    assert r["top2_accuracy"] == pytest.approx(top_k_accuracy_score(y, probs, k=2, labels=list(range(24))))
    assert r["ci_resampling"] == "groups" and r["ci_units"] == 40


def test_labels_only_leave_the_probability_metrics_empty(metric):
    r = metric.compute(predictions=[0, 1, 1, 22], references=[0, 1, 2, 22])
    assert r["accuracy"] == 0.75 and r["top2_accuracy"] is None and r["ci_resampling"] == "instances"
