"""Fixed, leakage-free train/validation/test assignment.

``grouped``: no group (case, person) lands in two splits; class proportions are kept as close as
the groups allow (scikit-learn's StratifiedGroupKFold, once for test and once for validation).
``stratified``: per instance, the paper's random stratified 80/10/10, exact to one instance per class.
``from-metadata`` (the split a release ships) lives in ``official.py``; it reuses the carve below.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from ..errors import DatasetError

SPLITS = ("train", "validation", "test")
POLICIES = ("grouped", "stratified")


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    # validation or test may be 0 (a split left empty on purpose: adapt's cells, a rehearsal pack); train not
    if len(ratios) != 3 or ratios[0] <= 0 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise DatasetError(f"--ratios must be three numbers (train validation test), train positive, the others "
                           f"positive or 0, summing to 1, not {' '.join(map(str, ratios))}")
    return tuple(float(r) for r in ratios)  # type: ignore[return-value]


def _hold_out_groups(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int,
                     fix: str = "add cases or use --split stratified") -> np.ndarray:
    """Boolean mask of one StratifiedGroupKFold fold holding ~``fraction`` of the data (none for 0)."""
    if fraction <= 0:
        return np.zeros(len(y), dtype=bool)
    n_splits = max(2, round(1 / fraction))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise DatasetError(f"a grouped split with a {fraction:.0%} hold-out needs at least {n_splits} "
                           f"groups, found {n_groups}; {fix}")
    largest = int(np.unique(y, return_counts=True)[1].max())
    if largest < n_splits:  # else scikit-learn's own ValueError would escape as a traceback
        raise DatasetError(f"a grouped split with a {fraction:.0%} hold-out needs a class with at least "
                           f"{n_splits} images, the largest has {largest}; {fix}")
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(sgkf.split(np.zeros(len(y)), y, groups))
    mask = np.zeros(len(y), dtype=bool)
    mask[held] = True
    return mask


def grouped_split(y: Sequence[int], groups: Sequence[str], ratios: Sequence[float], seed: int) -> list[str]:
    _, val, test = check_ratios(ratios)
    y, groups = np.asarray(y), np.asarray(groups)
    out = np.full(len(y), "train", dtype=object)
    is_test = _hold_out_groups(y, groups, test, seed)
    out[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    is_val = _hold_out_groups(y[rest], groups[rest], val / (1 - test), seed + 1)
    out[rest[is_val]] = "validation"
    return out.tolist()


def _largest_remainder(n: int, ratios: Sequence[float]) -> list[int]:
    """Integer counts summing to ``n``, each within 1 of ``n * ratio`` (Hamilton's method)."""
    exact = [n * r for r in ratios]
    counts = [int(np.floor(e)) for e in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _per_class_cut(y: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Index into ``ratios`` per instance: per class, a seeded shuffle cut at largest-remainder counts."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=int)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        bounds = np.cumsum([0] + _largest_remainder(len(members), ratios))
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            out[members[lo:hi]] = k
    return out


def stratified_split(y: Sequence[int], ratios: Sequence[float], seed: int) -> list[str]:
    """The paper's per-instance split, every class within one instance of its share of every split.

    Not ``train_test_split(stratify=...)`` twice, as the paper's 80/10/10 is usually done: its two
    rounding steps compound (measured: up to 1.2 instances off per class and split), while one
    allocation per class keeps every class within one instance of its share, for any dataset size.
    """
    return [SPLITS[k] for k in _per_class_cut(np.asarray(y), check_ratios(ratios), seed)]


def carve_validation(y: Sequence[int], groups: Sequence[str] | None, fraction: float, seed: int) -> np.ndarray:
    """Mask of the (train) instances to move to validation: whole groups when groups are known, the
    same StratifiedGroupKFold hold-out as ``grouped``; else per class, as ``stratified`` cuts."""
    y = np.asarray(y)
    if groups is None:
        return _per_class_cut(y, (1 - fraction, fraction), seed) == 1
    return _hold_out_groups(y, np.asarray(groups), fraction, seed,
                            fix="mark validation files in metadata.csv's split column or use --split grouped")


def crossing_groups(groups: Sequence[str], splits: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(group, its splits in SPLITS order) for every group with instances in more than one split."""
    seen: dict[str, set[str]] = {}
    for g, s in zip(groups, splits):
        seen.setdefault(g, set()).add(s)
    return [(g, tuple(s for s in SPLITS if s in ss)) for g, ss in seen.items() if len(ss) > 1]


def assign_splits(y: Sequence[int], groups: Sequence[str] | None, policy: str,
                  ratios: Sequence[float], seed: int) -> list[str]:
    """One of ``SPLITS`` per instance; deterministic for the same input and seed."""
    if policy == "grouped":
        if groups is None:
            raise DatasetError("a grouped split needs a group per file (metadata.csv); "
                               "add one or use --split stratified")
        return grouped_split(y, groups, ratios, seed)
    if policy == "stratified":
        return stratified_split(y, ratios, seed)
    raise DatasetError(f"unknown split policy {policy!r}; choose one of {', '.join(POLICIES)}")
