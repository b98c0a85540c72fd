"""Temperature scaling (issue 34): the fit against a grid search of scikit-learn's log loss, on confident and
on under-confident and on degenerate predictions; `calibrate` on the embedded sample lowers its ECE on cells it
was not fitted on, and every path that loads the model reads the calibrated probabilities."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import log_loss

from chromosomenet.apps.cli import main
from chromosomenet.errors import BadInputError
from chromosomenet.metrics.calibration import fit_temperature, with_temperature
from chromosomenet.metrics.classification import ece
from chromosomenet.models import shipped
from chromosomenet.pipeline.predict import Predictor, load_classifier, predict_canvases


def predictions(n: int, right: float, sharp: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities): ``right`` of the argmaxes are the label; logits of scale ``sharp``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 24, n)
    top = np.where(rng.random(n) < right, y, rng.integers(0, 24, n))
    z = rng.normal(0, 1, (n, 24))
    z[np.arange(n), top] += 4
    p = np.exp(sharp * z)
    return y, p / p.sum(1, keepdims=True)


def grid_temperature(y, p) -> float:
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2001))
    return float(grid[np.argmin([log_loss(y, with_temperature(p, t), labels=range(24)) for t in grid])])


@pytest.mark.parametrize("right, sharp, side", [(0.6, 3.0, "over"), (0.98, 0.4, "under")])
def test_the_fit_is_scikit_learns_log_loss_minimum(right, sharp, side):
    y, p = predictions(3000, right, sharp)
    t = fit_temperature(y, p)
    assert t == pytest.approx(grid_temperature(y, p), rel=5e-3)
    assert (t > 1) if side == "over" else (t < 1)  # an over-confident model is softened, an under-confident one sharpened
    assert ece(y, with_temperature(p, t)) < ece(y, p) / 2
    assert np.array_equal(with_temperature(p, t).argmax(1), p.argmax(1))  # no call changes


def test_degenerate_predictions_stay_a_number():
    y = np.arange(240) % 24
    flat = np.full((240, 24), 1 / 24)
    assert np.isfinite(fit_temperature(y, flat))  # every temperature gives the same loss: any one is right
    np.testing.assert_allclose(with_temperature(flat, 0.3), flat, atol=1e-6)
    one_hot = np.eye(24)[(y + 1) % 24] * (1 - 1e-9) + 1e-9 / 24  # confidently always wrong
    assert fit_temperature(y, one_hot) > 10
    with pytest.raises(ValueError):
        fit_temperature(y[:0], flat[:0])


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(shipped.default_model(), dst)
    (dst / shipped.CALIBRATION).unlink(missing_ok=True)
    return dst


def test_calibrate_lowers_the_samples_ece_where_it_was_not_fitted(model_copy: Path, sample_build: Path, tmp_path,
                                                                   capsys):
    spec = f"local-dir:{model_copy}"
    assert main(["evaluate", spec, "--data", str(sample_build), "--split", "test", "--out", str(tmp_path / "before"),
                 "--no-timing"]) == 0
    assert main(["calibrate", spec, "--data", str(sample_build), "--split", "validation"]) == 0
    assert "temperature" in capsys.readouterr().out
    facts = json.loads((model_copy / shipped.CALIBRATION).read_text())
    assert 0.2 < facts["temperature"] < 1 and facts["ece_after"] < facts["ece_before"]
    assert "## Calibration" in (model_copy / "README.md").read_text()
    assert main(["evaluate", spec, "--data", str(sample_build), "--split", "test", "--out", str(tmp_path / "after"),
                 "--no-timing"]) == 0
    before = json.loads((tmp_path / "before" / "metrics.json").read_text())["metrics"]
    after = json.loads((tmp_path / "after" / "metrics.json").read_text())["metrics"]
    assert after["ece"] < before["ece"] / 2 and after["accuracy"] == before["accuracy"]
    assert after["nll"] < before["nll"]


def test_every_loader_reads_the_temperature(model_copy: Path, sample_cells):
    canvases = sample_cells[next(iter(sample_cells))][0]
    model, cfg = load_classifier(f"local-dir:{model_copy}")
    raw = predict_canvases(Predictor(model, cfg), canvases)
    (model_copy / shipped.CALIBRATION).write_text(json.dumps({"temperature": 0.5}))
    model, cfg = load_classifier(f"local-dir:{model_copy}")
    assert cfg["temperature"] == 0.5
    np.testing.assert_allclose(predict_canvases(Predictor(model, cfg), canvases), with_temperature(raw, 0.5), atol=2e-5)
    (model_copy / shipped.CALIBRATION).write_text("{not json")
    with pytest.raises(BadInputError, match="calibration.json"):
        load_classifier(f"local-dir:{model_copy}")
