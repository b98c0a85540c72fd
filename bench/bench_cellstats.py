"""Reading a cell together: BatchNorm by the cell's statistics, and the mirror average, each alone and both.

    python bench/bench_cellstats.py RAW [RAW ...] [--model local-dir:models/NAME] [--priors 0 16 64]
        [--split-cases models/NAME/split_cases.csv]

Every cell is first brought to the reference scale and greys (what every path does). Then each BatchNorm
layer normalises by a mix of the training set's running statistics and the cell's (its n chromosomes):
``prior`` N weighs the training statistics as N chromosomes (Schneider et al. 2020, "Improving robustness
against common corruptions by covariate shift adaptation"): N = 0 is the cell's alone, what
``Predictor.cell`` does; no prior is the training set's alone (one chromosome at a time). Each with and
without averaging every chromosome with its mirror image. Prints instance accuracy and accuracy after the
cell-level assignment per tree (``RAW`` as in bench_otherlab.py).
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from bench_otherlab import add_common_args, prepared, read_cells

from chromosomenet.data.cellscale import normalise_cell
from chromosomenet.pipeline.assign import assign


def mixed_statistics(model: torch.nn.Module, x: torch.Tensor, prior: float) -> np.ndarray:
    """Probabilities with every BatchNorm's statistics ``n / (prior + n)`` the batch's (one pass to measure
    them, layer by layer, one to read), the model's own statistics restored after."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    for m in norms:
        m.momentum = len(x) / (prior + len(x))
        m.train()
    model(x)
    model.eval()
    probs = model(x).softmax(-1).numpy()
    for m, (mean, var) in zip(norms, saved):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    return probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--priors", type=float, nargs="+", default=[0, 16, 64])
    a = ap.parse_args()
    cases, predictor, costs = prepared(a)
    own = copy.deepcopy(predictor.unfolded)
    readings = {"training statistics": None, **{f"prior {p:g}": p for p in a.priors}}
    print(f"`{a.model}`\n\n| cells | BatchNorm statistics | mirror average | cells / chromosomes | instance accuracy | "
          "after assignment | seconds |\n|---|---|---|---|---|---|---|")
    for raw in a.raw:
        cells = read_cells(raw, cases)
        n = sum(len(y) for _, y in cells.values())
        for name, prior in readings.items():
            for mirror in (False, True):
                right = right_after = 0
                t0 = time.perf_counter()
                for canvases, y in cells.values():
                    x = torch.from_numpy(np.stack(normalise_cell(canvases)[0])).unsqueeze(1)
                    with torch.inference_mode():
                        if prior == 0 and mirror:  # what every path does
                            probs = predictor.cell(x).numpy()
                        else:
                            read = predictor if prior is None else (
                                lambda v: torch.from_numpy(mixed_statistics(own, predictor.inputs(v), prior)))
                            probs = read(x).numpy()
                            probs = (probs + read(x.flip(-1)).numpy()) / 2 if mirror else probs
                    right += int((probs.argmax(1) == y).sum())
                    right_after += int((np.array(assign(probs, costs).labels) == y).sum())
                print(f"| {raw} | {name} | {'yes' if mirror else 'no'} | {len(cells)} / {n} | {100 * right / n:.2f} % | "
                      f"{100 * right_after / n:.2f} % | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
