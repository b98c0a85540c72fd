"""``--split from-metadata``: the split a public release ships, from metadata.csv's ``split`` column.

Test stays exactly as the source says, so scores compare with others using the official split. A
release without validation gets one carved out of its train (by group where groups are known). A
group in two splits is reported, not repaired: keeping the official split is the point of this
policy, and ``--split grouped`` is the answer when leakage matters more.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import BadInputError
from .scan import ScanResult
from .splits import carve_validation, check_ratios, crossing_groups

COLUMN = "split"
_VALUES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
_FIX = "fill the split column (train, validation or test) for every image, or use --split grouped"


def read_split_column(scan: ScanResult) -> list[str]:
    """One of SPLITS per record; any missing or unknown value is refused, naming the first."""
    path = scan.root / "metadata.csv"
    if COLUMN not in scan.metadata.types:
        raise BadInputError(path, f"has no {COLUMN!r} column" if path.exists() else
                            f"does not exist, so no image has a {COLUMN!r}", _FIX)
    raw = [scan.metadata.get(r.file)[COLUMN] for r in scan.records]
    out = [_VALUES.get((v or "").strip().lower()) for v in raw]
    bad = [i for i, s in enumerate(out) if s is None]
    if bad:
        first, value = scan.records[bad[0]].file, (raw[bad[0]] or "").strip()
        what = f"{value!r}, not train, validation (val) or test" if value else "empty"
        more = f" ({len(bad) - 1} more file(s) likewise)" if len(bad) > 1 else ""
        raise BadInputError(path, f"the {COLUMN!r} of {first} is {what}{more}", _FIX)
    return out  # type: ignore[return-value]


def metadata_split(scan: ScanResult, y: Sequence[int], groups: Sequence[str] | None, group_by: str,
                   ratios: Sequence[float], seed: int) -> tuple[list[str], list[str], list[str]]:
    """(split per record, notes, warnings) for the build report."""
    t, v, _ = check_ratios(ratios)
    splits = np.array(read_split_column(scan), dtype=object)
    notes, warnings = [], []
    train = np.flatnonzero(splits == "train")
    if len(train) and not (splits == "validation").any():
        train_groups = None if groups is None else np.asarray(groups)[train]
        moved = carve_validation(np.asarray(y)[train], train_groups, v / (t + v), seed)
        splits[train[moved]] = "validation"
        if train_groups is None:
            how = (f"per instance, stratified by class ({moved.mean():.0%} of train's images; "
                   f"no {group_by!r} column to carve by group)")
        else:
            share = len(set(train_groups[moved])) / len(set(train_groups))
            how = f"by {group_by} ({share:.0%} of train's groups, {moved.sum()} of {len(train)} images)"
        notes.append(f"validation carved from train {how}; metadata.csv's split names no validation files")
    if groups is None:
        notes.append(f"leakage across splits could not be checked: metadata.csv has no {group_by!r} column "
                     f"(name the group column with --group-by)")
    elif crossing := crossing_groups(groups, splits):
        first = ", ".join(f"{g} {'+'.join(s)}" for g, s in crossing[:3])
        warnings.append(f"{len(crossing)} group(s) ({group_by}) have images in more than one split "
                        f"(first: {first}): metadata.csv's split leaks {group_by} across splits; "
                        f"use --split grouped for a leakage-free split")
    return splits.tolist(), notes, warnings

