"""The count stage: which of the detector's doubtful candidates are chromosomes, decided with the whole cell.

    chosen = choose_count(probs, scores, costs)      # (N,) bool over the candidates, probs (N, 24)

A box's score alone cannot say "a second box on a chromosome already counted" or "the chromosome a
cell is missing"; the cell's classes can: a duplicate makes a third copy of a class, a missed
chromosome leaves its class one short. So every candidate from ``lo`` up is read by the classifier,
and the ones between ``lo`` and ``sure`` are taken or left out by one exact assignment (the karyotype
prior of :func:`.assign.assign`, its gains and losses weakened by ``prior_weight``) that weighs each
candidate's evidence, ``weight · logit(score)``, against the copies it would make. Candidates at or
above ``sure`` are always taken, so a clear extra or missing chromosome still shows (a trisomy's
third copy, a lost X); the prior only settles the boxes the detector itself is unsure of.

Why weakened: at full strength the prior makes nearly every cell 46 (on validation, 99 % of the cells
of 46 get their exact count, and none of the 10 cells of 45 or 47 do: it fills the gap with debris or a
part). ``prior_weight`` 0.3 is where, on the validation split, the cells of 45 and 47 count as
well as with the score threshold alone while the cells of 46 count right twice as often (bench/RESULTS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..labels import NUM_CLASSES
from .assign import KaryotypeCosts, KaryotypeInputError, slot_offsets

UNREACHABLE = 1e9  # a cost no assignment takes while another one exists


@dataclass(frozen=True)
class CountChoice:
    """The operating point (tuned on the validation split of the shipped detector; bench/RESULTS.md)."""
    lo: float = 0.2            # candidates below this score are never counted (and never read)
    sure: float = 0.8          # candidates at or above it are always counted
    weight: float = 1.0        # nats of evidence per unit of the score's logit
    prior_weight: float = 0.3  # share of the karyotype prior's gain and loss costs the count may use

    def __post_init__(self) -> None:
        if not 0 < self.lo <= self.sure <= 1 or self.weight <= 0 or not 0 <= self.prior_weight <= 1:
            raise KaryotypeInputError(f"{self} needs 0 < lo ≤ sure ≤ 1, weight > 0 and 0 ≤ prior_weight ≤ 1")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def choose_count(probs: np.ndarray, scores: np.ndarray, costs: KaryotypeCosts = KaryotypeCosts(),
                 choice: CountChoice = CountChoice()) -> np.ndarray:
    """(N,) bool: the candidates counted as chromosomes. ``probs`` (N, 24) the classifier's, ``scores`` (N,).

    Objective, minimised over the counted set S and its labels L (both sex hypotheses, as ``assign``)::

        Σ_{i∈S} −log p[i, L_i] + prior_weight·prior(counts of L) + Σ_{i∉S} weight·logit(score_i)

    solved exactly: the slot columns of :func:`.assign.assign` plus one "left out" column per candidate
    (barred for the sure ones). Leaving out a candidate of score 0.5 costs nothing, one of 0.2 gains 1.4.
    """
    p = np.asarray(probs, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if p.ndim != 2 or p.shape[1:] != (NUM_CLASSES,) or s.shape != p.shape[:1]:
        raise KaryotypeInputError(f"probabilities {p.shape} and scores {s.shape} must be (N, {NUM_CLASSES}) and (N,)")
    n = len(s)
    chosen = s >= choice.sure
    if not n or chosen.all():
        return chosen
    weak = replace(costs, **{f: getattr(costs, f) * choice.prior_weight for f in
                             ("extra_autosome", "extra_viable_trisomy", "extra_sex", "extra_step", "missing_autosome",
                              "missing_sex", "no_x")})
    nll = -np.log(np.maximum(p, costs.prob_floor))
    slot_class = np.repeat(np.arange(NUM_CLASSES), costs.max_copies)
    out = np.full((n, n), UNREACHABLE)
    np.fill_diagonal(out, np.where(chosen, UNREACHABLE, choice.weight * _logit(s)))
    best, best_in = np.inf, chosen
    for offsets, constant in slot_offsets(weak):
        cost = np.hstack([nll[:, slot_class] + offsets, out])
        rows, cols = linear_sum_assignment(cost)
        total = float(cost[rows, cols].sum()) + constant
        if total < best - 1e-9:
            best, best_in = total, np.zeros(n, dtype=bool)
            best_in[rows[cols < len(slot_class)]] = True
    return best_in | chosen
