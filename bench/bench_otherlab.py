"""The shipped classifier on another lab's cells, as they are and with each cell brought to the reference scale.

    python bench/bench_otherlab.py RAW [RAW ...] [--model local-dir:models/NAME] [--zoom 0.8 1.3]
        [--split-cases models/NAME/split_cases.csv]

``RAW`` is a raw tree in the paper's layout with ``cell_id`` in its metadata.csv: ``chromosomenet
import-cells ../shared/data/pki3/cells RAW`` for Pki-3 (another laboratory), or the embedded sample
(``chromosomenet/sample``: Tseng cases the default never saw), or a Tseng import with ``--split-cases``
(only the cells of the cases in the model's test split). For each tree it prints, per way of
reading a cell, the instance accuracy and the accuracy after the cell-level assignment (the model's
``karyotype_costs.json``):

* as they are (the training lab's pixels);
* ``cellscale``: every canvas of a cell scaled by REFERENCE_LENGTH / the cell's median chromosome length;
* ``cellscale + greys``: and the cell's ink greys matched to REFERENCE_GREY;
* ``… + together``: and the cell read as one batch with its mirror images, BatchNorm by the cell's
  statistics (``Predictor.cell``: what every path reads);
* with ``--zoom F``: every canvas first zoomed ×F (another microscope, simulated), then as they are and
  with ``cellscale``: how much of the zoom the normalisation takes back.
"""
from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from chromosomenet.data.cellscale import normalise_cell, rescale
from chromosomenet.models import shipped
from chromosomenet.pipeline.assign import assign
from chromosomenet.pipeline.cells import saved_costs
from chromosomenet.pipeline.predict import Predictor, load_classifier, predict_canvases


def read_cells(raw: Path, cases: set[str] | None) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """cell_id → (its canvases, their labels), from a raw tree's metadata.csv (only ``cases`` when given)."""
    cells: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    with open(raw / "metadata.csv", newline="") as f:
        for row in csv.DictReader(f):
            if cases is not None and row["case_id"] not in cases:
                continue
            canvases, labels = cells[row["cell_id"]]
            canvases.append(np.asarray(Image.open(raw / row["file"]).convert("L")))
            labels.append(int(row["label"]))
    return {k: (v[0], np.array(v[1])) for k, v in cells.items()}


def score(predictor: Predictor, cells, costs, transform, together: bool = False
          ) -> tuple[float, float, float, list[float]]:
    """(instance accuracy, after assignment, seconds, per-cell scale factors) with ``transform`` per cell,
    each cell read ``together`` or chromosome by chromosome."""
    right = right_after = n = 0
    factors, t0 = [], time.perf_counter()
    for canvases, y in cells.values():
        canvases, factor = transform(canvases)
        factors.append(factor)
        probs = predict_canvases(predictor, canvases, together=together)
        right += int((probs.argmax(1) == y).sum())
        right_after += int((np.array(assign(probs, costs).labels) == y).sum())
        n += len(y)
    return right / n, right_after / n, time.perf_counter() - t0, factors


# reading → (greys: None as they are / False cellscale only / True, together)
READINGS = {"as they are": (None, False), "cellscale": (False, False), "cellscale + greys": (True, False),
            "cellscale + greys + together": (True, True)}


def zoomed(f: float, grey: bool | None):
    """Each cell zoomed ×``f``, then read as they are (``grey`` None) or at the reference scale (and greys)."""
    def transform(canvases):
        canvases = [rescale(c, f)[0] for c in canvases] if f != 1.0 else list(canvases)
        if grey is None:
            return canvases, 1.0
        out, s = normalise_cell(canvases, grey=grey)
        return out, s.factor
    return transform


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("raw", nargs="+", type=Path)
    ap.add_argument("--model", default=shipped.default_spec())
    ap.add_argument("--split-cases", type=Path, help="group,split CSV: keep the cases of its test split")


def prepared(a: argparse.Namespace):
    """(the cases to keep or None, a Predictor of ``a.model``, the karyotype costs shipped beside it)."""
    cases = None
    if a.split_cases:
        with open(a.split_cases, newline="") as f:
            cases = {r["group"] for r in csv.DictReader(f) if r["split"] == "test"}
    costs, _, _ = saved_costs(str(shipped.local_folder(a.model) / shipped.COSTS))
    return cases, Predictor(*load_classifier(a.model)), costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--zoom", type=float, nargs="*", default=[])
    a = ap.parse_args()
    cases, predictor, costs = prepared(a)
    print(f"`{a.model}`\n")
    print("| cells | zoom | reading | cells / chromosomes | instance accuracy | after assignment | "
          "scale factor p10 / p50 / p90 | seconds |\n|---|---|---|---|---|---|---|---|")
    for raw in a.raw:
        cells = read_cells(raw, cases)
        n = sum(len(y) for _, y in cells.values())
        for f in [1.0, *a.zoom]:
            for reading, (grey, together) in READINGS.items():
                acc, after, sec, factors = score(predictor, cells, costs, zoomed(f, grey), together)
                p = np.percentile(factors, [10, 50, 90])
                print(f"| {raw} | ×{f:g} | {reading} | {len(cells)} / {n} | "
                      f"{100 * acc:.2f} % | {100 * after:.2f} % | {p[0]:.2f} / {p[1]:.2f} / {p[2]:.2f} | {sec:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
