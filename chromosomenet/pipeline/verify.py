"""The verify stage: the detector's candidates → the chromosomes of the metaphase, each once and whole.

    verifier = load_verifier("models/chromosomenet-detector-resnet10t-half")  # verifier.* beside the detector
    chosen = verifier(gray, boxes, scores)       # Choice: per surviving candidate its box, p and doubt

The detector proposes every box above FCOS's floor (score ≥ 0.05), merged only at IoU ≥ ``pre_nms``
(0.7: two chromosomes that cross both keep a box). Box overlap and the detector's score cannot tell a
whole chromosome from a part of one, two touching ones in one box, or a second box on the same one;
for each candidate a small network reads what can: its score, its size and shape against the cell's
own chromosomes, the ink on its border (a part is cut through a chromosome), the dark components
inside it (two as one) and how it sits among the other candidates (inside a better one, holding two
good ones, beside a near twin). It gives p(one whole chromosome: IoU ≥ 0.5 with it) and the IoU it
expects. The choice is greedy by p: a candidate is taken when p ≥ ``threshold`` and it is not the
same object as one already taken (IoU ≥ ``nms_iou``, or lying inside it by ≥ ``contain``).

A taken candidate with p below ``sure`` or a left-out one (not the same object as a taken one) with p
above ``unsure`` is a *doubt*: the count depends on it, and the caller says so.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import ndimage

from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..models.verifier import TOP, VerifierHead
from .isolate import metaphase_threshold

WEIGHTS, CONFIG = "verifier.safetensors", "verifier.json"
STRONG = 0.5      # detector score of a confident candidate: the cell's own scale is read from these
CONTAINED = 0.8   # share of a candidate's area inside another for it to count as lying inside it
FEATURES = (
    "score", "logit", "rank", "log_long", "log_short", "aspect", "log_area", "crowd",
    "fill", "edge_ink", "edge_ink_max", "main_inside", "main_share", "components",
    "iou_better", "score_iou_better", "inside_better", "score_inside_better", "holds", "holds_score",
    "support", "twins", "neighbours",
)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def overlaps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IoU, intersection / area of the row box) between every pair of (N, 4) boxes."""
    b = boxes.astype(np.float64)
    area = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    w = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)
    return iou, inter / np.maximum(area[:, None], 1e-9)


def _box_sums(table: np.ndarray, x0, y0, x1, y1) -> np.ndarray:
    """Sums of the image under each half-open box from its summed-area ``table`` (H+1, W+1)."""
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def _pixel_features(gray: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Per box: fill, mean and max ink on its four edges, the main dark component's share inside the box
    and of the box's ink, and the number of dark components holding ≥ 15 % of it."""
    fg = gray < metaphase_threshold(gray)
    table = np.zeros((fg.shape[0] + 1, fg.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = fg.cumsum(0).cumsum(1)
    x0, y0, x1, y1 = ib.T
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    ink = _box_sums(table, x0, y0, x1, y1)
    t = np.maximum(1, np.round(0.04 * np.minimum(x1 - x0, y1 - y0))).astype(int)  # an edge strip, ≥ 1 px
    edges = np.stack([_box_sums(table, x0, y0, x0 + t, y1) / (t * (y1 - y0)),
                      _box_sums(table, x1 - t, y0, x1, y1) / (t * (y1 - y0)),
                      _box_sums(table, x0, y0, x1, y0 + t) / (t * (x1 - x0)),
                      _box_sums(table, x0, y1 - t, x1, y1) / (t * (x1 - x0))], 1)
    lab, n = ndimage.label(fg, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    comp = np.zeros((len(ib), 3))
    for k, (a, b, c, d) in enumerate(ib):
        counts = np.bincount(lab[b:d, a:c].ravel(), minlength=n + 1)
        counts[0] = 0
        if counts.sum():
            main = int(counts.argmax())
            comp[k] = (counts[main] / sizes[main], counts[main] / counts.sum(), np.count_nonzero(counts >= 0.15 * counts.sum()))
    return np.column_stack([ink / area, edges.mean(1), edges.max(1), comp])


def candidate_features(gray: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N, len(FEATURES)) float32: what the verifier reads of each candidate (scores in descending order)."""
    n = len(boxes)
    if not n:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    h, w = gray.shape
    ib = np.column_stack([np.clip(np.floor(boxes[:, 0]), 0, w - 1), np.clip(np.floor(boxes[:, 1]), 0, h - 1),
                          np.clip(np.ceil(boxes[:, 2]), 1, w), np.clip(np.ceil(boxes[:, 3]), 1, h)]).astype(int)
    ib[:, 2], ib[:, 3] = np.maximum(ib[:, 2], ib[:, 0] + 1), np.maximum(ib[:, 3], ib[:, 1] + 1)
    bw, bh = (ib[:, 2] - ib[:, 0]).astype(float), (ib[:, 3] - ib[:, 1]).astype(float)
    long, short = np.maximum(bw, bh), np.minimum(bw, bh)
    strong = scores >= STRONG
    ref = float(np.median(long[strong] if strong.sum() >= 8 else long[:46]))  # the cell's own chromosome size
    iou, inside = overlaps(boxes)
    np.fill_diagonal(iou, 0)
    np.fill_diagonal(inside, 0)
    better = scores[None, :] > scores[:, None]          # [i, j]: j scores above i
    iou_b, inside_b = np.where(better, iou, 0), np.where(better, inside, 0)
    jb, ji = iou_b.argmax(1), inside_b.argmax(1)
    held = (inside.T >= CONTAINED) & (scores[None, :] >= 0.3)   # [i, j]: a good j lies inside i
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    near = np.hypot(cx[:, None] - cx[None, :], cy[:, None] - cy[None, :]) < ref
    rows = [scores, _logit(scores), np.arange(n) / max(strong.sum(), 1), np.log(long / ref), np.log(short / ref),
            short / long, np.log(bw * bh / ref ** 2), np.full(n, strong.sum() / 46.0)]
    cols = [iou_b.max(1), scores[jb] * (iou_b.max(1) > 0), inside_b.max(1), scores[ji] * (inside_b.max(1) > 0),
            held.sum(1), (held * scores[None, :]).sum(1), ((iou >= 0.5) * scores[None, :]).sum(1),
            (iou >= 0.5).sum(1), (near & (scores[None, :] >= STRONG)).sum(1)]
    return np.column_stack(rows + [_pixel_features(gray, ib)] + cols).astype(np.float32)


@dataclass(frozen=True)
class Operating:
    threshold: float = 0.5   # p at or above which a candidate is taken
    nms_iou: float = 0.5     # a candidate this close (IoU) to a taken one is the same object
    contain: float = 0.9     # … or one lying this much inside a taken one (or holding it)
    sure: float = 0.8        # a taken candidate below this p is a doubt
    unsure: float = 0.2      # a left-out candidate above this p is a doubt
    pre_nms: float = 0.7     # the detector's own merge of near-identical boxes before the verifier


@dataclass(frozen=True)
class Choice:
    """The candidates that survive the choice, in descending p: ``taken`` ones are the chromosomes."""
    boxes: np.ndarray        # (M, 4) float32
    p: np.ndarray            # (M,) float32, descending
    iou: np.ndarray          # (M,) expected IoU with the chromosome
    taken: np.ndarray        # (M,) bool
    doubt: np.ndarray        # (M,) bool: the count depends on this candidate


def choose(boxes: np.ndarray, p: np.ndarray, iou_pred: np.ndarray, op: Operating) -> Choice:
    """Greedy by p: take a candidate unless it is the same object as one already taken (see module doc);
    candidates never taken and not the same as a taken one survive untaken (the caller may doubt them)."""
    order = np.argsort(-p, kind="stable")
    boxes, p, iou_pred = boxes[order], p[order], iou_pred[order]
    iou, inside = overlaps(boxes)
    same = (iou >= op.nms_iou) | (inside >= op.contain) | (inside.T >= op.contain)
    taken, gone = np.zeros(len(p), dtype=bool), np.zeros(len(p), dtype=bool)
    for i in range(len(p)):
        if gone[i] or p[i] < op.threshold:
            continue
        taken[i] = True
        gone |= same[i]
        gone[i] = False
    keep = taken | ~gone
    doubt = (taken & (p < op.sure)) | (~taken & (p >= op.unsure))
    return Choice(boxes[keep].astype(np.float32), p[keep].astype(np.float32), iou_pred[keep].astype(np.float32),
                  taken[keep], doubt[keep])


@dataclass(frozen=True)
class Seen:
    """What one detector pass saw: candidates (image px) and the maps the head reads (model px)."""
    boxes: np.ndarray            # (N, 4) float32, image px
    scores: np.ndarray           # (N,) float32
    factor: np.ndarray           # (4,) float32: model px per image px, x and y, per box coordinate
    feature: torch.Tensor        # (1, C, h, w) the stride-8 feature map
    image: torch.Tensor          # (1, 1, H, W) the input at the model's scale, in [0, 1]


class Verifier:
    """A loaded verifier head and its operating point: a detector pass → :class:`Choice` (image px)."""

    def __init__(self, head: VerifierHead, op: Operating, spec: str = "in memory"):
        self.head, self.op, self.spec = head.eval(), op, spec

    def __call__(self, gray: np.ndarray, seen: Seen) -> Choice:
        order = np.argsort(-seen.scores, kind="stable")[:TOP]
        boxes, scores = seen.boxes[order], seen.scores[order]
        if not len(boxes):
            return choose(boxes, np.zeros(0, np.float32), np.zeros(0, np.float32), self.op)
        refined, p, iou = read_candidates(self.head, seen.feature, seen.image, torch.from_numpy(boxes * seen.factor),
                                          torch.from_numpy(candidate_features(gray, boxes, scores)), seen.factor,
                                          gray.shape)
        return choose(refined, p, iou, self.op)


@torch.inference_mode()
def read_candidates(head: VerifierHead, feature: torch.Tensor, image: torch.Tensor, model_boxes: torch.Tensor,
                    features: torch.Tensor, factor: np.ndarray, size: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head on one metaphase's candidates: (corrected boxes in image px, p, expected IoU)."""
    logits, deltas = head(feature, image, model_boxes, features)
    p = torch.sigmoid(logits).numpy()
    h, w = size
    refined = (head.refine(model_boxes, deltas) / torch.from_numpy(factor)).numpy()
    return np.clip(refined, 0, [w, h, w, h]).astype(np.float32), p[:, 0], p[:, 1]


def head_config(head: VerifierHead) -> dict:
    return {"fpn_channels": head.reduce[0].in_channels, "n_features": len(head.mean), "hidden": head.judge.in_features,
            "pool": head.pool, "pixels": head.pixels, "context": head.context}


def save_verifier(head: VerifierHead, op: Operating, folder: str | Path, facts: dict | None = None) -> None:
    """FOLDER/verifier.safetensors + verifier.json (features, head shape, operating point, ``facts``)."""
    folder = Path(folder)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / WEIGHTS))
    cfg = {"features": list(FEATURES), "head": head_config(head), "operating": asdict(op), **(facts or {})}
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2) + "\n")


def load_verifier(folder: str | Path | None) -> Verifier | None:
    """The verifier saved beside a detector in ``folder``, or None when it has none."""
    if folder is None or not (Path(folder) / CONFIG).is_file():
        return None
    folder = Path(folder)
    cfg = json.loads((folder / CONFIG).read_text())
    if tuple(cfg.get("features", ())) != FEATURES or not (folder / WEIGHTS).is_file():
        raise BadInputError(folder / CONFIG, f"is a verifier of another version (its features differ) or lacks {WEIGHTS}",
                            "retrain it with `chromosomenet train-verifier` or remove verifier.*")
    head = VerifierHead(**cfg["head"])
    head.load_state_dict(load_file(str(folder / WEIGHTS)))
    return Verifier(head, Operating(**cfg["operating"]), str(folder))
