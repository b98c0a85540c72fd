"""A smaller raw tree of the same kind for benchmarks: symlinks to chosen rows of an imported tree."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path


def read_rows(raw: Path) -> list[dict[str, str]]:
    with open(raw / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def link_rows(raw: Path, rows: list[dict[str, str]], dst: Path) -> Path:
    """``dst`` becomes a raw tree holding exactly ``rows`` (files symlinked, metadata.csv written)."""
    shutil.rmtree(dst, ignore_errors=True)
    for r in rows:
        (dst / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        os.symlink((raw / r["file"]).resolve(), dst / r["file"])
    with open(dst / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst
