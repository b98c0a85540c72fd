"""ONNX: the shipped classifier as one file (view inside), checked with onnxruntime against torch, and
`evaluate --backend onnx` giving torch's predictions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra")
import onnx  # noqa: E402

from chromosomenet.apps.cli import main  # noqa: E402
from chromosomenet.evaluation.evaluate import PROB_COLUMNS, EvalConfig, evaluate  # noqa: E402
from chromosomenet.labels import NAMES  # noqa: E402
from chromosomenet.models import shipped  # noqa: E402
from chromosomenet.pipeline.onnx import OnnxPredictor, export_onnx, sample_canvases  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("onnx") / "classifier.onnx"
    return path, export_onnx(shipped.default_spec(), path)


def test_onnx_agrees_with_torch_on_the_sample(exported):
    path, facts = exported
    assert facts["canvases"] == 1014 and facts["argmax_agreement"] == 1.0 and facts["both_turns"]
    # every logit within 1e-4, but where float rounding puts one view pixel on the other side of a grey level
    assert facts["max_abs_logit_diff_within"] <= 1e-4 and facts["share_over_tolerance"] <= 0.005
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["label_names"].split(",") == list(NAMES) and "uint8" in meta["input"]


def test_the_onnx_file_takes_any_batch_of_uint8_canvases(exported):
    predictor = OnnxPredictor(exported[0])
    x = sample_canvases(7)
    p = predictor(x).numpy()
    assert p.shape == (7, 24) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.array_equal(predictor(x[:1]).numpy().argmax(1), p[:1].argmax(1))


def test_evaluate_with_the_onnx_backend_gives_torchs_predictions(exported, sample_build: Path, tmp_path: Path):
    common = dict(data=str(sample_build), split="test", timing=False, progress=False, n_boot=10)
    # onnxruntime has no cell reading (BatchNorm by the cell's statistics): torch compared reading one by one
    evaluate(EvalConfig(model=shipped.default_spec(), out=tmp_path / "torch", together=False, **common))
    evaluate(EvalConfig(model=str(exported[0]), backend="onnx", out=tmp_path / "onnx", **common))
    facts = {k: json.loads((tmp_path / k / "metrics.json").read_text()) for k in ("torch", "onnx")}
    assert not facts["onnx"]["cells_read_together"] and facts["onnx"]["cell_scale"] is not None
    a, b = (pq.read_table(tmp_path / k / "predictions.parquet").to_pandas() for k in ("torch", "onnx"))
    assert len(a) > 50 and (a["predicted"] == b["predicted"]).all()
    assert np.abs(a[list(PROB_COLUMNS)].to_numpy() - b[list(PROB_COLUMNS)].to_numpy()).max() < 1e-3


def test_bad_paths_get_one_line(tmp_path: Path, capsys):
    assert main(["export-onnx", str(tmp_path / "model.bin")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.bin" in err and ".onnx" in err
    assert main(["evaluate", str(tmp_path / "none.onnx"), "--backend", "onnx", "--data", str(tmp_path),
                 "--out", str(tmp_path / "e")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
