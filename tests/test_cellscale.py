"""Size relative to the cell (issue 27): a cell enlarged ×1.5, or shrunk ×0.8, comes back to the same
chromosomes, within a pixel, once each is brought to the reference scale; the shipped default reads a
zoomed sample as well as the sample."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

import chromosomenet
from chromosomenet.cellscale import (REFERENCE_LENGTH, cell_scale, chromosome_length, normalise_cell, rescale,
                                     row_factors)
from chromosomenet.models import shipped
from chromosomenet.predict import Predictor, load_classifier, predict_cell


def cell(stem: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(chromosomenet.sample_dir().glob(f"*/{stem}_*.png"))]


def test_length_of_a_bar_at_an_angle():
    canvas = Image.new("L", (300, 300), 255)
    bar = Image.new("L", (12, 100), 60).rotate(30, expand=True, fillcolor=255)
    canvas.paste(bar, (100, 80))
    assert chromosome_length(np.asarray(canvas)) == pytest.approx(100, abs=3)
    assert np.isnan(chromosome_length(np.full((300, 300), 255, np.uint8)))


@pytest.mark.parametrize("zoom", [1.5, 0.8])
def test_a_rescaled_cell_comes_back_to_the_same_chromosomes(zoom: float):
    original = cell("103181")
    zoomed = [rescale(c, zoom)[0] for c in original]
    a, sa = normalise_cell(original)
    b, sb = normalise_cell(zoomed)
    assert sb.factor == pytest.approx(sa.factor / zoom, rel=0.02)
    assert np.median([chromosome_length(c) for c in a]) == pytest.approx(REFERENCE_LENGTH, abs=1.0)
    diffs = [abs(chromosome_length(x) - chromosome_length(y)) for x, y in zip(a, b)]
    assert np.median(diffs) <= 1.0 and max(diffs) <= 3.0


def test_too_few_chromosomes_are_not_scaled_and_say_so():
    s = cell_scale(cell("103181")[:5])
    assert s.factor == 1.0 and "fewer than" in s.note


def test_row_factors_give_each_row_its_cells_factor_and_leave_cellless_rows():
    a, b = cell("103181"), cell("103182")
    factors = row_factors(a + b + a[:1], ["103181"] * len(a) + ["103182"] * len(b) + [None])
    assert np.allclose(factors[:len(a)], cell_scale(a).factor) and np.allclose(factors[len(a):-1], cell_scale(b).factor)
    assert factors[-1] == 1.0 and cell_scale(a).factor != cell_scale(b).factor


def sample_cells() -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    rows = list(csv.DictReader(open(chromosomenet.sample_dir() / "metadata.csv", newline="")))
    cells: dict[str, tuple[list, list]] = {}
    for r in rows:
        canvases, y = cells.setdefault(r["cell_id"], ([], []))
        canvases.append(np.asarray(Image.open(chromosomenet.sample_dir() / r["file"])))
        y.append(int(r["label"]))
    return {k: (v[0], np.array(v[1])) for k, v in cells.items()}


def test_the_shipped_default_keeps_its_accuracy_on_a_zoomed_sample():
    """Another microscope simulated: every cell of the embedded sample zoomed ×0.8 and ×1.3. Read at the
    reference scale, the shipped default stays within 2 points of the unzoomed sample; read as the pixels
    are, it loses more than 4 (measured 95.6 → 88.2 and 89.5 %), so the normalisation is what holds it."""
    model, cfg = load_classifier(shipped.default_spec())
    predictor = Predictor(model, cfg)
    cells = sample_cells()
    y = np.concatenate([t for _, t in cells.values()])

    def accuracy(zoom: float, cell_scale: bool) -> float:
        top = [predict_cell(predictor, [rescale(c, zoom)[0] for c in canvases], cell_scale=cell_scale)[0].argmax(1)
               for canvases, _ in cells.values()]
        return float((np.concatenate(top) == y).mean())

    base = accuracy(1.0, True)
    assert base > 0.93 and len(y) == 1014
    for zoom in (0.8, 1.3):
        assert abs(accuracy(zoom, True) - base) <= 0.02, zoom
        assert accuracy(zoom, False) < base - 0.04, zoom


def test_evaluate_reads_each_cell_at_the_reference_scale_unless_told_not(sample_build, tmp_path):
    import json

    import pyarrow.parquet as pq

    from chromosomenet.evaluate import EvalConfig, evaluate

    common = dict(model=shipped.default_spec(), data=str(sample_build), split="test", timing=False, progress=False,
                  n_boot=10)
    evaluate(EvalConfig(out=tmp_path / "scaled", **common))
    evaluate(EvalConfig(out=tmp_path / "pixels", cell_scale=False, **common))
    facts = {k: json.loads((tmp_path / k / "metrics.json").read_text()) for k in ("scaled", "pixels")}
    scale = facts["scaled"]["cell_scale"]
    assert facts["pixels"]["cell_scale"] is None and scale["reference_length"] == REFERENCE_LENGTH
    # two cells here: 1.14 and 1.47 (a short, condensed one): the spread is the cells', not a microscope's
    assert 0.7 < scale["factor_p10"] < scale["factor_p90"] < 1.6
    a, b = (pq.read_table(tmp_path / k / "predictions.parquet").to_pandas() for k in ("scaled", "pixels"))
    assert not np.allclose(a["p_1"], b["p_1"])  # the canvases were scaled
    # the condensed cell read at its pixels loses a tenth of its chromosomes (measured 94.6 vs 84.9 %)
    assert facts["scaled"]["metrics"]["accuracy"] > max(0.9, facts["pixels"]["metrics"]["accuracy"] + 0.05)
