"""The rehearsal pack shipped in the package (``chromosomenet/rehearsal``): a few whole Tseng training cells
that ``adapt`` mixes into a lab's training split so the adapted model keeps reading Tseng's cells.

    python tools/make_rehearsal.py work/raw_full models/chromosomenet-view-resnet10t-half/split_cases.csv \\
        chromosomenet/rehearsal [--cells 32] [--seed 0]

One normal cell from each of ``--cells`` cases (seeded) of the shipped model's **training** split, so the
unseen cases that measure it (its test split, the embedded sample) stay unseen; built as a dataset with every
row in ``train`` (``make rehearsal``).
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from subset import link_rows, read_rows  # noqa: E402

from chromosomenet.data.build import BuildConfig, build_dataset  # noqa: E402


def pick(rows: list[dict], train_cases: set[str], n: int, seed: int) -> set[str]:
    """One normal 46-chromosome cell (the smallest id) of each of ``n`` seeded training cases."""
    first: dict[str, str] = {}
    for r in rows:
        if r["case_id"] in train_cases and r["karyotype_type"] == "normal" and r["chromosome_count"] == "46":
            first[r["case_id"]] = min(first.get(r["case_id"], r["cell_id"]), r["cell_id"])
    cases = sorted(first)
    random.Random(seed).shuffle(cases)
    return {first[c] for c in cases[:n]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", type=Path, help="the separated import of the full release (make train's raw_full)")
    ap.add_argument("split_cases", type=Path, help="the shipped classifier's split_cases.csv")
    ap.add_argument("out", type=Path)
    ap.add_argument("--cells", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with a.split_cases.open(newline="") as f:
        train_cases = {r["group"] for r in csv.DictReader(f) if r["split"] == "train"}
    rows = read_rows(a.raw)
    cells = pick(rows, train_cases, a.cells, a.seed)
    chosen = [{**r, "split": "train"} for r in rows if r["cell_id"] in cells]
    with tempfile.TemporaryDirectory() as tmp:
        tree = link_rows(a.raw, chosen, Path(tmp) / "tseng2023-rehearsal")
        (tree / "ATTRIBUTION.md").write_text((a.raw / "ATTRIBUTION.md").read_text())
        report = build_dataset(BuildConfig(raw=tree, out=a.out, split="from-metadata", ratios=(1.0, 0.0, 0.0),
                                           overwrite=True, progress=False))
    print(report.summary())
    print(f"{len(cells)} cells, {len(chosen)} chromosomes → {a.out}")


if __name__ == "__main__":
    main()
