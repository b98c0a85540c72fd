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


def hold_out(raw: Path, dst: Path, n_cases: int, seed: int = 0) -> set[str]:
    """``dst`` becomes ``raw`` without every case that has a numerically abnormal cell and without
    ``n_cases`` other cases (seeded): a training tree that leaves real abnormal and normal cells
    unseen for ``bench_cells.py``. Returns the held-out case ids."""
    import random

    rows = read_rows(raw)
    abnormal = {r["case_id"] for r in rows if r["karyotype_type"] == "numerical"}
    others = sorted({r["case_id"] for r in rows} - abnormal)
    held = abnormal | set(random.Random(seed).sample(others, n_cases))
    link_rows(raw, [r for r in rows if r["case_id"] not in held], dst)
    return held


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="a training tree holding out cases for bench_cells.py")
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--hold-out-cases", type=int, default=45)
    a = ap.parse_args()
    print(f"held out {len(hold_out(a.raw, a.out, a.hold_out_cases))} cases; tree in {a.out}")
