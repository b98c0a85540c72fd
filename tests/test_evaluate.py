"""evaluate / score / benchmark on the tiny real dataset and a trained run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import timm
from timm.models import save_for_hf

from chromosomenet import NAMES
from chromosomenet.apps.cli import main
from chromosomenet.errors import BadInputError
from chromosomenet.evaluation.benchmark import BenchmarkConfig, run_benchmark
from chromosomenet.evaluation.evaluate import PROB_COLUMNS, EvalConfig, evaluate, score


@pytest.fixture(scope="module")
def evaluated(trained_run: Path, tiny_dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "mnv2"
    # each chromosome alone, as training scores its test split (the default reads each cell together)
    evaluate(EvalConfig(model=str(trained_run), data=str(tiny_dataset), out=out, workers=0, timing_samples=20,
                        throughput_seconds=0.2, progress=False, together=False))
    return out


def test_evaluate_writes_predictions_metrics_and_figures(evaluated: Path, trained_run: Path):
    table = pq.read_table(evaluated / "predictions.parquet").to_pandas()
    assert len(table) == 24 and list(table.columns[:5]) == ["id", "group", "cell_id", "label", "predicted"]
    probs = table[list(PROB_COLUMNS)].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4) and (probs.argmax(1) == table["predicted"]).all()
    report = json.loads((evaluated / "metrics.json").read_text())
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx((table["label"] == table["predicted"]).mean())
    # the same weights and preprocessing as the end of training: the same test accuracy
    assert m["accuracy"] == pytest.approx(json.loads((trained_run / "train_report.json").read_text())
                                          ["test_metrics"]["accuracy"])
    for key in ("kappa", "top2_accuracy", "ece", "accuracy_ci95", "specificity_paper_formula"):
        assert key in m
    assert report["inference_time"]["samples"] == 20 and report["inference_time"]["seconds_per_1000"] > 0
    assert report["throughput"]["images_per_s"] > 0 and report["complexity"]["params_m"] == pytest.approx(2.255, abs=0.01)
    assert (evaluated / "confusion.png").exists() and (evaluated / "per_class.png").exists()


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _external_rows(evaluated: Path, with_probs: bool) -> list[dict]:
    table = pq.read_table(evaluated / "predictions.parquet").to_pylist()
    return [{"id": r["id"], "predicted": NAMES[r["predicted"]],
             **({c: repr(r[c]) for c in PROB_COLUMNS} if with_probs else {})} for r in table]


def test_score_gives_the_same_metrics_as_evaluate(evaluated: Path, tiny_dataset: Path, tmp_path: Path):
    rows = _external_rows(evaluated, with_probs=True)[::-1]  # order does not matter
    m = score(_write_csv(tmp_path / "p.csv", rows), str(tiny_dataset), "test", tmp_path / "scored")
    ours = json.loads((evaluated / "metrics.json").read_text())["metrics"]
    for key in ("accuracy", "precision", "sensitivity", "specificity", "f1", "kappa", "accuracy_ci95"):
        assert m[key] == pytest.approx(ours[key], abs=1e-6), key
    assert m["ece"] == pytest.approx(ours["ece"], abs=1e-5)
    labels_only = score(_write_csv(tmp_path / "l.csv", _external_rows(evaluated, False)), str(tiny_dataset),
                        "test", tmp_path / "scored2")
    assert labels_only["accuracy"] == ours["accuracy"] and labels_only["top2_accuracy"] is None


def test_score_refuses_missing_repeated_and_unknown_ids(evaluated: Path, tiny_dataset: Path, tmp_path: Path):
    rows = _external_rows(evaluated, with_probs=False)
    with pytest.raises(BadInputError, match=r"misses 1 of the split's 24 ids"):
        score(_write_csv(tmp_path / "a.csv", rows[1:]), str(tiny_dataset), "test", tmp_path / "o")
    with pytest.raises(BadInputError, match=r"is repeated \(lines 2 and 26\)"):
        score(_write_csv(tmp_path / "b.csv", rows + rows[:1]), str(tiny_dataset), "test", tmp_path / "o")
    with pytest.raises(BadInputError, match="is not in the split"):
        score(_write_csv(tmp_path / "c.csv", rows + [{"id": "0/nope.png", "predicted": "1"}]), str(tiny_dataset),
              "test", tmp_path / "o")
    with pytest.raises(BadInputError, match="unknown chromosome name"):
        score(_write_csv(tmp_path / "d.csv", [{**r, "predicted": "23"} for r in rows]), str(tiny_dataset), "test",
              tmp_path / "o")


def test_predictions_that_miss_classes_still_score(evaluated: Path, tiny_dataset: Path, tmp_path: Path, capsys):
    rows = [{**r, "predicted": "1"} for r in _external_rows(evaluated, with_probs=False)]
    path = _write_csv(tmp_path / "ones.csv", rows)
    assert main(["score", str(path), "--data", str(tiny_dataset), "--out", str(tmp_path / "o")]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["metrics"]
    assert m["accuracy"] == pytest.approx(1 / 24) and m["precision"] == pytest.approx(1 / 24 / 24)
    assert all(np.isfinite(v) for v in (m["f1"], m["kappa"], m["specificity"]))
    assert "accuracy" in capsys.readouterr().out


def test_evaluate_refuses_other_classes_and_missing_splits(trained_run: Path, tiny_dataset: Path, tmp_path: Path):
    ten = timm.create_model("mobilenetv2_100", num_classes=10)
    save_for_hf(ten, tmp_path / "ten", safe_serialization=True)
    with pytest.raises(BadInputError, match="not the 24 ChromosomeNet classes"):
        evaluate(EvalConfig(model=str(tmp_path / "ten"), data=str(tiny_dataset), out=tmp_path / "o", timing=False))
    with pytest.raises(BadInputError, match=r"has no 'dev' split .*splits: train, validation, test"):
        evaluate(EvalConfig(model=str(trained_run), data=str(tiny_dataset), out=tmp_path / "o", split="dev"))


def test_benchmark_report_mirrors_the_paper_and_resumes(tiny_dataset: Path, tmp_path: Path):
    recipe = dict(img_size=64, init="none", epochs=1, workers=0, batch_size=16)
    cfg = BenchmarkConfig(data=str(tiny_dataset), out=tmp_path / "report", recipe=recipe, timing_samples=10, throughput_seconds=0.1,
                          models=("mobilenetv2_100", "chromosomenet_vanillacnn"), progress=False)
    readme = run_benchmark(cfg)
    text = readme.read_text()
    for section in ("## Table 1", "## Table 2", "## Table 3", "## Table 4", "## Table 6", "## Run facts", "## Cell level",
                    "figures/fig4_per_class_boxplot.png", "split policy **stratified**"):
        assert section in text, section
    for name in ("table1_complexity", "table2_metrics", "table3_per_class", "table4_quartiles", "table6_prior_methods"):
        assert (tmp_path / "report" / "tables" / f"{name}.csv").exists()
    assert "| mobilenetv2_100 | 2.255 |" in text  # measured params beside the paper's 2.255
    weights = tmp_path / "report" / "runs" / "mobilenetv2_100" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    run_benchmark(cfg)  # finished runs are reused, not retrained
    assert weights.stat().st_mtime_ns == before
