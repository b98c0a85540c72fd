"""Size relative to the cell (issue 27): a cell enlarged ×1.5, or shrunk ×0.8, comes back to the same
chromosomes, within a pixel, once each is brought to the reference scale."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import chromosomenet
from chromosomenet.cellscale import REFERENCE_LENGTH, cell_scale, chromosome_length, normalise_cell, rescale


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
