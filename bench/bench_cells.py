"""Cell-level karyotyping on real normal and numerically abnormal cells held out from a model's training.

    python bench/bench_cells.py --run RUN_DIR --trained-on DATASET --raw IMPORTED_TREE [--normal 40] [--cells-per-case 1]

From an imported Tseng tree (``chromosomenet import-tseng``) it keeps the cells of cases the model
never saw (not in any split of ``--trained-on``): every numerically abnormal cell
(``karyotype_type == numerical``) and one normal cell from each of ``--normal`` other cases; builds
them into a dataset (grouped by case: validation to tune the costs and threshold, test to score) and
runs ``chromosomenet karyotype``. Prints the summary as Markdown.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

from subset import link_rows, read_rows

from chromosomenet.data.build import BuildConfig, build_dataset
from chromosomenet.pipeline.cells import KaryotypeConfig, karyotype_split


def held_out_tree(raw: Path, seen_cases: set[str], n_normal: int, dst: Path, per_case: int = 1) -> tuple[int, int]:
    """Every unseen numerically abnormal cell, and up to ``per_case`` normal cells from each of
    ``n_normal`` unseen cases (cells in id order)."""
    rows = read_rows(raw)
    abnormal = {r["cell_id"] for r in rows if r["karyotype_type"] == "numerical" and r["case_id"] not in seen_cases}
    normal: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: r["cell_id"]):
        if r["karyotype_type"] != "normal" or r["case_id"] in seen_cases:
            continue
        cells = normal.get(r["case_id"])
        if cells is None and len(normal) < n_normal:
            cells = normal[r["case_id"]] = []
        if cells is not None and r["cell_id"] not in cells and len(cells) < per_case:
            cells.append(r["cell_id"])
    chosen = {c for cells in normal.values() for c in cells}
    link_rows(raw, [r for r in rows if r["cell_id"] in abnormal or r["cell_id"] in chosen], dst)
    return len(chosen), len(abnormal)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--trained-on", required=True, help="the dataset folder the run was trained on")
    ap.add_argument("--raw", required=True, help="an import-tseng tree of the release")
    ap.add_argument("--normal", type=int, default=40, help="unseen cases that give normal cells")
    ap.add_argument("--cells-per-case", type=int, default=1, help="normal cells taken from each of them")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    with open(Path(a.trained_on) / "manifest.csv", newline="") as f:
        seen = {r["group"] for r in csv.DictReader(f)}
    work = Path(a.out or tempfile.mkdtemp(prefix="cells-bench-"))
    shutil.rmtree(work / "raw", ignore_errors=True)
    n_normal, n_abnormal = held_out_tree(Path(a.raw), seen, a.normal, work / "raw", a.cells_per_case)
    build_dataset(BuildConfig(raw=work / "raw", out=work / "ds", ratios=(0.2, 0.4, 0.4), overwrite=True,
                              on_error="skip", progress=False))
    s = karyotype_split(KaryotypeConfig(run=a.run, out=work / "cells", data=str(work / "ds"), workers=0,
                                        progress=False))
    print(f"held-out cells: {n_normal} normal (at most {a.cells_per_case} per case) + {n_abnormal} numerically abnormal; "
          f"tuned on validation, scored on test ({s['cells']} cells)\n")
    print((work / "cells" / "README.md").read_text().split("\n\n", 1)[1].split("\n\n")[0])
    print(json.dumps({k: s[k] for k in ("review_threshold", "costs")}))


if __name__ == "__main__":
    main()
