"""Size relative to the cell: bring a cell's chromosomes to one reference scale before anything reads them.

A chromosome's length in pixels is the microscope's as much as the chromosome's (median chromosome 1:
148 px in the Tseng release, 120 in Pki-3, 236 and 77 in two further labs), and within one lab it varies
from cell to cell with condensation; cytogeneticists compare relative length within a cell. So a cell is
measured by one statistic of its own chromosomes, the **median chromosome length** (each chromosome's
length: the extent of its ink, pixels darker than ``INK``, along its principal axis), and every canvas of
the cell is scaled about the canvas centre by ``REFERENCE_LENGTH / median``: the canvas stays 300×300
and white outside; a chromosome that would no longer fit is shrunk to fit (counted).

``REFERENCE_LENGTH`` is that median over the Tseng cells the shipped models trained on (81 px; p10 68,
p90 92). Measured the same way in training and at prediction. A cell with fewer than ``MIN_CHROMOSOMES``
measurable chromosomes is not scaled (said in the result); a chromosome without a cell keeps its pixels
(the training lab's scale) unless the caller states a factor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

INK = 230               # darker than this is chromosome (the canvases' background is 255, JPEG haze ~240)
REFERENCE_LENGTH = 81.0
MIN_CHROMOSOMES = 8


def chromosome_length(canvas: np.ndarray) -> float:
    """Extent of the ink along its principal axis, in pixels (NaN for a canvas with almost no ink)."""
    ys, xs = np.nonzero(np.asarray(canvas) < INK)
    if len(xs) < 10:
        return float("nan")
    pts = np.stack([xs, ys], 1).astype(np.float64)
    pts -= pts.mean(0)
    _, vecs = np.linalg.eigh(pts.T @ pts)
    proj = pts @ vecs[:, -1]
    return float(proj.max() - proj.min() + 1.0)


@dataclass(frozen=True)
class CellScale:
    factor: float          # applied to every canvas of the cell (1.0: not scaled)
    median_length: float   # px, before scaling (NaN when it could not be measured)
    measured: int          # chromosomes whose length was measured
    note: str = ""


def scale_of_lengths(lengths, reference: float = REFERENCE_LENGTH) -> CellScale:
    """The factor that brings the median of one cell's chromosome ``lengths`` (NaN: unmeasured) to ``reference``."""
    lengths = np.asarray(lengths, dtype=np.float64)
    lengths = lengths[np.isfinite(lengths)]
    if len(lengths) < MIN_CHROMOSOMES:
        return CellScale(1.0, float(np.median(lengths)) if len(lengths) else float("nan"), len(lengths),
                         f"not scaled: {len(lengths)} measurable chromosomes, fewer than {MIN_CHROMOSOMES}")
    median = float(np.median(lengths))
    return CellScale(reference / median, median, len(lengths))


def cell_scale(canvases, reference: float = REFERENCE_LENGTH) -> CellScale:
    """The factor that brings this cell's median chromosome length to ``reference``."""
    return scale_of_lengths([chromosome_length(c) for c in canvases], reference)


def row_factors(canvases, cell_ids, reference: float = REFERENCE_LENGTH) -> np.ndarray:
    """Per row, the factor of its cell: ``canvases`` an iterable in row order (read once, only the
    lengths kept), ``cell_ids`` the rows' cells; a row without a cell (None, "") keeps its pixels."""
    lengths = np.array([chromosome_length(c) for c in canvases])
    ids = np.array(["" if c is None else str(c) for c in cell_ids])
    factors = np.ones(len(ids))
    for cell in set(ids) - {""}:
        rows = ids == cell
        factors[rows] = scale_of_lengths(lengths[rows], reference).factor
    return factors


def summary(factors) -> dict:
    """What a report says of the scaling: how many cells (distinct factors) and the factor's spread."""
    f = np.asarray(factors, dtype=np.float64)
    p10, p50, p90 = np.percentile(f, [10, 50, 90]) if len(f) else (1.0, 1.0, 1.0)
    return {"reference_length": REFERENCE_LENGTH, "factor_p10": round(float(p10), 4),
            "factor_p50": round(float(p50), 4), "factor_p90": round(float(p90), 4)}


def rescale(canvas: np.ndarray, factor: float) -> tuple[np.ndarray, bool]:
    """The canvas scaled by ``factor`` about its centre (white outside); True when the chromosome had to be
    shrunk further to fit the canvas."""
    a = np.asarray(canvas)
    if factor == 1.0:
        return a, False
    h, w = a.shape
    ys, xs = np.nonzero(a < 255)
    if not len(xs):
        return a, False
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    piece = Image.fromarray(np.ascontiguousarray(a[y0:y1, x0:x1]))
    # where the piece's centre goes: the canvas centre plus its offset, scaled
    cy, cx = (h / 2) + ((y0 + y1) / 2 - h / 2) * factor, (w / 2) + ((x0 + x1) / 2 - w / 2) * factor
    size = [max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))]
    shrunk = size[0] > w or size[1] > h
    if shrunk:
        fit = min(w / size[0], h / size[1])
        size = [max(1, int(size[0] * fit)), max(1, int(size[1] * fit))]
        cy, cx = h / 2, w / 2
    piece = piece.resize(tuple(size), Image.Resampling.BILINEAR if factor > 1 else Image.Resampling.LANCZOS)
    out = Image.new("L", (w, h), 255)
    left = min(max(round(cx - size[0] / 2), 0), w - size[0])
    top = min(max(round(cy - size[1] / 2), 0), h - size[1])
    out.paste(piece, (left, top))
    return np.asarray(out), shrunk


def normalise_cell(canvases, reference: float = REFERENCE_LENGTH) -> tuple[list[np.ndarray], CellScale]:
    """Every canvas of one cell at the reference scale, and how it was scaled."""
    scale = cell_scale(canvases, reference)
    out, shrunk = [], 0
    for c in canvases:
        r, s = rescale(c, scale.factor)
        out.append(r)
        shrunk += s
    if shrunk:
        scale = CellScale(scale.factor, scale.median_length, scale.measured,
                          f"{shrunk} chromosome(s) shrunk further to fit the canvas")
    return out, scale
