"""Another microscope's looks, one lever at a time: equal short fine-tunes from one start, scored on another
lab's cells and on unseen Tseng cases.

    python bench/bench_looks.py --data work/dataset --init work/stage1 --lab /tmp/pki3raw \
        --tseng /tmp/tseng_raw --split-cases models/NAME/split_cases.csv [--epochs 2] [--work /tmp/looks]

``--init`` is make train's first stage (from scratch, each canvas at its own pixels); every variant
fine-tunes it for the same ``--epochs`` (one one-cycle over them: equal work whatever else the machine
runs) with make train's second-stage recipe (lr 5e-4, rotation 10°,
each cell at the reference scale and greys) and a different set of looks: none, each look alone at make
train's strength (and the JPEG look, not in make train's recipe, alone), all of make train's. Each result is then read as every path reads cells (reference scale and
greys) on the other lab's cells (``--lab``: a raw tree from ``chromosomenet import-cells``) and on the
unseen Tseng cells (``--tseng`` with the shipped model's test cases), per chromosome and after the
cell-level assignment (the costs shipped beside the default). The start itself is the first row.
"""
from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

from bench_otherlab import read_cells, score, zoomed

from chromosomenet.data.transforms import Augment
from chromosomenet.models import shipped
from chromosomenet.pipeline.cells import saved_costs
from chromosomenet.pipeline.predict import Predictor, load_classifier
from chromosomenet.training.classifier import TrainConfig, train

LOOKS = {"scale": 0.15, "width": 0.25, "gamma": 0.4, "blur": 0.5, "noise": 0.02}  # make train's second stage
ALONE = {"jpeg": 0.5}  # measured alone, not in make train's recipe


def variants() -> dict[str, Augment]:
    plain = Augment(rotate_deg=10.0)
    return {"none": plain, **{k: replace(plain, **{k: v}) for k, v in {**LOOKS, **ALONE}.items()},
            "all": replace(plain, **LOOKS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the built Tseng dataset make train trains on")
    ap.add_argument("--init", type=Path, required=True, help="make train's first-stage weights")
    ap.add_argument("--lab", type=Path, required=True)
    ap.add_argument("--tseng", type=Path, required=True)
    ap.add_argument("--split-cases", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="variants to run (default: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/looks"))
    a = ap.parse_args()
    with open(a.split_cases, newline="") as f:
        test_cases = {r["group"] for r in csv.DictReader(f) if r["split"] == "test"}
    lab, tseng = read_cells(a.lab, None), read_cells(a.tseng, test_cases)
    costs, _, _ = saved_costs(str(shipped.local_folder(shipped.default_spec()) / shipped.COSTS))
    n_lab, n_tseng = (sum(len(y) for _, y in c.values()) for c in (lab, tseng))
    print(f"{a.epochs}-epoch fine-tunes of `{a.init}` on `{a.data}`; `{a.lab}`: {len(lab)} cells / {n_lab} "
          f"chromosomes; unseen Tseng: {len(tseng)} cells / {n_tseng}\n")
    print("| looks | epochs | other lab: instance | after assignment | unseen Tseng: instance | after assignment | "
          "minutes |\n|---|---|---|---|---|---|---|")
    runs = {"(the start)": None, **variants()}
    for name, augment in runs.items():
        if a.only and name not in a.only:
            continue
        epochs, minutes, spec = 0, 0.0, f"local-dir:{a.init}"
        if augment is not None:
            t0 = time.perf_counter()
            result = train(TrainConfig(model="chromosomenet_view_resnet10t_half", data=a.data, out=a.work / name,
                                       init=str(a.init), batch_size=64, lr=5e-4, weight_decay=0.05, pct_start=0.1,
                                       patience=100, augment=augment, eval_batch_size=256,
                                       epochs=a.epochs, progress=False))
            epochs, minutes, spec = result.epochs_run, (time.perf_counter() - t0) / 60, f"local-dir:{result.run_dir}"
        model, cfg = load_classifier(spec)
        predictor = Predictor(model, cfg)
        row = [score(predictor, cells, costs, zoomed(1.0, True))[:2] for cells in (lab, tseng)]
        print(f"| {name} | {epochs} | " + " | ".join(f"{100 * x:.2f} %" for pair in row for x in pair)
              + f" | {minutes:.1f} |", flush=True)


if __name__ == "__main__":
    main()
