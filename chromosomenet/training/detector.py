"""Train a chromosome detector on a release's metaphase boxes, on a CPU, within a time budget.

    chromosomenet train-detector ../shared/data/tseng2023 runs/detector --time-budget 140 \\
        --split-cases models/chromosomenet-view-resnet10t-half/split_cases.csv \\
        --exclude-cells tools/sample_cells.txt --init models/chromosomenet-view-resnet10t-half

AdamW on a one-cycle schedule over random square crops (:func:`.data.metaphases.training_crop`),
batches of whole-crop targets into torchvision's FCOS losses. After every epoch half the validation
metaphases (an even spread) are detected whole at the working scale and scored with pycocotools; the
epoch with the best AP50:95 is kept. The time-budget plan charges each epoch that scoring at its cost
measured before training (detection, postprocessing and COCO per metaphase), and the end its tuning. At the end the operating point (NMS IoU and score threshold) is tuned on validation
for the share of metaphases whose chromosome count is exact, the test metaphases are scored once,
and the run folder becomes a timm model repo (config.json with the operating point, weights, card).

Exact resume: the crop order and every augmentation draw of epoch ``e`` come from (seed, e); the
time-budget plan (a step count) is fixed at the start and stored with the checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import timm
import torch
import torchvision
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..data.metaphases import DetectAugment, Metaphase, describe, load_grays, release_metaphases, training_crop
from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..metrics.detection import detection_metrics
from ..models import hub
from ..models.detector import DETECTOR_ARCHITECTURES
from ..pipeline.detect import Detector
from . import budget, checkpoint

NMS_CHOICES = (0.5, 0.6, 0.7, 0.8)
SCORE_CHOICES = tuple(round(t, 2) for t in np.arange(0.2, 0.81, 0.05))


@dataclass
class DetectorTrainConfig:
    src: str                              # a release folder (Tseng layout: JPEGs + VOC boxes)
    out: Path
    model: str = "chromosomenet_detector_resnet10t_half"
    split_cases: str | None = None        # group,split CSV: the cases held out (default: none → all train)
    exclude_cells: tuple[str, ...] = ()   # image stems whose cases never enter (the embedded sample)
    init: str = "none"                    # none | a classifier folder / .safetensors with the same backbone
    crop: int = 384
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.05
    pct_start: float = 0.1
    epochs: int | None = None
    max_epochs: int = 300
    time_budget: float | None = None      # minutes for the whole run, planned from a measured step
    patience: int = 1000
    seed: int = 0
    augment: DetectAugment = field(default_factory=DetectAugment)
    precision: str = "auto"               # auto: bf16 autocast on a GPU or a CPU with AVX-512-BF16/AMX
    limit: int | None = None              # first N metaphases per split (smoke runs)
    val_metaphases: int = 98              # scored after each epoch (an even spread of validation; 0: all)
    workers: int = 2                      # decode threads
    resume: bool = False
    stop_after: int | None = None
    progress: bool = True


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _bf16(cfg: DetectorTrainConfig) -> bool:
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise BadInputError(cfg.precision, "unknown precision", "use auto, bf16 or fp32")
    return cfg.precision == "bf16" or (cfg.precision == "auto" and (torch.cuda.is_available() or cpu_has_bf16()))


def init_backbone(model, init: str) -> str:
    """Load a classifier's backbone (same timm body: e.g. the half-width view ResNet-10t) into the detector."""
    if init == "none":
        return "none (from scratch)"
    path = Path(init.split(":", 1)[1] if init.startswith("local-dir:") else init)
    path = path / "model.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise BadInputError(path, "not found", "give a classifier model folder or .safetensors file, or --init none")
    weights = load_file(str(path))
    body = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith("net.") and ".fc." not in k}
    missing, unexpected = model.backbone.load_state_dict(body, strict=False)
    if missing or unexpected or not body:
        raise BadInputError(path, f"its backbone does not match the detector's ({len(missing)} missing, "
                            f"{len(unexpected)} unexpected tensors)", "give a classifier with the same backbone")
    return f"the backbone of {path.parent.name}"


def _batch(grays, ms: list[Metaphase], idx, cfg: DetectorTrainConfig, scale: float, gen: torch.Generator):
    images, targets = [], []
    for i in idx:
        x, b = training_crop(grays[i], ms[i].boxes, cfg.crop, scale, cfg.augment, gen)
        images.append(x)
        targets.append({"boxes": b, "labels": torch.zeros(len(b), dtype=torch.int64)})
    return images, targets


def _loss(model, images, targets) -> torch.Tensor:
    return sum(model(images, targets).values())


def detect_all(detector: Detector, grays, progress: bool = False, desc: str = "detect"):
    """(boxes, scores) of every score above FCOS's floor, per image, at the working scale (no rescale)."""
    out = []
    for g in tqdm(grays, desc=desc, leave=False, disable=not progress):
        found = detector(g)
        out.append((found.boxes, found.scores))
    return out


def tune_operating_point(model, grays, truth) -> dict:
    """The NMS IoU and score threshold with the most metaphases of exact count on these images (ties:
    the higher recall at IoU 0.5, then the threshold nearest 0.5)."""
    best, table = None, []
    for nms in NMS_CHOICES:
        model.set_operating_point(nms_threshold=nms)
        found = detect_all(Detector(model, auto_scale=False), grays)
        true_n = np.array([len(t) for t in truth])
        for thr in SCORE_CHOICES:
            exact = float(np.mean(np.array([np.count_nonzero(s >= thr) for _, s in found]) == true_n))
            table.append({"nms_threshold": nms, "score_threshold": thr, "exact_count": exact})
        top = max((r for r in table if r["nms_threshold"] == nms), key=lambda r: (r["exact_count"],
                                                                               -abs(r["score_threshold"] - 0.5)))
        m = detection_metrics(truth, found, top["score_threshold"])
        key = (top["exact_count"], m["recall50"], -abs(top["score_threshold"] - 0.5))
        if best is None or key > best[0]:
            best = (key, {**top, "recall50": m["recall50"], "precision50": m["precision50"]})
    model.set_operating_point(nms_threshold=best[1]["nms_threshold"], score_threshold=best[1]["score_threshold"])
    return {"chosen": best[1], "grid": table}


def _identity(cfg: DetectorTrainConfig, splits) -> dict:
    keep = ("model", "init", "crop", "batch_size", "lr", "weight_decay", "pct_start", "epochs", "max_epochs",
            "time_budget", "patience", "seed", "limit", "val_metaphases")
    ident = {k: getattr(cfg, k) for k in keep}
    ident["augment"] = asdict(cfg.augment)
    ident["data"] = hashlib.sha256(json.dumps({s: [m.stem for m in ms] for s, ms in splits.items()})
                                   .encode()).hexdigest()
    return json.loads(json.dumps(ident))  # as the checkpoint's state.json will read back (tuples as lists)


def train_detector(cfg: DetectorTrainConfig) -> dict:
    """Train (or resume) into ``cfg.out``; returns the run report (test metrics once finished)."""
    started = time.perf_counter()
    if cfg.model not in DETECTOR_ARCHITECTURES:
        raise BadInputError(cfg.model, "is not a detector architecture", f"use one of {', '.join(DETECTOR_ARCHITECTURES)}")
    out = Path(cfg.out)
    splits = release_metaphases(cfg.src, cfg.split_cases, cfg.exclude_cells)
    if cfg.limit:
        splits = {s: ms[:cfg.limit] for s, ms in splits.items()}
    if not splits["train"] or not splits["validation"]:
        raise BadInputError(cfg.src, "gives no train or no validation metaphases",
                            "check --split-cases (it must hold validation cases of this release)")
    ident = _identity(cfg, splits)
    if checkpoint.has_checkpoint(out) and not cfg.resume:
        raise BadInputError(out, "already holds a training run", "pass --resume to continue it, or choose a new --out")
    resumed = checkpoint.load(out, ident) if cfg.resume and checkpoint.has_checkpoint(out) else None
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = timm.create_model(cfg.model)
    init = init_backbone(model, "none" if resumed else cfg.init)
    train_ms, val_ms = splits["train"], splits["validation"]
    grays = load_grays(train_ms, cfg.workers)
    val_grays, val_truth = load_grays(val_ms, cfg.workers), [m.boxes for m in val_ms]
    # each epoch is scored on every other validation metaphase (half the cost; the tuning at the end sees all)
    every = max(1, len(val_ms) // cfg.val_metaphases) if cfg.val_metaphases else 1
    epoch_grays, epoch_truth = val_grays[::every], val_truth[::every]
    scale = model.operating["scale"]
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(cfg))  # noqa: E731
    steps_per_epoch = max(1, len(train_ms) // cfg.batch_size)
    state = checkpoint.RunState(**{**asdict(resumed[0]), "identity": ident}) if resumed else checkpoint.RunState(ident)
    if cfg.time_budget and state.plan is None:
        probe = _batch(grays, train_ms, range(min(cfg.batch_size, len(train_ms))), cfg, scale,
                       torch.Generator().manual_seed(0))
        step_s, _ = budget.measure(model, lambda: probe, _loss, cfg.lr, autocast, steps=6, warmup=2)
        # what scoring costs per whole metaphase: detection at the working scale, postprocessing, COCO
        t0 = time.perf_counter()
        detection_metrics(val_truth[:8], detect_all(Detector(model, auto_scale=False), val_grays[:8]), 0.5)
        image_s = (time.perf_counter() - t0) / len(val_grays[:8])
        state.plan = budget.plan(cfg.time_budget, time.perf_counter() - started, steps_per_epoch, step_s,
                                 image_s, per_epoch_images=len(epoch_grays),
                                 final_images=len(NMS_CHOICES) * len(val_ms) + len(splits["test"]),
                                 max_epochs=cfg.max_epochs).to_dict()
    plan = budget.Plan(**state.plan) if state.plan else None
    steps = plan.total_steps if plan else min(cfg.max_epochs, cfg.epochs or cfg.max_epochs) * steps_per_epoch
    n_epochs = math.ceil(steps / steps_per_epoch)
    if cfg.progress and plan:
        print(f"time budget {cfg.time_budget:g} min: {steps} steps ({steps / steps_per_epoch:.2f} epochs) "
              f"at {plan.step_s:.3f} s/step")
    optimizer, scheduler, best = checkpoint.one_cycle(model, cfg.lr, cfg.weight_decay, steps, cfg.pct_start, resumed)
    ran_now = 0
    while not state.done(n_epochs, cfg.patience):
        if cfg.stop_after is not None and ran_now >= cfg.stop_after:
            break
        epoch = state.epoch + 1
        seed = cfg.seed * 100_003 + epoch * 101
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + 1)
        order = torch.randperm(len(train_ms), generator=torch.Generator().manual_seed(seed)).tolist()
        this_epoch = min(steps_per_epoch, steps - (epoch - 1) * steps_per_epoch)
        model.train()
        t0, loss_sum = time.perf_counter(), 0.0
        for k in tqdm(range(this_epoch), desc=f"epoch {epoch}/{n_epochs}", disable=not cfg.progress):
            images, targets = _batch(grays, train_ms, order[k * cfg.batch_size:(k + 1) * cfg.batch_size], cfg,
                                     scale, gen)
            with autocast():
                loss = _loss(model, images, targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach())
        train_loss = loss_sum / max(this_epoch, 1)
        if not math.isfinite(train_loss):
            raise BadInputError(out, f"training loss became {train_loss} in epoch {epoch}",
                                "train again into a new folder with a lower --lr")
        seconds = time.perf_counter() - t0
        m = detection_metrics(epoch_truth, detect_all(Detector(model, auto_scale=False), epoch_grays, cfg.progress,
                                                      "validation"), model.operating["score_threshold"])
        ran_now += 1
        if state.update(epoch, 1.0 - m["ap50_95"]):
            best = checkpoint.cpu_copy(model.state_dict())
        state.record({"epoch": epoch, "train_loss": round(train_loss, 5), "val_ap50": round(m["ap50"], 5),
                      "val_ap50_95": round(m["ap50_95"], 5), "val_recall50": round(m["recall50"], 5),
                      "val_precision50": round(m["precision50"] or 0.0, 5), "val_exact_count": round(m["exact_count"], 4),
                      "lr": f"{scheduler.get_last_lr()[0]:.3e}",
                      "images_per_s": round(this_epoch * cfg.batch_size / seconds, 2), "seconds": round(seconds, 1)})
        checkpoint.save(out, state, model.state_dict(), best, optimizer, scheduler)
    if not state.done(n_epochs, cfg.patience):
        return {"finished": False, "epochs_run": state.epoch}
    model.load_state_dict(best)
    model.eval()
    tuned = tune_operating_point(model, val_grays, val_truth)
    test_ms = splits["test"]
    test = None
    if test_ms:
        t0 = time.perf_counter()
        found = detect_all(Detector(model, auto_scale=False), load_grays(test_ms, cfg.workers), cfg.progress, "test")
        test = detection_metrics([m.boxes for m in test_ms], found, model.operating["score_threshold"])
        test["seconds_per_metaphase"] = (time.perf_counter() - t0) / len(test_ms)
    report = {"config": {**asdict(cfg), "out": str(cfg.out)}, "identity": ident, "plan": state.plan,
              "init": init, "best_epoch": state.best_epoch, "epochs_run": state.epoch, "precision":
              "bf16 autocast" if _bf16(cfg) else "fp32", "operating_point": model.operating, "tuning": tuned,
              "data": describe(splits), "test_metrics": test,
              "train_minutes": sum(float(r["seconds"]) for r in state.log) / 60,  # every invocation's epochs
              "minutes_this_invocation": (time.perf_counter() - started) / 60,
              "versions": {m.__name__: m.__version__ for m in (torch, torchvision, timm)}}
    hub.save_detector(out, model)
    hub.write_detector_card(out, report)
    _write_cases(out, splits)
    atomic_write_text(out / "train_report.json", json.dumps(report, indent=2, default=str) + "\n")
    return {"finished": True, **report}


def _write_cases(out: Path, splits: dict[str, list[Metaphase]]) -> None:
    """split_cases.csv (case → split) and metaphases.csv (stem, case, split, boxes): what was seen where."""
    cases = sorted({(m.case, s) for s, ms in splits.items() for m in ms})
    atomic_write_text(out / "split_cases.csv", "group,split\n" + "".join(f"{c},{s}\n" for c, s in cases))
    rows = sorted((m.stem, m.case, s, len(m.boxes)) for s, ms in splits.items() for m in ms)
    atomic_write_text(out / "metaphases.csv", "stem,case,split,boxes\n" + "".join(",".join(map(str, r)) + "\n"
                                                                                 for r in rows))
