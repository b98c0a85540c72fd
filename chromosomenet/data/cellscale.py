"""Relative to the cell: bring a cell's chromosomes to one reference scale and grey levels before anything reads them.

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

Grey levels the same way: another camera, stain and exposure give the same bands other greys (Pki-3's
median ink grey is 116 where Tseng's is 153, its darkest percent 15 against 84). A cell's ink greys
(every pixel darker than ``GREY_INK`` in all its canvases) are matched to ``REFERENCE_GREY``, the median over
Tseng training cells of the same quantiles, by one monotone look-up table per cell (quantile knots,
linear between them; white stays white). It moves whole-cell differences only: a band keeps its rank
among the cell's greys.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

INK = 230               # darker than this is chromosome (the canvases' background is 255, JPEG haze ~240)
REFERENCE_LENGTH = 81.0
MIN_CHROMOSOMES = 8
GREY_INK = 250          # the greys matched: darker than this (past INK: a lighter camera keeps its faint edges)
GREY_QUANTILES = np.linspace(0.0, 1.0, 51)
# the median, over 400 Tseng training cells (tools/reference_grey.py), of each cell's ink-grey quantiles
REFERENCE_GREY = np.array([
    41.0, 84.5, 92.0, 98.0, 102.5, 106.5, 110.0, 112.0, 115.0, 117.0, 119.5, 122.0, 124.5, 126.0, 129.0, 131.0,
    133.0, 134.5, 137.0, 139.0, 141.0, 143.0, 145.0, 148.0, 150.0, 153.0, 155.0, 157.5, 160.0, 163.0, 165.5, 168.0,
    171.0, 174.0, 177.0, 180.0, 184.0, 187.0, 191.0, 195.0, 199.0, 203.0, 207.5, 212.0, 216.0, 221.0, 225.5, 231.0,
    236.0, 241.0, 249.0])
IDENTITY = np.arange(256, dtype=np.uint8)
READING_VERSION = 2     # bump when the reading changes other than through the constants above


def reading_key() -> str:
    """Names how cells are read (the constants and the version): a cache of views read this way is keyed by it."""
    facts = [READING_VERSION, INK, GREY_INK, REFERENCE_LENGTH, MIN_CHROMOSOMES, REFERENCE_GREY.tolist(),
             GREY_QUANTILES.tolist()]
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:16]


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


def ink_histogram(canvas: np.ndarray) -> np.ndarray:
    """How many pixels of each grey darker than ``GREY_INK`` (the chromosome's greys)."""
    a = np.asarray(canvas)
    return np.bincount(a[a < GREY_INK].ravel(), minlength=GREY_INK)


def ink_quantiles(histogram: np.ndarray) -> np.ndarray:
    """The ``GREY_QUANTILES`` of the greys counted in ``histogram`` (whole grey levels)."""
    cdf = np.cumsum(histogram)
    return np.searchsorted(cdf, np.maximum(GREY_QUANTILES * cdf[-1], 1)).astype(np.float64)


def grey_table(histogram: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The 256-entry look-up table that takes a cell's ink greys (their ``histogram``) to ``reference``'s
    quantiles; white (255) stays white, the greys between the cell's lightest ink and white in between."""
    if histogram.sum() == 0:
        return IDENTITY
    reference = REFERENCE_GREY if reference is None else reference
    # knots at the cell's quantiles; a grey holding several quantiles (a saturated black) goes to their mean
    xs, tie = np.unique(ink_quantiles(histogram), return_inverse=True)
    ys = np.bincount(tie, weights=reference) / np.bincount(tie)
    table = np.interp(np.arange(256), np.append(xs, 255.0), np.append(ys, 255.0))
    return np.clip(np.rint(table), 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class CellScale:
    factor: float          # applied to every canvas of the cell (1.0: not scaled)
    median_length: float   # px, before scaling (NaN when it could not be measured)
    measured: int          # chromosomes whose length was measured
    note: str = ""
    grey: np.ndarray | None = None  # the cell's 256-entry grey look-up table (None: greys as they are)


def scale_of(lengths, histogram: np.ndarray | None = None, reference: float = REFERENCE_LENGTH) -> CellScale:
    """How one cell is read: the factor that brings the median of its chromosome ``lengths`` (NaN: unmeasured)
    to ``reference``, and the grey table of its ink ``histogram`` (None: greys left as they are)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    lengths = lengths[np.isfinite(lengths)]
    if len(lengths) < MIN_CHROMOSOMES:
        return CellScale(1.0, float(np.median(lengths)) if len(lengths) else float("nan"), len(lengths),
                         f"not scaled: {len(lengths)} measurable chromosomes, fewer than {MIN_CHROMOSOMES}")
    median = float(np.median(lengths))
    return CellScale(reference / median, median, len(lengths),
                     grey=None if histogram is None else grey_table(histogram))


def cell_scale(canvases, reference: float = REFERENCE_LENGTH, grey: bool = True) -> CellScale:
    """How this cell is read: its median chromosome length brought to ``reference``, its greys (``grey``)
    to ``REFERENCE_GREY``."""
    canvases = list(canvases)
    histogram = sum(ink_histogram(c) for c in canvases) if grey and canvases else None
    return scale_of([chromosome_length(c) for c in canvases], histogram, reference)


def read(canvas: np.ndarray, scale: CellScale) -> tuple[np.ndarray, bool]:
    """One canvas as its cell is read: greys through the cell's table, then scaled (see :func:`rescale`)."""
    a = np.asarray(canvas)
    return rescale(a if scale.grey is None else scale.grey[a], scale.factor)


@dataclass(frozen=True, eq=False)
class RowScales:
    """Per row of a split, how its cell is read: ``factor`` (N,) and ``grey`` (N, 256) look-up tables, and
    ``cell`` (N,) the row's cell as a number, -1 where the row has none or its cell was too small to measure."""
    factor: np.ndarray
    grey: np.ndarray
    cell: np.ndarray

    def __len__(self) -> int:
        return len(self.factor)

    def read(self, i: int, canvas: np.ndarray) -> np.ndarray:
        """Row ``i``'s canvas as its cell is read (per sample in the loader: no objects built here)."""
        return rescale(self.grey[i][np.asarray(canvas)], float(self.factor[i]))[0]

    def cells(self) -> list[list[int]]:
        """The rows of each measured cell, in row order (what a cell-wise reading batches together)."""
        return [g.tolist() for g in _groups(self.cell) if self.cell[g[0]] >= 0]


def _groups(labels: np.ndarray) -> list[np.ndarray]:
    """The row indices of each distinct label, in row order within a group (one sort, not one scan a label)."""
    order = np.argsort(labels, kind="stable")
    return [g for g in np.split(order, np.flatnonzero(np.diff(labels[order])) + 1) if len(g)]


def row_scales(canvases, cell_ids, reference: float = REFERENCE_LENGTH, grey: bool = True) -> RowScales:
    """Per row, its cell's reading: ``canvases`` an iterable in row order (read once, only lengths and grey
    counts kept), ``cell_ids`` the rows' cells; a row without a cell (None, "") keeps its pixels and greys."""
    names, cell = np.unique(["" if c is None else str(c) for c in cell_ids], return_inverse=True)
    cell = cell.reshape(-1)
    lengths, histograms = np.full(len(cell), np.nan), np.zeros((len(names), GREY_INK), dtype=np.int64)
    for i, c in enumerate(canvases):
        lengths[i] = chromosome_length(c)
        if grey:
            histograms[cell[i]] += ink_histogram(c)
    factors, tables = np.ones(len(cell)), np.tile(IDENTITY, (len(cell), 1))
    measured = np.full(len(names), -1)
    for rows in _groups(cell):
        k = cell[rows[0]]
        if not names[k]:
            continue
        s = scale_of(lengths[rows], histograms[k] if grey else None, reference)
        factors[rows] = s.factor
        if s.grey is not None:
            tables[rows] = s.grey
        if s.measured >= MIN_CHROMOSOMES:
            measured[k] = k
    return RowScales(factors, tables, measured[cell])


def summary(scales: RowScales) -> dict:
    """What a report says of the reading: the reference and the scale factor's spread over rows."""
    f = np.asarray(scales.factor, dtype=np.float64)
    p10, p50, p90 = np.percentile(f, [10, 50, 90]) if len(f) else (1.0, 1.0, 1.0)
    return {"reference_length": REFERENCE_LENGTH, "grey": "each cell's ink greys matched to the reference",
            "factor_p10": round(float(p10), 4),
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


def normalise_cell(canvases, reference: float = REFERENCE_LENGTH, grey: bool = True
                   ) -> tuple[list[np.ndarray], CellScale]:
    """Every canvas of one cell at the reference scale (and greys, ``grey``), and how it was read."""
    canvases = list(canvases)
    scale = cell_scale(canvases, reference, grey)
    out, shrunk = [], 0
    for c in canvases:
        r, s = read(c, scale)
        out.append(r)
        shrunk += s
    if shrunk:
        scale = CellScale(scale.factor, scale.median_length, scale.measured,
                          f"{shrunk} chromosome(s) shrunk further to fit the canvas", scale.grey)
    return out, scale
