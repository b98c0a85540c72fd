"""Adapting the shipped classifier to another lab: a learning curve over the number of labelled cells.

    chromosomenet import-cells ../shared/data/pki3/cells /tmp/pki3raw
    python bench/bench_adapt.py /tmp/pki3raw [--cells 5 10 20 50] [--test-share 0.4] [--epochs 15] [--work /tmp/adapt]
        [--rehearse shipped|none|DATASET] [--tseng work/raw_full --split-cases models/…/split_cases.csv]

The lab's cases are split once (seeded): ``--test-share`` of them are held out and never learnt from; the
rest are the pool. From the pool, ``--val-cells`` cells (in their own cases) are the validation split that
stops training, and the first N cells of the remaining pool (whole cases, in seeded order) are the training
split. For each N, ``chromosomenet adapt`` fine-tunes the model; the held-out cells are then read as every
path reads them (each cell at the reference scale and greys, read together) and scored per chromosome and after the cell-level
assignment. N = 0 is the model as shipped. Also printed, for forgetting: the adapted model on the cells of
the Tseng cases the shipped model never saw (``--tseng``: an import of the release, with the test cases of
``--split-cases``; else the embedded sample), and the minutes each adaptation took on this machine.
"""
from __future__ import annotations

import argparse
import csv
import random
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from bench_otherlab import read_cells, score, zoomed
from subset import link_rows, read_rows

import chromosomenet
from chromosomenet.data.build import build_dataset
from chromosomenet.data.buildinfo import BuildConfig
from chromosomenet.models import shipped
from chromosomenet.pipeline.cells import saved_costs
from chromosomenet.pipeline.predict import Predictor, load_classifier
from chromosomenet.training.adapt import AdaptConfig, adapt


def plan(rows, test_share: float, val_cells: int, seed: int) -> tuple[set[str], list[str], list[str]]:
    """(held-out cases, validation cells, the pool's cells in the order they are taken for training)."""
    cells_of: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["cell_id"] not in cells_of[r["case_id"]]:
            cells_of[r["case_id"]].append(r["cell_id"])
    cases = sorted(cells_of)
    random.Random(seed).shuffle(cases)
    n_test = round(test_share * len(cases))
    test, pool = set(cases[:n_test]), cases[n_test:]
    order = [c for case in pool for c in sorted(cells_of[case])]
    val, taken = [], 0
    for case in pool:  # whole cases to validation until it holds val_cells cells
        if taken >= val_cells:
            break
        val += sorted(cells_of[case])
        taken += len(cells_of[case])
    return test, val, [c for c in order if c not in set(val)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", type=Path, help="the lab's raw tree (chromosomenet import-cells)")
    ap.add_argument("--model", default=shipped.default_spec())
    ap.add_argument("--cells", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--test-share", type=float, default=0.4)
    ap.add_argument("--val-cells", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/adapt"))
    ap.add_argument("--rehearse", default="shipped", help="adapt's --rehearse")
    ap.add_argument("--rehearse-ratio", type=float, default=1.0, help="adapt's --rehearse-ratio")
    ap.add_argument("--distill", type=float, default=1.0, help="adapt's --distill")
    ap.add_argument("--no-source", action="store_true", help="leave out the row of the model as it is (N = 0)")
    ap.add_argument("--tseng", type=Path, help="an import of the Tseng release: score its unseen cases for forgetting")
    ap.add_argument("--split-cases", type=Path, help="with --tseng: the model's split_cases.csv (its test cases)")
    a = ap.parse_args()
    rows = read_rows(a.raw)
    test_cases, val, pool = plan(rows, a.test_share, a.val_cells, a.seed)
    val = set(val)
    held = read_cells(a.raw, test_cases)
    if a.tseng:
        with open(a.split_cases or shipped.default_model() / "split_cases.csv", newline="") as f:
            unseen = {r["group"] for r in csv.DictReader(f) if r["split"] == "test"}
        sample, kept = read_cells(a.tseng, unseen), "Tseng unseen cases"
    else:
        sample, kept = read_cells(chromosomenet.sample_dir(), None), "Tseng sample"
    n_test = sum(len(y) for _, y in held.values())
    print(f"`{a.model}` on `{a.raw}`: {len(test_cases)} held-out cases ({len(held)} cells, {n_test} chromosomes), "
          f"{len(val)} validation cells, pool of {len(pool)} cells; {a.epochs} epochs at lr {a.lr:g}, rehearsal "
          f"{a.rehearse} ×{a.rehearse_ratio:g}, distill {a.distill:g}; {kept}: {len(sample)} cells, "
          f"{sum(len(y) for _, y in sample.values())} chromosomes\n")
    print(f"| labelled cells | chromosomes learnt | held-out: instance | after assignment | {kept}: instance | "
          "after assignment | minutes |\n|---|---|---|---|---|---|---|")
    for n in ([] if a.no_source else [0]) + a.cells:
        spec, minutes, learnt = a.model, 0.0, 0
        if n:
            take = set(pool[:n])
            split_rows = [{**r, "split": "train" if r["cell_id"] in take else "validation" if r["cell_id"] in val
                           else "test"} for r in rows if r["cell_id"] in take or r["cell_id"] in val
                          or r["case_id"] in test_cases]  # the test split: scored once more by the run itself
            learnt = sum(r["split"] == "train" for r in split_rows)
            tree, ds, run = (a.work / f"{k}{n}" for k in ("raw", "ds", "run"))
            for p in (ds, run):
                shutil.rmtree(p, ignore_errors=True)
            link_rows(a.raw, split_rows, tree)
            build_dataset(BuildConfig(raw=tree, out=ds, split="from-metadata", progress=False))
            t0 = time.perf_counter()
            adapt(AdaptConfig(data=str(ds), out=run, model=a.model, epochs=a.epochs, lr=a.lr, seed=a.seed,
                              rehearse=a.rehearse, rehearse_ratio=a.rehearse_ratio,
                              distill=a.distill, progress=False))
            minutes, spec = (time.perf_counter() - t0) / 60, f"local-dir:{run}"
        model, cfg = load_classifier(spec)
        predictor = Predictor(model, cfg)
        costs, _, _ = saved_costs(str(shipped.costs_beside(spec) or shipped.costs_beside(a.model)))
        lab, lab_after, _, _ = score(predictor, held, costs, zoomed(1.0, True), together=True)
        tseng, tseng_after, _, _ = score(predictor, sample, costs, zoomed(1.0, True), together=True)
        print(f"| {n} | {learnt} | {100 * lab:.2f} % | {100 * lab_after:.2f} % | {100 * tseng:.2f} % | "
              f"{100 * tseng_after:.2f} % | {minutes:.1f} |", flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
