"""The detector and the bare-metaphase pipeline on unseen cases, beside the same pipeline on the annotated boxes.

    python bench/bench_detect.py --src ../shared/data/tseng2023
        [--detector local-dir:models/chromosomenet-detector-resnet10t-half]
        [--classifier local-dir:models/chromosomenet-view-resnet10t-half] [--limit N] [--sheet docs/detection.png]

The test split is the detector's own (its ``split_cases.csv``: the cases the default classifier held out too,
so neither model saw them). Prints Markdown tables:

* detection, class-agnostic (pycocotools): AP50, AP50:95, AP75; recall and precision at IoU 0.5 at the
  operating threshold; metaphases whose count is exact; the missed boxes and the false ones, the latter by
  where they lie (on no chromosome: nuclei, debris, background; on a chromosome: a part, two as one, a double);
* end to end, bare image vs annotated boxes (same separation, classifier and assignment): accuracy of the
  chromosomes matched at IoU 0.5 before and after assignment, exact ISCN count on normal cells, false
  aneuploidy calls per 100 normal cells;
* speed on this machine: detection per metaphase, metaphase → karyogram, each against a plain reference
  measured in the same run (torchvision's stock FCOS-ResNet-50-FPN at the same input; the pipeline on the
  annotated boxes).

``--sheet``: a contact sheet of missed boxes (green) and false ones (red), with their surroundings.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.ops import box_iou

from chromosomenet.data.images import decode_gray
from chromosomenet.data.metaphases import release_metaphases
from chromosomenet.labels import NUM_CLASSES
from chromosomenet.metrics.detection import detection_metrics, match_boxes
from chromosomenet.models import shipped
from chromosomenet.pipeline.assign import iscn
from chromosomenet.pipeline.cases import case_row
from chromosomenet.pipeline.detect import load_detector
from chromosomenet.pipeline.metaphase import MetaphaseConfig, class_of, karyotype_one, load_pipeline

NORMAL_ISCN = ("46,XX", "46,XY")


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def false_positive_kinds(truth: np.ndarray, boxes: np.ndarray, pairs) -> tuple[int, int, list[int]]:
    """(on no chromosome, on a chromosome, indices of the false boxes)."""
    matched = {j for _, j in pairs}
    false = [j for j in range(len(boxes)) if j not in matched]
    if not false:
        return 0, 0, []
    iou = (box_iou(torch.from_numpy(boxes[false]), torch.from_numpy(truth)).numpy().max(1) if len(truth)
           else np.zeros(len(false)))
    return int((iou < 0.1).sum()), int((iou >= 0.1).sum()), false


def voc_of(m) -> str:
    return str(m.image.parents[1] / "annotations" / f"{m.stem}.xml")


def reference_speed(grays, scale: float, n: int = 4) -> float:
    """Seconds per metaphase of torchvision's stock FCOS-ResNet-50-FPN (random weights) at the same input."""
    from torchvision.models.detection import fcos_resnet50_fpn

    model = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2).eval()
    times = []
    for g in grays[:n]:
        h, w = g.shape
        x = torch.from_numpy(g).float().div(255).expand(3, h, w)
        model.transform.min_size, model.transform.max_size = (round(min(h, w) * scale),), round(max(h, w) * scale)
        with torch.inference_mode():
            t0 = time.perf_counter()
            model([x])
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sheet(items, path: Path, cols: int = 8, tile: int = 160) -> None:
    """items: (gray, box, colour, caption). Each tile: the box with 24 px around it, the box drawn."""
    rows = max(1, -(-len(items) // cols))
    out = Image.new("RGB", (cols * tile, rows * (tile + 14)), "white")
    draw = ImageDraw.Draw(out)
    for k, (gray, box, colour, caption) in enumerate(items):
        x0, y0, x1, y1 = (int(v) for v in box)
        h, w = gray.shape
        cx0, cy0, cx1, cy1 = max(0, x0 - 24), max(0, y0 - 24), min(w, x1 + 24), min(h, y1 + 24)
        crop = Image.fromarray(gray[cy0:cy1, cx0:cx1]).convert("RGB")
        ImageDraw.Draw(crop).rectangle((x0 - cx0, y0 - cy0, x1 - cx0 - 1, y1 - cy0 - 1), outline=colour, width=2)
        crop.thumbnail((tile, tile))
        r, c = divmod(k, cols)
        out.paste(crop, (c * tile, r * (tile + 14)))
        draw.text((c * tile + 2, r * (tile + 14) + tile), caption, fill=(0, 0, 0))
    out.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--detector", default=shipped.default_spec(shipped.DEFAULT_DETECTOR))
    ap.add_argument("--classifier", default=shipped.default_spec())
    ap.add_argument("--limit", type=int, help="first N test metaphases")
    ap.add_argument("--sheet", type=Path)
    ap.add_argument("--no-count", action="store_true", help="the pipeline counts by the detector's threshold alone "
                                                           "(else the count stage settles its doubtful boxes)")
    ap.add_argument("--verify", action="store_true", help="with the verifier beside the detector (else the detector "
                                                          "alone: its own score threshold and NMS)")
    a = ap.parse_args()
    folder = Path(a.detector.split(":", 1)[1])
    test = release_metaphases(a.src, folder / "split_cases.csv")["test"][:a.limit]
    detector = load_detector(a.detector, verify=a.verify)
    pipe = load_pipeline(MetaphaseConfig(images=(), out=Path("."), classifier=a.classifier, detector=a.detector,
                                         count=not a.no_count))
    pipe.detector = detector
    # the operating threshold of what the pipeline keeps: the verifier's p, or the detector's own score
    thr = detector.verifier.op.threshold if detector.verifier else detector.operating["score_threshold"]
    truth, found, det_s, bare_s = [], [], [], []
    counted = {"46": [0, 0], "other": [0, 0], "tp": 0, "boxes": 0}  # cells [exact, n] by annotated count
    tally = {m: {"matched": 0, "right_before": 0, "right_after": 0, "n": 0, "normal": 0, "normal_exact": 0,
                 "false_aneuploidy": 0} for m in ("bare", "annotated")}
    kinds, misses, falses, cases = [0, 0], [], [], {}
    work = Path(tempfile.mkdtemp(prefix="bench_detect."))
    for m in test:
        gray = decode_gray(m.image.read_bytes(), str(m.image))
        t0 = time.perf_counter()
        all_found = detector(gray)
        det_s.append(time.perf_counter() - t0)
        truth.append(m.boxes)
        found.append((all_found.boxes, all_found.scores))
        kept = all_found.kept
        pairs = match_boxes(m.boxes, kept.boxes)
        off, on, false = false_positive_kinds(m.boxes, kept.boxes, pairs)
        kinds[0] += off
        kinds[1] += on
        hit = {i for i, _ in pairs}
        misses += [(gray, m.boxes[i], (0, 160, 0), f"{m.stem} missed") for i in range(len(m.boxes)) if i not in hit]
        falses += [(gray, kept.boxes[j], (220, 0, 0), f"{m.stem} {kept.scores[j]:.2f}") for j in false]
        ann = karyotype_one(pipe, gray, m.image.name, work / "annotated", voc_of(m))
        t_classes = np.array([class_of(n) if n else -1 for n in ann.annotated])
        true_iscn = iscn(np.bincount(t_classes, minlength=NUM_CLASSES))
        t0 = time.perf_counter()
        bare = karyotype_one(pipe, gray, m.image.name, work / "bare")
        bare_s.append(time.perf_counter() - t0)
        group = counted["46" if len(m.boxes) == 46 else "other"]
        group[0] += len(bare.boxes) == len(m.boxes)
        group[1] += 1
        counted["tp"] += len(match_boxes(m.boxes, np.asarray(bare.boxes, np.float32)))
        counted["boxes"] += len(bare.boxes)
        cases.setdefault(m.case, []).append({**bare.row, "true_iscn": true_iscn, "true_n": len(m.boxes),
                                             "type": m.karyotype_type})
        for mode, r in (("bare", bare), ("annotated", ann)):
            t = tally[mode]
            before, after = r.probs.argmax(1), np.asarray(r.call.labels)
            mp = (match_boxes(m.boxes, np.asarray(r.boxes, np.float32)) if mode == "bare"
                  else [(i, i) for i in range(len(r.boxes))])
            t["matched"] += len(mp)
            t["right_before"] += sum(int(before[j] == t_classes[i]) for i, j in mp)
            t["right_after"] += sum(int(after[j] == t_classes[i]) for i, j in mp)
            t["n"] += len(m.boxes)
            if m.karyotype_type == "normal" and true_iscn in NORMAL_ISCN:
                t["normal"] += 1
                t["normal_exact"] += r.call.iscn == true_iscn
                t["false_aneuploidy"] += r.call.iscn not in NORMAL_ISCN
    # the annotated pipeline's own time, measured apart (the loop above reused its result for the tally)
    ann_s = []
    for m in test[:20]:
        gray = decode_gray(m.image.read_bytes(), str(m.image))
        t0 = time.perf_counter()
        karyotype_one(pipe, gray, m.image.name, work / "annotated", voc_of(m))
        ann_s.append(time.perf_counter() - t0)
    det = detection_metrics(truth, found, thr)
    print(f"## Detection on {len(test)} test metaphases of {len({m.case for m in test})} unseen cases "
          f"(`{a.detector}`, " + (f"verifier p ≥ {thr:g}, same object at IoU ≥ {detector.verifier.op.nms_iou:g})\n"
          if detector.verifier else f"score ≥ {thr:g}, NMS IoU {detector.operating['nms_threshold']:g})\n"))
    print("| measure | value |\n|---|---|")
    for k, v in (("AP50, class-agnostic (pycocotools)", pct(det["ap50"]) + " %"), ("AP50:95", pct(det["ap50_95"]) + " %"),
                 ("AP75", pct(det["ap75"]) + " %"), ("recall at IoU 0.5", pct(det["recall50"]) + " %"),
                 ("precision at IoU 0.5", pct(det["precision50"]) + " %"),
                 ("metaphases with the exact chromosome count", pct(det["exact_count"]) + " %"),
                 ("boxes missed / annotated", f"{det['missed50']} / {det['true_boxes']}"),
                 ("false boxes: on no chromosome (nucleus, debris, background)", kinds[0]),
                 ("false boxes: on a chromosome (a part, two as one, a double)", kinds[1]),
                 ("count error per metaphase (found − annotated): min / median / max",
                  f"{min(det['count_error'])} / {int(np.median(det['count_error']))} / {max(det['count_error'])}")):
        print(f"| {k} | {v} |")
    cells = [c for cs in cases.values() for c in cs]
    normal = [c for c in cells if c["type"] == "normal" and c["true_iscn"] in NORMAL_ISCN]
    final = [c for c in normal if not c["count_review"]]
    normal_cases = {k: cs for k, cs in cases.items() if all(c["type"] == "normal" for c in cs)}
    truths = {k: max({c["true_iscn"] for c in cs}, key=[c["true_iscn"] for c in cs].count) for k, cs in normal_cases.items()}
    called = {k: case_row(k, cs) for k, cs in normal_cases.items()}
    print(f"\n## The count's doubts and the case ({len(normal)} normal metaphases, {len(normal_cases)} normal cases)\n")
    print("| measure | value |\n|---|---|")
    for k, v in (("normal metaphases whose count is final (`count_review` false)", f"{len(final)} / {len(normal)}"),
                 ("… of them with a wrong count", f"{sum(c['n'] != c['true_n'] for c in final)} "
                  f"({pct(sum(c['n'] != c['true_n'] for c in final) / max(len(final), 1))} %)"),
                 ("normal cases with the exact ISCN in cases.csv",
                  f"{sum(called[k]['predicted_iscn'] == truths[k] for k in called)} / {len(called)} "
                  f"({pct(sum(called[k]['predicted_iscn'] == truths[k] for k in called) / max(len(called), 1))} %)"),
                 ("normal cases sent to review", f"{sum(bool(r['review']) for r in called.values())} / {len(called)}")):
        print(f"| {k} | {v} |")
    print("\n## End to end: the bare image against the annotated boxes (same separation, classifier, assignment)\n")
    print("| measure | bare image | annotated boxes |\n|---|---|---|")
    b, n = tally["bare"], tally["annotated"]
    rows = [("chromosomes matched at IoU 0.5 / annotated", f"{b['matched']} / {b['n']}", f"{n['matched']} / {n['n']}"),
            ("accuracy of the matched, before assignment", pct(b["right_before"] / max(b["matched"], 1)),
             pct(n["right_before"] / max(n["matched"], 1))),
            ("accuracy of the matched, after assignment", pct(b["right_after"] / max(b["matched"], 1)),
             pct(n["right_after"] / max(n["matched"], 1))),
            (f"exact ISCN count, normal cells ({n['normal']})", pct(b["normal_exact"] / max(b["normal"], 1)),
             pct(n["normal_exact"] / max(n["normal"], 1))),
            ("false aneuploidy calls per 100 normal cells", f"{100 * b['false_aneuploidy'] / max(b['normal'], 1):.2f}",
             f"{100 * n['false_aneuploidy'] / max(n['normal'], 1):.2f}")]
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    c46, other = counted["46"], counted["other"]
    stage = "the threshold alone" if a.no_count or a.verify else "the count stage"
    print(f"\n## What the pipeline counts ({stage}: the boxes it karyotypes)\n")
    print("| measure | value |\n|---|---|")
    for k, v in (("metaphases with the exact count", pct((c46[0] + other[0]) / max(c46[1] + other[1], 1))),
                 (f"… of the {c46[1]} annotated with 46", pct(c46[0] / max(c46[1], 1))),
                 (f"… of the {other[1]} annotated with another count (45, 47, …)", pct(other[0] / max(other[1], 1))),
                 ("recall at IoU 0.5", pct(counted["tp"] / max(b["n"], 1))),
                 ("precision at IoU 0.5", pct(counted["tp"] / max(counted["boxes"], 1)))):
        print(f"| {k} | {v} |")
    grays = [decode_gray(m.image.read_bytes(), str(m.image)) for m in test[:4]]
    ref = reference_speed(grays, detector.operating["scale"])
    ours = float(np.median(det_s[:len(grays)]))
    print(f"\n## Speed ({torch.get_num_threads()} threads)\n")
    print("| measure | seconds | reference | ratio |\n|---|---|---|---|")
    print(f"| detection per metaphase (median of {len(det_s)}) | {np.median(det_s):.3f} | stock FCOS-ResNet-50-FPN "
          f"{ref:.3f} (first {len(grays)}) | {ref / ours:.1f}× faster |")
    print(f"| metaphase → karyogram, bare image (median; p90 {np.percentile(bare_s, 90):.2f}) | {np.median(bare_s):.3f} "
          f"| annotated boxes {np.median(ann_s):.3f} | {np.median(bare_s) / np.median(ann_s):.2f}× |")
    print("\n" + json.dumps({"detection": {k: v for k, v in det.items() if k != "count_error"}, "tally": tally,
                            "counted": counted}))
    if a.sheet:
        rng = np.random.default_rng(0)
        pick = lambda xs, k: [xs[i] for i in sorted(rng.choice(len(xs), min(k, len(xs)), replace=False))]  # noqa: E731
        sheet(pick(misses, 24) + pick(falses, 24), a.sheet)
        print(f"sheet: {a.sheet} ({len(misses)} missed, {len(falses)} false; up to 24 of each)")


if __name__ == "__main__":
    main()
