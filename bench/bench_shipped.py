"""The shipped model on unseen cases: instance accuracy by import quality, and cell-level numbers
beside the floor a uniform-probability model reaches with the same prior and costs.

    python bench/bench_shipped.py --eval EVAL_DIR --data DATASET --raw RAW_TREE --costs COSTS_JSON [--split test]

EVAL_DIR: `chromosomenet evaluate MODEL --data DATASET --split test --out EVAL_DIR`; RAW_TREE: the
imported tree DATASET was built from (its metadata.csv has the `quality` flag: ok / merged / low_fill).
Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from chromosomenet import labels
from chromosomenet.data.loading import load_splits
from chromosomenet.evaluation.evaluate import PROB_COLUMNS
from chromosomenet.pipeline.assign import assign, flag, iscn
from chromosomenet.pipeline.cells import NORMAL_ISCN, saved_costs
from chromosomenet.pipeline.review import forced_review


def cell_summary(probs: np.ndarray, y: np.ndarray, cells: np.ndarray, kinds: dict[str, str], costs,
                 threshold: float, forced: np.ndarray) -> dict:
    exact_normal, exact_num, false_calls, correct, flagged = [], [], [], [], []
    for cell in sorted(set(cells)):
        idx = np.flatnonzero(cells == cell)
        call = flag(assign(probs[idx], costs), threshold, forced[idx])
        truth = iscn(np.bincount(y[idx], minlength=labels.NUM_CLASSES))
        correct.append(np.asarray(call.labels) == y[idx])
        flagged.append(np.asarray(call.flags))
        if kinds[cell] == "normal" and truth in NORMAL_ISCN:
            exact_normal.append(call.iscn == truth)
            false_calls.append(call.iscn not in NORMAL_ISCN)
        elif kinds[cell] == "numerical":
            exact_num.append(call.iscn == truth)
    correct_all, flag_all = np.concatenate(correct), np.concatenate(flagged)
    return {"after": correct_all.mean(), "normal": np.mean(exact_normal), "n_normal": len(exact_normal),
            "numerical": np.mean(exact_num) if exact_num else None, "n_numerical": len(exact_num),
            "false_per_100": 100 * np.mean(false_calls), "flagged": flag_all.mean(),
            "unflagged": correct_all[~flag_all].mean() if (~flag_all).any() else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", required=True, type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--costs", required=True)
    ap.add_argument("--split", default="test")
    a = ap.parse_args()
    table = pq.read_table(a.eval / "predictions.parquet").to_pandas()
    probs = table[list(PROB_COLUMNS)].to_numpy(np.float64)
    y, pred, cells = table["label"].to_numpy(), table["predicted"].to_numpy(), table["cell_id"].to_numpy()
    with open(a.raw / "metadata.csv", newline="") as f:
        meta = {r["file"]: r for r in csv.DictReader(f)}
    quality = np.asarray([meta[f]["quality"] for f in table["id"]])
    print("| instances (test, unseen cases) | n | accuracy % |\n|---|---|---|")
    for name, mask in (("all", np.ones(len(y), bool)), ("not merged", quality != "merged"),
                       ("merged", quality == "merged")):
        print(f"| {name} | {mask.sum():,} | {100 * (pred[mask] == y[mask]).mean():.2f} |")
    split = load_splits(a.data, need=(a.split,))[a.split]
    kinds = dict(zip(map(str, split["cell_id"]), split["karyotype_type"]))
    # always reviewed, as `karyotype` does: by the dataset's own quality flags (its import, not --raw's)
    row = {f: i for i, f in enumerate(split["file"])}
    forced = forced_review(np.asarray(split["quality"])[[row[f] for f in table["id"]]])
    costs, threshold, _ = saved_costs(a.costs)
    model = cell_summary(probs, y, cells, kinds, costs, threshold, forced)
    uniform = cell_summary(np.full_like(probs, 1 / labels.NUM_CLASSES), y, cells, kinds, costs, threshold, forced)
    f = lambda v: "–" if v is None else f"{100 * v:.2f}"  # noqa: E731
    print(f"\ncells: {len(set(cells))} ({model['n_normal']} normal 46,XX/46,XY; {model['n_numerical']} numerically "
          f"abnormal); costs and threshold {threshold:.4f} from {a.costs}\n")
    print("| measure | shipped model | uniform-probability floor |\n|---|---|---|")
    print(f"| instance accuracy before assignment % | {100 * (pred == y).mean():.2f} | {100 / 24:.2f} |")
    for key, label in (("after", "instance accuracy after assignment %"), ("normal", "exact ISCN, normal cells %"),
                       ("numerical", "exact ISCN, numerically abnormal cells %"), ("flagged", "flagged for review %"),
                       ("unflagged", "accuracy of the unflagged %")):
        print(f"| {label} | {f(model[key])} | {f(uniform[key])} |")
    print(f"| false aneuploidy calls per 100 normal cells | {model['false_per_100']:.1f} | {uniform['false_per_100']:.1f} |")
    print(f"\n(flagged includes the {100 * forced.mean():.2f} % always reviewed for their quality flags)")
    print(json.dumps({"threshold": threshold}))


if __name__ == "__main__":
    main()
