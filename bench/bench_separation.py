"""Separating touching chromosomes: each box on its own (``isolate``, the import before) against all
boxes of a metaphase together (``isolate_all``, the import now), same metaphases, same run.

    python bench/bench_separation.py --src ../shared/data/tseng2023 [--metaphases 200 (0: skip)]
        [--model local-dir:models/chromosomenet-view-resnet10t-half
         (--split-cases models/chromosomenet-view-resnet10t-half/split_cases.csv | --manifest DATASET/manifest.csv)]
        [--sheet docs/separation.png]

Prints Markdown tables: the quality flags, the capture of the box's dark pixels on lone boxes
(no other box within the margin), and import speed per core (isolate + canvas + PNG encode, in
memory, one process; ``--metaphases 0`` skips them). With ``--model`` and the test cases it never
saw (``--split-cases``, the file shipped beside it, or the ``--manifest`` of the dataset it was
trained on): that fixed classifier on every metaphase of those test cases, accuracy on the
instances the old import flagged ``merged`` and on the rest, before and after, and the formerly
merged split by what separation made of them.
``--sheet``: a contact sheet of separated instances (box, before, after).
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from chromosomenet import labels
from chromosomenet.data import release, voc
from chromosomenet.importers import tseng
from chromosomenet.pipeline.isolate import MARGIN, isolate, metaphase_threshold, place_on_canvas
from chromosomenet.pipeline.predict import Predictor, load_classifier
from chromosomenet.pipeline.separate import isolate_all


def metaphase(cell) -> tuple[np.ndarray, list, list[int]]:
    gray = tseng._load_gray(cell.jpg)
    h, w = gray.shape
    boxes, ids = [], []
    for _, name, box in tseng._parse_voc(cell.xml):
        clipped = voc.clip(box, w, h) if box else None
        try:
            label = labels.id_of_denver_label(name)
        except KeyError:
            continue
        if clipped:
            boxes.append(clipped)
            ids.append(label)
    return gray, boxes, ids


def before(gray, thr, boxes):
    return [isolate(gray, thr, b) for b in boxes]


def after(gray, thr, boxes):
    return isolate_all(gray, thr, boxes)


def canvas(iso) -> Image.Image:
    return place_on_canvas(iso.crop, 300)[0]


def encode(isos) -> None:
    """What the import does with each instance after isolating it: its canvas and PNG (in memory)."""
    for iso in isos:
        canvas(iso).save(io.BytesIO(), format="PNG", compress_level=tseng.PNG_LEVEL)


def lone(boxes) -> list[bool]:
    """Boxes with no other box within MARGIN px."""
    def near(a, b):
        return a[0] - MARGIN < b[2] and b[0] < a[2] + MARGIN and a[1] - MARGIN < b[3] and b[1] < a[3] + MARGIN
    return [not any(near(a, b) for j, b in enumerate(boxes) if j != i) for i, a in enumerate(boxes)]


def capture(gray, thr, box, iso) -> float:
    x0, y0, x1, y1 = box
    dark = gray[y0:y1, x0:x1] < thr
    return float((dark & (iso.crop < 255)).sum() / max(1, dark.sum()))


def quality(cells, sheet: Path | None) -> None:
    flags = {"before": Counter(), "after": Counter()}
    caps = {"before": [], "after": []}
    secs = {"before": 0.0, "after": 0.0}
    n, tiles = 0, []
    for cell in cells:
        gray, boxes, _ = metaphase(cell)
        thr = metaphase_threshold(gray)
        alone = lone(boxes)
        n += len(boxes)
        for name, fn in (("before", before), ("after", after)):
            t = time.perf_counter()
            isos = fn(gray, thr, boxes)
            encode(isos)
            secs[name] += time.perf_counter() - t
            for b, iso, a in zip(boxes, isos, alone):
                flags[name].update(set(iso.flags) or {"ok"})
                if a:
                    caps[name].append(capture(gray, thr, b, iso))
            if name == "after" and sheet:
                old = before(gray, thr, boxes)
                tiles += [(iso.flags, gray[b[1]:b[3], b[0]:b[2]], o.crop, iso.crop)
                          for b, o, iso in zip(boxes, old, isos) if "separated" in iso.flags]
    print(f"\n{len(cells)} metaphases, {n} instances\n")
    print("| import | " + " | ".join(("ok", "separated", "overlap", "merged", "low_fill", "empty")) + " |")
    print("|---|" + "---:|" * 6)
    for name, c in flags.items():
        print(f"| {name} | " + " | ".join(f"{c[k] / n:.1%}" for k in ("ok", "separated", "overlap", "merged",
                                                                       "low_fill", "empty")) + " |")
    print("\n| import | lone boxes | capture p5 | p50 | instances/s per core | ratio |\n|---|---:|---:|---:|---:|---:|")
    for name in caps:
        rate = n / secs[name]
        print(f"| {name} | {len(caps[name])} | {np.percentile(caps[name], 5):.3f} | {np.median(caps[name]):.3f} | "
              f"{rate:.0f} | {secs['before'] / secs[name]:.2f} |")
    if sheet:
        contact_sheet(tiles, sheet)


def contact_sheet(tiles, path: Path, n: int = 30, size: int = 110) -> None:
    """``n`` random separated instances, each as the raw box, before, after."""
    pick = random.Random(0).sample(tiles, min(n, len(tiles)))
    cols = 5
    sheet = Image.new("L", (cols * (3 * size + 12), -(-len(pick) // cols) * (size + 14)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, (flags, *crops) in enumerate(pick):
        r, c = divmod(k, cols)
        for j, a in enumerate(crops):
            im = Image.fromarray(a)
            im.thumbnail((size - 4, size - 4))
            sheet.paste(im, (c * (3 * size + 12) + j * size, r * (size + 14)))
        draw.text((c * (3 * size + 12), r * (size + 14) + size), ",".join(flags), fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"\ncontact sheet of {len(pick)} of {len(tiles)} separated instances (box | before | after): {path}")


def classifier(cells, spec: str, batch: int = 256) -> None:
    model, cfg = load_classifier(spec)
    predictor = Predictor(model, cfg, torch.device("cpu"))
    hits = {k: Counter() for k in ("before", "after")}
    totals = Counter()
    for cell in cells:
        gray, boxes, ids = metaphase(cell)
        thr = metaphase_threshold(gray)
        old = before(gray, thr, boxes)
        group = ["merged before" if "merged" in o.flags else "not merged before" for o in old]
        totals.update(group)
        new = after(gray, thr, boxes)
        outcome = [f"merged before, {_outcome(n.flags)} after" if "merged" in o.flags else None
                   for o, n in zip(old, new)]
        totals.update(g for g in outcome if g)
        for name, isos in (("before", old), ("after", new)):
            canvases = torch.from_numpy(np.stack([np.asarray(canvas(i)) for i in isos]))[:, None]  # (B, 1, H, W) grey
            pred = torch.cat([predictor(canvases[i:i + batch]) for i in range(0, len(canvases), batch)]).argmax(1)
            right = [p == t for p, t in zip(pred.tolist(), ids)]
            hits[name].update(g for g, r in zip(group, right) if r)
            hits[name].update(g for g, r in zip(outcome, right) if r and g)
    print(f"\nclassifier {spec} on {len(cells)} metaphases of unseen cases\n")
    print("| instances | n | accuracy before | accuracy after |\n|---|---:|---:|---:|")
    for g in ("not merged before", "merged before", *(f"merged before, {o} after" for o in OUTCOMES)):
        if totals[g]:
            print(f"| {g} | {totals[g]} | {hits['before'][g] / totals[g]:.2%} | {hits['after'][g] / totals[g]:.2%} |")
    n = totals["not merged before"] + totals["merged before"]
    both = ("not merged before", "merged before")
    print(f"| all | {n} | {sum(hits['before'][g] for g in both) / n:.2%} | {sum(hits['after'][g] for g in both) / n:.2%} |")


OUTCOMES = ("separated", "overlap", "merged", "ok")  # what separation made of a formerly merged box


def _outcome(flags) -> str:
    """merged where separation failed, else overlap (a crossing: the harder case), separated, or ok."""
    return next((o for o in ("merged", "overlap", "separated") if o in flags), "ok")


def test_cells(cells, cases: Path) -> list:
    """The metaphases of the test cases of ``cases``: a split_cases.csv or a manifest (both have
    ``group`` and ``split``), grouped by case as ``make train`` builds (matching stems too would
    catch cells whose stem spells another case's id)."""
    with cases.open(newline="") as f:
        groups = {r["group"] for r in csv.DictReader(f) if r["split"] == "test"}
    return [c for c in cells if release.case_id_of(c.stem) in groups]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--metaphases", type=int, default=200)
    ap.add_argument("--model")
    ap.add_argument("--manifest", type=Path)
    ap.add_argument("--split-cases", type=Path)
    ap.add_argument("--sheet", type=Path)
    args = ap.parse_args()
    cells, _ = release.release_cells(args.src)
    if args.metaphases:  # 0: the classifier table only
        quality(random.Random(0).sample(cells, min(args.metaphases, len(cells))), args.sheet)
    cases = args.split_cases or args.manifest
    if args.model and cases:
        classifier(test_cells(cells, cases), args.model)


if __name__ == "__main__":
    main()
