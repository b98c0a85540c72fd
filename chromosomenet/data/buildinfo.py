"""What a dataset build is given and what it reports: the types that ``build`` makes and ``card`` reads
(their own module, so the data flows one way: build → card, never back)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import labels
from .images import CANVAS


@dataclass(frozen=True)
class BuildConfig:
    raw: Path
    out: Path
    split: str = "auto"               # grouped | stratified | from-metadata | auto (grouped when groups are known)
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    group_by: str = "case_id"         # metadata.csv column that names the group (case / person)
    on_error: str = "fail"            # fail | skip
    canvas: int = CANVAS
    workers: int = 1
    max_shard_size: str = "500MB"
    license: str | None = None        # None: from the raw tree's ATTRIBUTION.md, else "unknown"
    overwrite: bool = False
    progress: bool = True


@dataclass
class BuildReport:
    out: str
    policy: str
    seed: int
    ratios: tuple[float, float, float]
    manifest_sha256: str
    counts: dict[str, list[int]]                       # split → 24 per-class counts
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    n_groups: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)   # said on stderr, in the card and here
    notes: list[str] = field(default_factory=list)      # how the tree was read (e.g. one-based folders)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(sum(c) for c in self.counts.values())

    def summary(self) -> str:
        lines = [f"built {self.out}: {self.total} images, split policy {self.policy} "
                 f"(ratios {'/'.join(f'{r:g}' for r in self.ratios)}, seed {self.seed}), "
                 f"manifest sha256 {self.manifest_sha256[:12]}…"]
        lines.append("class  " + " ".join(f"{s:>10}" for s in self.counts))
        for i, name in enumerate(labels.NAMES):
            lines.append(f"{name:>5}  " + " ".join(f"{c[i]:>10}" for c in self.counts.values()))
        lines.append("total  " + " ".join(f"{sum(c):>10}" for c in self.counts.values()))
        if self.n_groups:
            lines.append("groups " + " ".join(f"{self.n_groups.get(s, 0):>10}" for s in self.counts))
        if self.duplicates:
            lines.append(f"{len(self.duplicates)} duplicate file(s) within a class kept once (see build_report.json)")
        for path, why in self.skipped:
            lines.append(f"skipped {path}: {why}")
        lines += [f"note: {n}" for n in self.notes] + [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)
