"""Cell-level karyotyping: exact constrained assignment, ISCN count string, review flags, cost tuning.

One cell's probabilities (n chromosomes × 24 classes) become one label per chromosome maximising
the total log-probability under a karyotype prior (two of each autosome, XX or XY, every gain or
loss allowed at a price, so a real trisomy, 45,X, 47,XXY or a lost chromosome is called rather than
forced away), solved exactly as a min-cost assignment (see :func:`assign`). Karyogram: :mod:`.karyogram`.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import expit

from ..errors import ChromosomeNetError
from ..fsutil import atomic_write_text
from ..labels import NAMES, NORMAL_AUTOSOME_COPIES, NUM_CLASSES
from ..metrics.classification import PROB_SUM_TOL
from .review import pick_threshold, risk_coverage  # noqa: F401  (re-exported: part of this API)

__all__ = ["KaryotypeCosts", "CellCall", "KaryotypeInputError", "assign", "iscn", "flag", "risk_coverage",
           "pick_threshold", "slot_offsets", "tune_costs", "call_table", "write_call", "DEFAULT_GRID"]

X_ID, Y_ID = NUM_CLASSES - 2, NUM_CLASSES - 1
VIABLE_TRISOMIES = (12, 17, 20)  # class ids of chromosomes 13, 18, 21: the trisomies seen at birth
SEX_HYPOTHESES: dict[str, tuple[int, int]] = {"XX": (2, 0), "XY": (1, 1)}  # normal (X, Y) copies


class KaryotypeInputError(ChromosomeNetError, ValueError):
    """Probabilities, counts, labels or settings that cannot be karyotyped (a ValueError too)."""


@dataclass(frozen=True)
class KaryotypeCosts:
    """Prior penalties in nats (same unit as −log p), added once per deviating copy.

    The j-th copy beyond the normal count of a class costs ``extra_* + extra_step·(j−1)`` (growing,
    so a tetrasomy costs more than two trisomies' first copies); each missing normal copy costs
    ``missing_*``. Defaults: a viable trisomy (13, 18, 21) or an extra sex chromosome costs about as
    much as a 1-in-150 event, any other autosomal gain about 1-in-22,000; a lost chromosome is
    cheaper than a gain because spreads often lose one, and X/Y losses (45,X) are cheaper still.
    """

    extra_autosome: float = 10.0
    extra_viable_trisomy: float = 5.0  # chromosomes 13, 18, 21
    extra_sex: float = 5.0  # X or Y beyond the sex hypothesis (XXY, XYY, XXX)
    extra_step: float = 5.0  # added per further copy of the same class
    missing_autosome: float = 8.0
    missing_sex: float = 5.0  # an X or Y below the hypothesis (45,X)
    # a cell with no X at all (extra): no viable karyotype lacks one; without it 3 of 7 held-out 45,X cells read 45,Y
    no_x: float = 20.0
    max_copies: int = 4  # per class; more copies of one class are never assigned
    min_plausible: int = 30  # fewer chromosomes: not one whole metaphase
    max_plausible: int = 60  # more: overlapping cells or debris
    prob_floor: float = 1e-12  # p below this counts as this, so −log p stays finite

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not np.isfinite(v) or v < 0:
                raise KaryotypeInputError(f"KaryotypeCosts.{f.name} = {v!r} is not a finite number >= 0; "
                                          "costs are penalties in nats")
        if int(self.max_copies) != self.max_copies or self.max_copies < 2:
            raise KaryotypeInputError(f"KaryotypeCosts.max_copies = {self.max_copies!r} must be an integer >= 2 "
                                      "so a normal pair fits")
        if not self.min_plausible <= self.max_plausible <= (NUM_CLASSES - 1) * self.max_copies:
            raise KaryotypeInputError(
                f"plausible range {self.min_plausible}..{self.max_plausible} must be ordered and at most "
                f"{(NUM_CLASSES - 1) * self.max_copies} (23 classes × max_copies) so every chromosome has an "
                "alternative slot; raise max_copies or lower max_plausible")
        if not 0 < self.prob_floor < 1:
            raise KaryotypeInputError(f"KaryotypeCosts.prob_floor = {self.prob_floor!r} must lie in (0, 1)")


@dataclass(frozen=True)
class CellCall:
    """The karyotype of one cell. Per-chromosome fields follow the rows of the probability matrix.

    ``confidence[i]`` = σ(Δᵢ), where Δᵢ ≥ 0 is how much the optimal objective worsens when
    chromosome i is forbidden its assigned class (the best alternative labelling of the whole cell,
    both sex hypotheses included). It is the assigned labelling's probability renormalised against
    that alternative under exp(−objective); without a prior it equals p₁/(p₁+p₂) of the top two
    classes, which is what implausible cells get. 0.5 means a tie. ``iscn`` and ``sex`` are empty
    when the count is implausible (no karyotype is called then).
    """

    labels: tuple[int, ...]
    confidence: tuple[float, ...]
    counts: tuple[int, ...]
    sex: str
    iscn: str
    plausible: bool
    message: str
    total_cost: float
    flags: tuple[bool, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(NAMES[c] for c in self.labels)


# ---------------------------------------------------------------------------------------------------
# Assignment


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0:
        return p.reshape(0, NUM_CLASSES)
    if p.ndim != 2 or p.shape[1] != NUM_CLASSES:
        raise KaryotypeInputError(f"probabilities have shape {p.shape}; pass one row of {NUM_CLASSES} class "
                                  "probabilities per chromosome of the cell (n × 24)")
    if not np.isfinite(p).all() or (p < 0).any():
        raise KaryotypeInputError("probabilities contain NaN, infinite or negative values; pass softmax outputs")
    bad = np.flatnonzero(np.abs(p.sum(1) - 1) > PROB_SUM_TOL)
    if bad.size:
        raise KaryotypeInputError(f"row {bad[0]} of the probabilities sums to {p[bad[0]].sum():.4f}, not 1; "
                                  "pass softmax outputs, not logits")
    return p


@lru_cache(maxsize=64)
def slot_offsets(costs: KaryotypeCosts) -> tuple[tuple[np.ndarray, float], ...]:
    """Per sex hypothesis: the offset of each slot (class c, copy k) and the constant Σ_c N_c·loss_c (see
    :func:`assign`): the karyotype prior as assignment columns, also for the stages that extend it."""
    k = np.arange(1, costs.max_copies + 1)[None, :]
    extra = np.full(NUM_CLASSES, costs.extra_autosome)
    extra[list(VIABLE_TRISOMIES)] = costs.extra_viable_trisomy
    extra[[X_ID, Y_ID]] = costs.extra_sex
    loss = np.full(NUM_CLASSES, costs.missing_autosome)
    loss[[X_ID, Y_ID]] = costs.missing_sex
    out = []
    for n_x, n_y in SEX_HYPOTHESES.values():
        normal = np.full(NUM_CLASSES, NORMAL_AUTOSOME_COPIES)
        normal[X_ID], normal[Y_ID] = n_x, n_y
        beyond = k - normal[:, None]  # > 0: the copy is the beyond-th extra one
        off = np.where(beyond <= 0, -loss[:, None], extra[:, None] + costs.extra_step * (beyond - 1))
        off[X_ID, 0] -= costs.no_x  # filling the first X slot refunds the no-X charge in the constant
        off.setflags(write=False)
        out.append((off.ravel(), float((normal * loss).sum()) + costs.no_x))
    return tuple(out)


def _solve(nll: np.ndarray, costs: KaryotypeCosts, forbid: tuple[int, int] | None = None) -> tuple[float, np.ndarray]:
    """Optimal objective and labels over both sex hypotheses; ``forbid=(i, c)`` bars chromosome i from c."""
    slot_class = np.repeat(np.arange(NUM_CLASSES), costs.max_copies)
    best_cost, best_labels = np.inf, np.zeros(len(nll), dtype=np.int64)
    for offsets, constant in slot_offsets(costs):
        cost = nll[:, slot_class] + offsets
        if forbid is not None:
            i, c = forbid
            cost[i, slot_class == c] = np.inf
        rows, cols = linear_sum_assignment(cost)
        total = float(cost[rows, cols].sum()) + constant
        if total < best_cost - 1e-9:  # strict: a tie keeps the first hypothesis (XX), deterministically
            best_cost, best_labels = total, slot_class[cols[np.argsort(rows)]]
    return best_cost, best_labels


def assign(probs: np.ndarray, costs: KaryotypeCosts = KaryotypeCosts()) -> CellCall:
    """Label every chromosome of one cell under the karyotype prior, exactly.

    Objective over labellings L (counts m_c = #{i: L_i = c}), minimised::

        J(L) = Σ_i −log p[i, L_i] + min_h Σ_c prior_h(c, m_c)
        prior_h(c, m) = (N_c − m)·loss_c                          if m ≤ N_c
                      = Σ_{j=1..m−N_c} (extra_c + step·(j−1))      if N_c < m ≤ max_copies (else ∞)
                      + no_x                                       if c = X and m = 0

    with N_c = 2 for autosomes and (N_X, N_Y) = (2, 0) or (1, 1) for h = XX or XY.

    Construction, per h: columns are slots (c, k), k = 1..max_copies; a chromosome in slot (c, k)
    costs −log p[i, c] plus an offset: −loss_c for a normal slot (k ≤ N_c), extra_c + step·(k−N_c−1)
    for an extra one. Every chromosome takes exactly one slot, and J_h = assignment cost +
    Σ_c N_c·loss_c. This is the dummy-row formulation ("a dummy fills each empty normal slot at
    loss_c") with the dummies eliminated: an empty normal slot is charged loss_c by the constant, a
    filled one refunds it. Offsets never decrease with k within a class and rows are interchangeable
    inside one class, so an optimal assignment fills each class's cheapest slots first, and its cost
    is exactly J_h of the labelling it induces; hence min over slots = min over labellings. Taking
    the better of the two hypotheses gives min_L J(L). Solving costs 2 assignments for the labels and
    2n more for the confidences (see :class:`CellCall`).

    A cell with fewer than ``min_plausible`` or more than ``max_plausible`` chromosomes is still
    answered, with ``plausible=False``: the prior assumes one whole metaphase, so labels are then the
    per-chromosome argmax and no karyotype is called.
    """
    p = _check_probs(probs)
    n = len(p)
    nll = -np.log(np.maximum(p, costs.prob_floor))
    if not costs.min_plausible <= n <= costs.max_plausible:
        labels = nll.argmin(1) if n else np.zeros(0, dtype=np.int64)
        two = np.sort(nll, axis=1)[:, :2]
        conf = expit(two[:, 1] - two[:, 0])
        msg = (f"{n} chromosomes is implausible for one metaphase (expected {costs.min_plausible}–"
               f"{costs.max_plausible}); labels are the per-chromosome argmax without the karyotype prior and "
               "no karyotype is called")
        return _call(labels, conf, float(nll[np.arange(n), labels].sum()), plausible=False, message=msg)
    best, labels = _solve(nll, costs)
    delta = np.array([_solve(nll, costs, forbid=(i, int(c)))[0] - best for i, c in enumerate(labels)])
    conf = expit(np.maximum(delta, 0.0))
    return _call(labels, conf, best, plausible=True, message="")


def _call(labels: np.ndarray, conf: np.ndarray, cost: float, plausible: bool, message: str) -> CellCall:
    counts = np.bincount(labels, minlength=NUM_CLASSES) if len(labels) else np.zeros(NUM_CLASSES, dtype=np.int64)
    sex, text = "", ""
    if plausible:
        sex, text = _sex(counts), iscn(counts)
        if not known_karyotype(counts):
            plausible = False
            message = (f"{text} is a count no cell is known to have: an object was likely missed, doubled or split; "
                       "check the boxes")
        elif not _is_normal(counts):
            message = (f"abnormal count {text}: confirm in further metaphases (a lost, overlapping or extra "
                       "object can mimic aneuploidy)")
    return CellCall(labels=tuple(int(c) for c in labels), confidence=tuple(float(c) for c in conf),
                    counts=tuple(int(c) for c in counts), sex=sex, iscn=text, plausible=plausible,
                    message=message, total_cost=cost, flags=(False,) * len(labels))


# ---------------------------------------------------------------------------------------------------
# ISCN


def _check_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    c = np.asarray(counts)
    if c.shape != (NUM_CLASSES,) or not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
        raise KaryotypeInputError(f"counts must be {NUM_CLASSES} non-negative integers (copies of 1..22, X, Y); "
                                  f"got shape {c.shape} of {c.dtype}")
    return c


def _sex(counts: np.ndarray) -> str:
    return "X" * int(counts[X_ID]) + "Y" * int(counts[Y_ID])


# Sex chromosome complements seen in live-born or prenatal cells (the polysomies up to five).
KNOWN_SEX = frozenset({"X", "XX", "XY", "XXX", "XXY", "XYY", "XXXX", "XXXY", "XXYY", "XYYY",
                       "XXXXX", "XXXXY", "XXXYY", "XXYYY"})


def known_karyotype(counts: Sequence[int] | np.ndarray) -> bool:
    """A numerical karyotype a cell can have: every autosome twice but at most one three times (a
    trisomy; autosomal monosomies are not seen in living cells), and a known sex complement (beside a
    trisomy at most one extra sex chromosome: 48,XXY,+21 is seen, 49,XXYY,+21 is not)."""
    c = np.asarray(counts)
    auto = c[:X_ID]
    trisomies = int((auto == 3).sum())
    return (bool(((auto == 2) | (auto == 3)).all()) and trisomies <= 1 and _sex(c) in KNOWN_SEX
            and (trisomies == 0 or len(_sex(c)) <= 3))


def _is_normal(counts: np.ndarray) -> bool:
    return bool((counts[:X_ID] == NORMAL_AUTOSOME_COPIES).all()) and _sex(counts) in SEX_HYPOTHESES


def iscn(counts: Sequence[int] | np.ndarray) -> str:
    """ISCN numerical findings only (no bands, no structural rearrangements): '47,XX,+21', '45,X'.

    Total count, then the sex chromosome complement as observed (constitutional style: 47,XXY, not
    47,XY,+X), then autosomal gains and losses in chromosome-number order regardless of type, one
    item per copy (48,XY,+13,+21; 48,XX,+21,+21; 45,XX,-15). A cell without any X or Y (not a real
    constitutional karyotype) writes '?' for the complement.
    """
    c = _check_counts(counts)
    items = [str(int(c.sum())), _sex(c) or "?"]
    for cls in range(X_ID):
        d = int(c[cls]) - NORMAL_AUTOSOME_COPIES
        items += [f"{'+' if d > 0 else '-'}{NAMES[cls]}"] * abs(d)
    return ",".join(items)


# ---------------------------------------------------------------------------------------------------
# Review flags


def flag(call: CellCall, threshold: float, forced=None) -> CellCall:
    """The call with ``flags[i] = confidence[i] < threshold or forced[i]`` (chromosomes a person should
    review; ``forced``: e.g. :func:`chromosomenet.pipeline.review.forced_review` of their quality flags)."""
    forced = [False] * len(call.confidence) if forced is None else [bool(f) for f in forced]
    if len(forced) != len(call.confidence):
        raise KaryotypeInputError(f"{len(forced)} forced-review values for a cell of {len(call.confidence)} "
                                  "chromosomes; pass one per chromosome")
    return replace(call, flags=tuple(bool(c < threshold) or f for c, f in zip(call.confidence, forced)))


# ---------------------------------------------------------------------------------------------------
# Cost tuning


DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "extra_autosome": (6.0, 10.0, 16.0),
    "extra_viable_trisomy": (3.0, 5.0, 8.0),
    "extra_sex": (3.0, 5.0, 8.0),
    "missing_autosome": (4.0, 8.0, 12.0),
    "missing_sex": (3.0, 5.0, 8.0),
}


def tune_costs(cells: Sequence[tuple[np.ndarray, np.ndarray]],
               grid: Mapping[str, Sequence[float]] | None = None) -> KaryotypeCosts:
    """Grid search over cost parameters (defaults elsewhere) on validation cells (probs, true labels).

    Score: chromosomes labelled correctly after assignment over all cells, tie-broken by the number
    of cells whose called counts give the true ISCN string; remaining ties keep the first grid point
    in the order ``itertools.product`` visits it (keys in the given order), so it is deterministic.
    """
    grid = dict(DEFAULT_GRID if grid is None else grid)
    names = {f.name for f in fields(KaryotypeCosts)}
    unknown = sorted(set(grid) - names)
    if unknown or not grid or any(len(v) == 0 for v in grid.values()):
        raise KaryotypeInputError(f"cost grid keys {unknown or sorted(grid)} are unknown or have no values; "
                                  f"use non-empty lists for fields of KaryotypeCosts ({', '.join(sorted(names))})")
    prepared = []
    for j, (probs, truth) in enumerate(cells):
        p, t = _check_probs(probs), np.asarray(truth)
        if t.shape != (len(p),) or (len(t) and (t.min() < 0 or t.max() >= NUM_CLASSES)):
            raise KaryotypeInputError(f"cell {j}: true labels must be {len(p)} class ids in 0..23")
        prepared.append((p, t.astype(np.int64), iscn(np.bincount(t.astype(np.int64), minlength=NUM_CLASSES))))
    if not prepared:
        raise KaryotypeInputError("no validation cells to tune on; pass (probs, true_labels) pairs")
    best, best_score = KaryotypeCosts(), (-1, -1)
    for values in itertools.product(*grid.values()):
        costs = KaryotypeCosts(**dict(zip(grid, values)))
        score = [0, 0]
        for p, t, true_iscn in prepared:
            labels = _labels_only(p, costs)
            score[0] += int((labels == t).sum())
            score[1] += iscn(np.bincount(labels, minlength=NUM_CLASSES)) == true_iscn
        if tuple(score) > best_score:
            best, best_score = costs, tuple(score)
    return best


def _labels_only(p: np.ndarray, costs: KaryotypeCosts) -> np.ndarray:
    """Assigned labels without the 2n confidence solves (what tuning needs)."""
    nll = -np.log(np.maximum(p, costs.prob_floor))
    if costs.min_plausible <= len(p) <= costs.max_plausible:
        return _solve(nll, costs)[1]
    return nll.argmin(1) if len(p) else np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# Tables


def call_table(call: CellCall, ids: Sequence[str | int]) -> list[dict]:
    """One row per chromosome: id, label name, confidence (6 decimals), flag."""
    if len(ids) != len(call.labels):
        raise KaryotypeInputError(f"got {len(ids)} ids for {len(call.labels)} chromosomes; pass one id per row "
                                  "of the probability matrix")
    flags = call.flags or (False,) * len(call.labels)
    return [{"id": str(i), "label": NAMES[c], "confidence": round(conf, 6), "flag": bool(f)}
            for i, c, conf, f in zip(ids, call.labels, call.confidence, flags)]


def write_call(call: CellCall, ids: Sequence[str | int], out_dir: str | Path, stem: str,
               source: str | Path | Sequence[Path] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (the table) and ``<stem>.json`` (the cell summary + table, and what it was read
    from: ``source``, the metaphase image, or ``files``, the cell's images row by row, so ``adapt`` finds them
    again), each atomically. The json is the call as made: a lab corrects the csv (or the VOC file)."""
    rows = call_table(call, ids)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "label", "confidence", "flag"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    summary = {"iscn": call.iscn, "sex": call.sex, "plausible": call.plausible, "message": call.message,
               "n": len(call.labels), "total_cost": round(call.total_cost, 6),
               "counts": dict(zip(NAMES, call.counts)), "flagged": sum(r["flag"] for r in rows),
               "chromosomes": rows}
    if isinstance(source, (str, Path)):
        summary["source"] = str(Path(source).resolve())
    elif source is not None:
        summary["files"] = [str(Path(f).resolve()) for f in source]
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return csv_path, json_path
