"""Train the verifier head (:mod:`chromosomenet.models.verifier`) on a frozen detector's own candidates.

    train_verifier(VerifierTrainConfig(src="../shared/data/tseng2023", out=Path("work/verifier"),
                                       detector="models/chromosomenet-detector-resnet10t-half", time_budget=12))

1. **Mine**: every metaphase of the detector's splits (its ``split_cases.csv``: the same cases held out) is
   run once through the detector at its working scale; its ``TOP`` best candidates (merged only at IoU ≥
   ``pre_nms``) are labelled against the annotated boxes: the IoU with the chromosome they fit best and
   that chromosome's box. The stride-8 feature map and the input are kept (half precision, ~1 MB each).
2. **Train** the head on the train split: p(IoU ≥ 0.5) and the IoU itself (binary cross-entropy), the box
   corrections of candidates at IoU ≥ 0.4 (smooth L1). AdamW on a one-cycle schedule whose length a
   ``time_budget`` fixes from a measured step; one checkpoint per epoch, exact ``resume``; the epoch of
   least validation loss is kept.
3. **Tune** the choice (threshold, IoU and containment limits) on validation for the most metaphases of
   exact count (ties: recall), and **score** the test split beside the detector alone.

OUT holds verifier.safetensors + verifier.json (copy both beside the detector), log.csv, verifier_report.json.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou, nms
from tqdm.auto import tqdm

from ..data.images import decode_gray
from ..data.metaphases import describe, release_metaphases
from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..metrics.detection import detection_metrics
from ..models.verifier import VerifierHead
from ..pipeline.detect import load_detector
from ..pipeline.verify import FEATURES, TOP, Operating, candidate_features, choose, read_candidates, save_verifier
from . import budget, checkpoint

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
NMS_IOUS = (0.4, 0.5, 0.6, 0.7)
CONTAINS = (0.8, 0.9, 1.01)  # 1.01: containment alone never makes two boxes one
FIT_IOU = 0.4                # candidates from this IoU learn the box corrections


@dataclass
class VerifierTrainConfig:
    src: str                              # the release folder the detector was trained on
    out: Path
    detector: str = "models/chromosomenet-detector-resnet10t-half"
    split_cases: str | None = None        # group,split CSV (default: the detector's own split_cases.csv)
    exclude_cells: tuple[str, ...] = ()   # image stems whose cases never enter (the embedded sample)
    pre_nms: float = 0.7
    batch_size: int = 4                   # metaphases per step (all their candidates)
    lr: float = 1e-3
    weight_decay: float = 0.05
    pct_start: float = 0.1
    epochs: int = 8
    time_budget: float | None = None      # minutes for the whole run (mining included), planned from a measured step
    seed: int = 0
    limit: int | None = None              # first N metaphases per split (smoke runs)
    resume: bool = False
    stop_after: int | None = None         # epochs to run in this invocation (then resume)
    progress: bool = True


@dataclass
class Mined:
    """One metaphase's candidates as the head reads them, and their labels."""
    feature: torch.Tensor    # (1, C, h, w) float16
    image: torch.Tensor      # (1, 1, H, W) uint8 (ink-dark, as the detector's input ×255)
    boxes: torch.Tensor      # (K, 4) model px, descending score
    scores: torch.Tensor     # (K,) the detector's own
    features: torch.Tensor   # (K, F)
    iou: torch.Tensor        # (K,) IoU with the best-fitting annotated box
    truth: torch.Tensor      # (K, 4) that box, model px
    factor: np.ndarray       # (4,) model px per image px
    gt: np.ndarray           # (M, 4) the annotated boxes, image px
    size: tuple[int, int]    # image (h, w)


def mine(detector, metaphases, progress: bool = False, desc: str = "mine") -> list[Mined]:
    out = []
    for m in tqdm(metaphases, desc=desc, leave=False, disable=not progress):
        gray = decode_gray(m.image.read_bytes(), str(m.image))
        seen = detector.see(gray, detector.operating["scale"])
        order = np.argsort(-seen.scores, kind="stable")[:TOP]
        boxes, scores = seen.boxes[order], seen.scores[order]
        f = torch.from_numpy(seen.factor)
        model_boxes, gt = torch.from_numpy(boxes) * f, torch.from_numpy(m.boxes) * f
        iou = box_iou(model_boxes, gt) if len(gt) and len(boxes) else torch.zeros(len(boxes), 1)
        best, which = iou.max(1) if iou.shape[1] else (torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.long))
        out.append(Mined(seen.feature.half(), seen.image.mul(255).round().to(torch.uint8), model_boxes,
                         torch.from_numpy(scores), torch.from_numpy(candidate_features(gray, boxes, scores)), best,
                         gt[which] if len(gt) else model_boxes.clone(), seen.factor, m.boxes, gray.shape))
    return out


class _OnMetaphases(nn.Module):
    """The head over a list of mined metaphases: what :func:`budget.measure` times."""

    def __init__(self, head: VerifierHead):
        super().__init__()
        self.head = head

    def forward(self, batch: list[Mined]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self.head(m.feature.float(), m.image.float() / 255, m.boxes, m.features) for m in batch]


def _loss(model: _OnMetaphases, batch: list[Mined], _target=None) -> torch.Tensor:
    total = 0.0
    for m, (logits, deltas) in zip(batch, model(batch)):
        loss = F.binary_cross_entropy_with_logits(logits[:, 0], (m.iou >= 0.5).float())
        loss = loss + F.binary_cross_entropy_with_logits(logits[:, 1], m.iou)
        fit = m.iou >= FIT_IOU
        if fit.any():
            loss = loss + F.smooth_l1_loss(deltas[fit], model.head.targets(m.boxes[fit], m.truth[fit]), beta=1 / 9)
        total = total + loss
    return total / len(batch)


def judged(head: VerifierHead, items: list[Mined]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per metaphase (refined boxes in image px, p, expected IoU)."""
    head.eval()
    return [read_candidates(head, m.feature.float(), m.image.float() / 255, m.boxes, m.features, m.factor, m.size)
            for m in items]


def chosen(scored, op: Operating) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per metaphase (the choice's surviving boxes, their p): ``p ≥ op.threshold`` are the taken ones."""
    out = []
    for boxes, p, iou in scored:
        c = choose(boxes, p, iou, op)
        out.append((c.boxes, c.p))
    return out


def tune(scored, truth) -> tuple[Operating, list[dict]]:
    """The choice with the most metaphases of exact count on ``scored`` (ties: recall at IoU 0.5)."""
    table = []
    for thr, iou, contain in itertools.product(THRESHOLDS, NMS_IOUS, CONTAINS):
        op = Operating(threshold=thr, nms_iou=iou, contain=contain)
        m = detection_metrics(truth, chosen(scored, op), thr)
        table.append({"threshold": thr, "nms_iou": iou, "contain": contain, "exact_count": m["exact_count"],
                      "recall50": m["recall50"], "precision50": m["precision50"]})
    top = max(table, key=lambda r: (r["exact_count"], r["recall50"]))
    return Operating(threshold=top["threshold"], nms_iou=top["nms_iou"], contain=top["contain"]), table


def detector_alone(items: list[Mined], nms_iou: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The detector's own boxes over the same candidates, suppressed at its own NMS IoU, in image px."""
    out = []
    for m in items:
        keep = nms(m.boxes, m.scores, nms_iou)
        out.append(((m.boxes[keep] / torch.from_numpy(m.factor)).numpy(), m.scores[keep].numpy()))
    return out


def _identity(cfg: VerifierTrainConfig, splits, detector_folder: Path) -> dict:
    keep = ("pre_nms", "batch_size", "lr", "weight_decay", "pct_start", "epochs", "time_budget", "seed", "limit")
    ident = {k: getattr(cfg, k) for k in keep}
    ident["detector"] = hashlib.sha256((detector_folder / "model.safetensors").read_bytes()).hexdigest()
    ident["data"] = hashlib.sha256(json.dumps({s: [m.stem for m in ms] for s, ms in splits.items()})
                                   .encode()).hexdigest()
    return ident


def train_verifier(cfg: VerifierTrainConfig) -> dict:
    """Mine, train (or resume) and tune into ``cfg.out``; returns the report (test metrics once finished)."""
    started = time.perf_counter()
    folder = Path(cfg.detector.removeprefix("local-dir:"))
    if not (folder / "model.safetensors").is_file():
        raise BadInputError(folder, "is not a trained detector folder (no model.safetensors)",
                            "give the folder `train-detector` wrote (or the shipped detector's)")
    splits = release_metaphases(cfg.src, cfg.split_cases or folder / "split_cases.csv", cfg.exclude_cells)
    if cfg.limit:
        splits = {s: ms[:cfg.limit] for s, ms in splits.items()}
    if not splits["train"] or not splits["validation"]:
        raise BadInputError(cfg.src, "gives no train or no validation metaphases", "check the detector's split_cases.csv")
    out = Path(cfg.out)
    ident = _identity(cfg, splits, folder)
    if checkpoint.has_checkpoint(out) and not cfg.resume:
        raise BadInputError(out, "already holds a training run", "pass --resume to continue it, or choose a new --out")
    resumed = checkpoint.load(out, ident) if cfg.resume and checkpoint.has_checkpoint(out) else None
    out.mkdir(parents=True, exist_ok=True)
    detector = load_detector(str(folder), auto_scale=False, verify=False)
    detector.model.set_operating_point(nms_threshold=cfg.pre_nms)
    train = mine(detector, splits["train"], cfg.progress, "mine train")
    val = mine(detector, splits["validation"], cfg.progress, "mine validation")
    torch.manual_seed(cfg.seed)
    head = VerifierHead(detector.model.num_features, len(FEATURES))
    rows = torch.cat([m.features for m in train])
    head.mean.copy_(rows.mean(0))
    head.std.copy_(rows.std(0).clamp_min(1e-6))
    model = _OnMetaphases(head)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    state = checkpoint.RunState(**{**asdict(resumed[0]), "identity": ident}) if resumed else checkpoint.RunState(ident)
    if cfg.time_budget and state.plan is None:
        step_s, image_s = budget.measure(model, lambda: (train[:cfg.batch_size], None), _loss, cfg.lr,
                                         torch.autocast("cpu", enabled=False), steps=6, warmup=2)
        state.plan = budget.plan(cfg.time_budget, time.perf_counter() - started, steps_per_epoch, step_s, image_s,
                                 per_epoch_images=len(val), final_images=len(splits["test"]) * 3,
                                 max_epochs=cfg.epochs).to_dict()
    steps = budget.Plan(**state.plan).total_steps if state.plan else cfg.epochs * steps_per_epoch
    n_epochs = math.ceil(steps / steps_per_epoch)
    optimizer, scheduler, best = checkpoint.one_cycle(model, cfg.lr, cfg.weight_decay, steps, cfg.pct_start, resumed)
    ran_now = 0
    while not state.done(n_epochs, patience=n_epochs):
        if cfg.stop_after is not None and ran_now >= cfg.stop_after:
            break
        epoch = state.epoch + 1
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).tolist()
        this_epoch = min(steps_per_epoch, steps - (epoch - 1) * steps_per_epoch)
        model.train()
        t0, loss_sum = time.perf_counter(), 0.0
        for k in tqdm(range(this_epoch), desc=f"epoch {epoch}/{n_epochs}", disable=not cfg.progress):
            loss = _loss(model, [train[i] for i in order[k * cfg.batch_size:(k + 1) * cfg.batch_size]])
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach())
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            val_loss = float(np.mean([float(_loss(model, val[i:i + 16])) for i in range(0, len(val), 16)]))
        ran_now += 1
        if state.update(epoch, val_loss):
            best = checkpoint.cpu_copy(model.state_dict())
        state.record({"epoch": epoch, "train_loss": round(loss_sum / max(this_epoch, 1), 5),
                      "val_loss": round(val_loss, 5), "lr": f"{scheduler.get_last_lr()[0]:.3e}",
                      "metaphases_per_s": round(this_epoch * cfg.batch_size / seconds, 2), "seconds": round(seconds, 1)})
        checkpoint.save(out, state, model.state_dict(), best, optimizer, scheduler)
    if not state.done(n_epochs, patience=n_epochs):
        return {"finished": False, "epochs_run": state.epoch}
    model.load_state_dict(best)
    op, grid = tune(judged(head, val), [m.gt for m in val])
    op = Operating(**{**asdict(op), "pre_nms": cfg.pre_nms})
    test = mine(detector, splits["test"], cfg.progress, "mine test")
    t_truth = [m.gt for m in test]
    ours = detection_metrics(t_truth, chosen(judged(head, test), op), op.threshold) if test else None
    # detector.operating is its own operating point (the pre_nms above changed only the model's NMS)
    alone = (detection_metrics(t_truth, detector_alone(test, detector.operating["nms_threshold"]),
                               detector.operating["score_threshold"]) if test else None)
    report = {"config": {**asdict(cfg), "out": str(cfg.out)}, "identity": ident, "plan": state.plan,
              "best_epoch": state.best_epoch, "epochs_run": state.epoch, "operating": asdict(op),
              "tuning_grid": grid, "data": describe(splits), "test_metrics": ours, "test_detector_alone": alone,
              "train_minutes": sum(float(r["seconds"]) for r in state.log) / 60,
              "minutes_this_invocation": (time.perf_counter() - started) / 60}
    save_verifier(head, op, out, {"detector": str(folder), "best_epoch": state.best_epoch,
                                  "test_metrics": {k: v for k, v in (ours or {}).items() if k != "count_error"}})
    atomic_write_text(out / "verifier_report.json", json.dumps(report, indent=2, default=str) + "\n")
    return {"finished": True, **report}
