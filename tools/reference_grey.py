"""Measure ``cellscale.REFERENCE_GREY``: the median, over training cells, of each cell's ink-grey quantiles.

    python tools/reference_grey.py RAW --split-cases models/NAME/split_cases.csv [--cells 400]

``RAW`` is a Tseng import (``chromosomenet import-tseng``); only cells of cases outside the model's test
split are read, a random ``--cells`` of them (seed 0). Prints the 51 values to paste into cellscale.py.
"""
from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from chromosomenet.data.cellscale import ink_histogram, ink_quantiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", type=Path)
    ap.add_argument("--split-cases", type=Path, required=True)
    ap.add_argument("--cells", type=int, default=400)
    a = ap.parse_args()
    with open(a.split_cases, newline="") as f:
        test = {r["group"] for r in csv.DictReader(f) if r["split"] == "test"}
    files = defaultdict(list)
    with open(a.raw / "metadata.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["case_id"] not in test:
                files[r["cell_id"]].append(r["file"])
    cells = random.Random(0).sample(sorted(files), min(a.cells, len(files)))
    quantiles = [ink_quantiles(sum(ink_histogram(np.asarray(Image.open(a.raw / p).convert("L"))) for p in files[c]))
                 for c in cells]
    print(f"# median over {len(cells)} cells of {a.raw}")
    print(np.array2string(np.median(quantiles, 0), separator=", ", precision=1, max_line_width=100))


if __name__ == "__main__":
    main()
