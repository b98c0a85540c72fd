"""Class-agnostic detection metrics with pycocotools (COCO's own matching; nothing hand-matched here).

    m = detection_metrics(truth, found, threshold=0.5)
    m["ap50"], m["ap50_95"]          COCO average precision over every detection with a score
    m["recall50"], m["precision50"]  at IoU 0.5 for the detections at or above ``threshold``
    m["exact_count"]                 share of images with exactly as many kept detections as true boxes

``truth``: per image an (N, 4) array of xmin, ymin, xmax, ymax; ``found``: per image (boxes, scores).
Boxes are in pixels of the same image; COCO's own ``[x, y, w, h]`` conversion happens here.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _coco(truth: Sequence[np.ndarray]) -> COCO:
    images, anns = [], []
    for i, boxes in enumerate(truth):
        images.append({"id": i + 1})
        for b in np.asarray(boxes, dtype=float).reshape(-1, 4):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [b[0], b[1], w, h], "area": w * h})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "chromosome"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _run(gt: COCO, found: Sequence[tuple[np.ndarray, np.ndarray]], min_score: float) -> COCOeval:
    dets = [[i + 1, b[0], b[1], b[2] - b[0], b[3] - b[1], s, 1]
            for i, (boxes, scores) in enumerate(found)
            for b, s in zip(np.asarray(boxes, dtype=float).reshape(-1, 4), np.asarray(scores, dtype=float))
            if s >= min_score]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(np.asarray(dets, dtype=float)) if dets else COCO()
        if not dets:  # loadRes refuses an empty list: an index with no detections
            dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")  # COCO's defaults: AP over each image's 100 best detections (~46 true)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def detection_metrics(truth: Sequence[np.ndarray], found: Sequence[tuple[np.ndarray, np.ndarray]],
                      threshold: float) -> dict:
    """AP50, AP50:95 (all scored detections), and recall / precision at IoU 0.5 and the share of images
    whose count is exact, for the detections at or above ``threshold``."""
    if len(truth) != len(found):
        raise ValueError(f"{len(truth)} images of truth but {len(found)} of detections")
    gt = _coco(truth)
    ev = _run(gt, found, 0.0)
    kept = _run(gt, found, threshold)
    t50 = int(np.argmin(np.abs(kept.params.iouThrs - 0.5)))
    matched = n_dets = 0
    for e in kept.evalImgs:
        if e is None or e["aRng"] != kept.params.areaRng[0]:
            continue
        ignore = np.asarray(e["dtIgnore"], dtype=bool).reshape(len(kept.params.iouThrs), -1)[t50]
        hits = np.asarray(e["dtMatches"]).reshape(len(kept.params.iouThrs), -1)[t50] > 0
        matched += int(np.count_nonzero(hits & ~ignore))
        n_dets += int(np.count_nonzero(~ignore))
    n_true = int(sum(len(np.asarray(b).reshape(-1, 4)) for b in truth))
    counts = [int(np.count_nonzero(np.asarray(s) >= threshold)) for _, s in found]
    true_counts = [len(np.asarray(b).reshape(-1, 4)) for b in truth]
    return {"images": len(truth), "true_boxes": n_true, "kept_detections": n_dets,
            # COCO reports -1 where nothing could be scored (no detections at all): that is an AP of 0
            "ap50": max(float(ev.stats[1]), 0.0), "ap50_95": max(float(ev.stats[0]), 0.0),
            "ap75": max(float(ev.stats[2]), 0.0),
            "recall50": matched / n_true if n_true else None,
            "precision50": matched / n_dets if n_dets else None,
            "missed50": n_true - matched, "false_positives50": n_dets - matched,
            "exact_count": float(np.mean([a == b for a, b in zip(counts, true_counts)])) if truth else None,
            "count_error": [a - b for a, b in zip(counts, true_counts)], "threshold": threshold}


def match_boxes(truth: np.ndarray, boxes: np.ndarray, iou: float = 0.5) -> list[tuple[int, int]]:
    """(true index, detected index) pairs: the one-to-one matching of largest total IoU (scipy's
    Hungarian solver) among pairs overlapping at ``iou`` or more."""
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    t, b = np.asarray(truth, dtype=np.float32).reshape(-1, 4), np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if not len(t) or not len(b):
        return []
    m = box_iou(torch.from_numpy(t), torch.from_numpy(b)).numpy()
    rows, cols = linear_sum_assignment(np.where(m >= iou, m, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if m[r, c] >= iou]


def matched_calls(truth: np.ndarray, truth_classes, boxes: np.ndarray, calls, iou: float = 0.5) -> dict:
    """How the calls of detected boxes compare with the classes of the annotated boxes they match."""
    pairs = match_boxes(truth, boxes, iou)
    right = sum(int(truth_classes[i] == calls[j]) for i, j in pairs)
    return {"true": len(truth), "found": len(boxes), "matched": len(pairs), "right": right,
            "accuracy_matched": right / len(pairs) if pairs else None}
