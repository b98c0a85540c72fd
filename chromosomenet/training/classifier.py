"""Fine-tune a baseline with Accelerate (one CPU process, one or many GPUs, many nodes).

The paper's recipe is the default: batch 32 per process, AdamW lr 1e-4 on a one-cycle schedule,
label-smoothing 0.1 cross-entropy, up to 500 epochs, early stopping after 5 epochs without a
better validation loss, best weights restored. The run folder ends as a timm model repo.

Reproducibility: every random draw of epoch ``e`` comes from (seed, e, rank) — data order
(DistributedSampler), augmentation (a seeded generator), dropout (the torch seed) — so a run
resumed from its epoch checkpoint ends with the same weights as one never interrupted (on CPU).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import accelerate
import datasets
import timm
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm.auto import tqdm

from ..data import viewcache
from ..data.loading import dataset_identity, describe, load_splits, with_rehearsal
from ..data.transforms import Augment, CanvasImages, Feed, cell_scales, norm_stats
from ..errors import BadInputError, ChromosomeNetError
from ..fsutil import atomic_write_text
from ..metrics.classification import confusion, summarize
from ..models import factory, hub
from ..models.viewnet import is_view_model, turned
from . import budget, checkpoint
from .distill import Teacher


class TrainingError(ChromosomeNetError):
    """Training cannot go on (e.g. the loss became NaN)."""


@dataclass
class TrainConfig:
    model: str
    data: str
    out: Path
    img_size: int = 224
    in_chans: int = 3                  # 3: the grey canvas is repeated on the device (ecosystem-ready export)
    init: str = "imagenet"             # imagenet | none | PATH (.safetensors file or model folder)
    batch_size: int = 32               # per process
    lr: float = 1e-4
    weight_decay: float = 0.01
    pct_start: float = 0.25            # one-cycle warm-up share
    label_smoothing: float = 0.1
    max_epochs: int = 500
    epochs: int | None = None          # cap for quick runs; also the one-cycle length when given
    patience: int = 5
    seed: int = 0
    augment: Augment = field(default_factory=Augment)
    workers: int = 2                   # DataLoader processes per training process
    eval_batch_size: int = 128
    bn_stats_images: int = 4096        # recompute BatchNorm statistics on this many training images each epoch; 0: off
    compile: bool = False
    resume: bool = False
    stop_after: int | None = None      # end this invocation after N epochs (time-sliced jobs); resume later
    time_budget: float | None = None   # minutes: plan the one-cycle length so the run ends annealed by then
    precision: str = "auto"            # auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp32
    cache: bool = True                 # view models: decode each split once into memory (else per batch)
    cell_scale: bool = True            # each cell (``cell_id``) at the reference scale and greys, as prediction reads it
    rehearse: str | None = None        # a built dataset whose training cells join the training split (``adapt``)
    rehearse_rows: int = 0             # about this many of its chromosomes, whole cells (0: as many as the split has)
    distill: float = 0.0               # with rehearse: pull toward the init model's answers on its rows (distill.py)
    progress: bool = True

    @property
    def n_epochs(self) -> int:
        return min(self.max_epochs, self.epochs or self.max_epochs)


@dataclass
class TrainResult:
    run_dir: Path
    finished: bool
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    test_metrics: dict | None


def run_identity(cfg: TrainConfig) -> dict:
    """The settings a resumed or reused run must share with this config (the data by content)."""
    return _identity(cfg, dataset_identity(cfg.data, load_splits(cfg.data, need=())))


def _identity(cfg: TrainConfig, data_id: str) -> dict:
    """The settings a resumed run must share with its checkpoint."""
    keep = ("model", "img_size", "in_chans", "init", "batch_size", "lr", "weight_decay", "pct_start",
            "label_smoothing", "max_epochs", "epochs", "patience", "seed", "bn_stats_images", "time_budget",
            "cell_scale", "rehearse_rows")
    ident = {k: getattr(cfg, k) for k in keep}
    ident["augment"] = asdict(cfg.augment)
    if cfg.distill:  # only when used: checkpoints made before the option resume as they were
        ident["distill"] = cfg.distill
    ident["data"] = data_id
    return ident


def train_step(net, x, y, optimizer, scheduler, criterion, acc: Accelerator, cfg: TrainConfig,
               feed: Feed, gen: torch.Generator | None, teacher: Teacher | None = None,
               index: torch.Tensor | None = None) -> torch.Tensor:
    """One optimisation step on a uint8 batch already on the device (``index``: its rows, for the
    ``teacher``); returns the detached loss."""
    with acc.autocast():
        fed = feed(x, cfg.augment, gen)
        logits = net(fed).float()
        loss = criterion(logits, y)
        if teacher is not None:
            loss = loss + teacher.loss(fed, logits, index)
    acc.backward(loss)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def recompute_bn_stats(model: torch.nn.Module, dataset, acc: Accelerator, cfg: TrainConfig, feed: Feed,
                       epoch: int) -> None:
    """Replace every BatchNorm's running averages with statistics of the current weights ("precise BN").

    Why: a chromosome fills a few percent of its white canvas, and the running averages trail the
    changing weights so far that eval-mode predictions sat at chance (4.7 % validation accuracy)
    while the same weights with recomputed statistics scored 20.8 % (Lite0, 150 steps, lr 1e-3).
    Each process averages its own shard of a seeded sample of the training split (train-size
    batches, no augmentation, dropout off); the shards' statistics are then pooled across processes
    (variance including the spread of the shard means) so every replica ends with the same buffers.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or cfg.bn_stats_images <= 0:
        return
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * 101 + 7)  # the same sample on every process
    picked = torch.randperm(len(dataset), generator=g)[:cfg.bn_stats_images].tolist()
    loader = DataLoader(Subset(dataset, picked[acc.process_index::acc.num_processes]), batch_size=cfg.batch_size,
                        num_workers=_workers(dataset, cfg))
    was_training, momenta = model.training, [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    with torch.no_grad():
        for x, _, _ in loader:
            with acc.autocast():
                model(feed(x.to(acc.device, non_blocking=True)))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
        mu, var = m.running_mean, m.running_var
        pooled = acc.reduce(torch.stack([mu, var, mu * mu]), "mean")
        mu.copy_(pooled[0])
        var.copy_(pooled[1] + pooled[2] - pooled[0] * pooled[0])
    model.train(was_training)


def _evaluate(model, loader, acc: Accelerator, cfg: TrainConfig, feed: Feed, desc: str, tta: bool = False):
    """(mean loss, true labels, predicted labels) over a split, each sample counted once across processes.

    ``tta``: ``model`` is a view backbone fed views; average its logits over both turns of the view,
    as the exported :class:`~chromosomenet.models.viewnet.ViewNet` does in eval mode."""
    model.eval()
    losses, ys, preds = [], [], []
    with torch.no_grad():
        for x, y, _ in tqdm(loader, desc=desc, leave=False, disable=not (cfg.progress and acc.is_main_process)):
            with acc.autocast():
                xf = feed(x)
                logits = model(xf) if not tta else 0.5 * (model(xf) + model(turned(xf)))
            loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="none",
                                                     label_smoothing=cfg.label_smoothing)
            loss, y, pred = acc.gather_for_metrics((loss, y, logits.argmax(-1)))
            losses.append(loss.cpu())
            ys.append(y.cpu())
            preds.append(pred.cpu())
    return float(torch.cat(losses).mean()), torch.cat(ys).numpy(), torch.cat(preds).numpy()


def _precision(cfg: TrainConfig) -> str:
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise BadInputError(cfg.precision, "unknown precision", "use auto, bf16 or fp32")
    if cfg.precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return "no" if cfg.precision == "fp32" else "bf16"


def _workers(dataset, cfg: TrainConfig) -> int:
    """In-memory views need no loader processes; decoding canvases does."""
    return 0 if isinstance(dataset, viewcache.ViewCache) else cfg.workers


def train(cfg: TrainConfig) -> TrainResult:
    started = time.perf_counter()
    acc = Accelerator(mixed_precision=_precision(cfg))
    main = acc.is_main_process
    out = Path(cfg.out)
    splits = load_splits(cfg.data, need=("train", "validation"))
    data_id = dataset_identity(cfg.data, splits)
    first_old = len(splits["train"])  # rehearsal rows follow the lab's
    if cfg.distill and not (cfg.rehearse and Path(cfg.init).is_dir()):
        raise BadInputError("distill", "needs rehearsal rows and a model folder to start from",
                            "give rehearse and init a trained model folder, or distill 0")
    if cfg.rehearse:
        extra = load_splits(cfg.rehearse, need=("train",))
        splits["train"] = with_rehearsal(splits["train"], extra["train"], cfg.rehearse_rows or len(splits["train"]),
                                         cfg.seed)
        data_id += "+rehearse:" + dataset_identity(cfg.rehearse, extra)
    ident = _identity(cfg, data_id)
    if checkpoint.has_checkpoint(out) and not cfg.resume:
        raise BadInputError(out, "already holds a training run", "pass --resume to continue it, or choose a new --out")
    resumed = checkpoint.load(out, ident) if cfg.resume and checkpoint.has_checkpoint(out) else None
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)  # the same initial head on every process
    model = factory.create(cfg.model, init="none" if resumed else cfg.init, in_chans=cfg.in_chans)
    tta = is_view_model(model) and model.tta  # validation / test scored as the exported model scores
    if is_view_model(model):
        # the backbone trains on canonical views; the exported model wraps it (canvas in, logits out)
        trainable, export_cfg = model.net, hub.export_cfg(model)
        feed = Feed(model.spec.size, (model.view_mean,), (model.view_std,), None if cfg.cache else model.spec)
    else:
        mean, std = norm_stats(model.pretrained_cfg.get("mean", (0.485, 0.456, 0.406)),
                               model.pretrained_cfg.get("std", (0.229, 0.224, 0.225)), cfg.in_chans)
        trainable, export_cfg = model, hub.export_cfg(model, cfg.img_size, cfg.in_chans, mean, std)
        feed = Feed(cfg.img_size, mean, std)
    trainable = trainable.to(memory_format=torch.channels_last)
    teacher = None
    if cfg.distill:  # the source as it was, whatever the student (or a resumed checkpoint) holds
        source_model = factory.create(cfg.model, init=cfg.init, in_chans=cfg.in_chans)
        source_net = source_model.net if is_view_model(source_model) else source_model
        teacher = Teacher(source_net.to(acc.device, memory_format=torch.channels_last), first_old, cfg.distill)

    def source(name: str):
        if is_view_model(model) and cfg.cache:
            return viewcache.cached(splits[name], name, data_id, model.spec, workers=cfg.workers,
                                    progress=cfg.progress and main, cell_scale=cfg.cell_scale)
        return CanvasImages(splits[name], cell_scales(splits[name]) if cfg.cell_scale else None)

    train_set, val_set = source("train"), source("validation")
    sampler = DistributedSampler(train_set, num_replicas=acc.num_processes, rank=acc.process_index,
                                 shuffle=True, seed=cfg.seed)

    def loader(dataset, **kw) -> DataLoader:
        n = _workers(dataset, cfg)
        return DataLoader(dataset, num_workers=n, pin_memory=torch.cuda.is_available(), persistent_workers=n > 0, **kw)

    train_loader = loader(train_set, batch_size=cfg.batch_size, sampler=sampler)
    val_loader = loader(val_set, batch_size=cfg.eval_batch_size)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    state = checkpoint.RunState(identity=ident)
    if resumed:
        state = checkpoint.RunState(**{**asdict(resumed[0]), "identity": ident})
    if cfg.time_budget and state.plan is None:
        x, y, _ = next(iter(train_loader))
        batch = feed(x.to(acc.device), cfg.augment, torch.Generator().manual_seed(0)), y.to(acc.device)
        step_s, image_s = budget.measure(trainable, lambda: batch, lambda m, x, y: criterion(m(x).float(), y),
                                         cfg.lr, acc.autocast)
        step_s, image_s = acc.reduce(torch.tensor([step_s, image_s], device=acc.device), "mean").tolist()
        n_test = len(splits["test"]) if "test" in splits else 0
        passes = 2 if tta else 1  # both turns of the view: each validation / test image is read twice
        plan = budget.plan(cfg.time_budget, time.perf_counter() - started, len(train_loader), step_s, image_s,
                           per_epoch_images=min(cfg.bn_stats_images, len(train_set)) + passes * len(val_set),
                           final_images=passes * n_test, max_epochs=cfg.max_epochs)
        state.plan = plan.to_dict()
    plan = budget.Plan(**state.plan) if state.plan else None
    n_epochs = plan.epochs if plan else cfg.n_epochs
    steps = plan.total_steps if plan else n_epochs * len(train_loader)
    if main and plan:
        print(f"time budget {cfg.time_budget:g} min: {plan.total_steps} steps ({steps / len(train_loader):.2f} "
              f"epochs) at {plan.step_s:.3f} s/step")

    optimizer, scheduler, best = checkpoint.one_cycle(trainable, cfg.lr, cfg.weight_decay, steps, cfg.pct_start,
                                                      resumed)
    net = torch.compile(trainable) if cfg.compile else trainable
    net, optimizer, val_loader = acc.prepare(net, optimizer, val_loader)

    ran_now = 0
    while not state.done(n_epochs, cfg.patience):
        epoch = state.epoch + 1
        if cfg.stop_after is not None and ran_now >= cfg.stop_after:
            break
        torch.manual_seed(cfg.seed * 100_003 + epoch * 101 + acc.process_index)  # dropout & co.
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * 101 + acc.process_index)
        sampler.set_epoch(epoch)
        net.train()
        start, seen = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=acc.device)
        this_epoch = min(len(train_loader), steps - (epoch - 1) * len(train_loader))  # the plan may end mid-epoch
        bar = tqdm(itertools.islice(train_loader, this_epoch), total=this_epoch, desc=f"epoch {epoch}/{n_epochs}",
                   disable=not (cfg.progress and main))
        for x, y, index in bar:
            x, y = x.to(acc.device, non_blocking=True), y.to(acc.device, non_blocking=True)
            loss = train_step(net, x, y, optimizer, scheduler, criterion, acc, cfg, feed, gen, teacher,
                              index.to(acc.device))
            loss_sum += loss * len(y)
            seen += len(y)
        totals = acc.reduce(torch.stack([loss_sum, torch.tensor(float(seen), device=acc.device)]), "sum")
        train_loss = float(totals[0] / totals[1])
        if not math.isfinite(train_loss):  # checked once an epoch: the last good checkpoint stays
            kept = f"the checkpoint of epoch {state.epoch} is kept" if state.epoch else "nothing was saved"
            raise TrainingError(f"{out}: training loss became {train_loss} in epoch {epoch}; {kept}; "
                                "train again into a new --out with a lower --lr, or check the data")
        images_s = float(totals[1]) / (time.perf_counter() - start)
        base = acc.unwrap_model(net)
        recompute_bn_stats(getattr(base, "_orig_mod", base), train_set, acc, cfg, feed, epoch)
        val_loss, yv, pv = _evaluate(net, val_loader, acc, cfg, feed, "validation", tta)
        ran_now += 1
        if state.update(epoch, val_loss):
            best = checkpoint.cpu_copy(acc.unwrap_model(net).state_dict())
        state.record({"epoch": epoch, "train_loss": round(train_loss, 6), "val_loss": round(val_loss, 6),
                      "val_accuracy": round(float((yv == pv).mean()), 6),
                      "lr": f"{scheduler.get_last_lr()[0]:.3e}", "images_per_s": round(images_s, 1),
                      "seconds": round(time.perf_counter() - start, 2)})
        if main:
            checkpoint.save(out, state, acc.unwrap_model(net).state_dict(), best, optimizer, scheduler)
        acc.wait_for_everyone()

    finished = state.done(n_epochs, cfg.patience)
    test = None
    if finished:
        acc.unwrap_model(net).load_state_dict(best)  # restore the best epoch's weights
        test_set = source("test") if "test" in splits and len(splits["test"]) else None
        test = _finish(out, cfg, acc, net, model, test_set, splits, state, export_cfg, feed, n_epochs, tta)
    acc.wait_for_everyone()
    acc.end_training()
    return TrainResult(out, finished, state.epoch, state.best_epoch, state.best_val_loss, test)


def _weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def _finish(out, cfg, acc, net, model, test_set, splits, state, export_cfg, feed: Feed, n_epochs: int,
            tta: bool) -> dict | None:
    """Score the best weights on the test split; export weights, config, card and run facts."""
    # Every replica must hold the same weights at the end (DDP keeps them in step); check, don't assume.
    digests = gather_object([_weights_digest(acc.unwrap_model(net))])
    if len(set(digests)) != 1:
        raise TrainingError(f"{out}: the {len(digests)} processes ended with different weights; "
                            "do not use this run (check that every process saw the same data)")
    metrics, cm = None, None
    if test_set is not None:
        loader = acc.prepare(DataLoader(test_set, batch_size=cfg.eval_batch_size, num_workers=_workers(test_set, cfg)))
        _, yt, pt = _evaluate(net, loader, acc, cfg, feed, "test", tta)
        cm = confusion(yt, pt)
        metrics = summarize(cm)
    if acc.is_main_process:
        unwrapped = acc.unwrap_model(net)
        unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)  # torch.compile wrapper
        unwrapped.to(memory_format=torch.contiguous_format)
        hub.save(out, model if is_view_model(model) else unwrapped, export_cfg)
        view = is_view_model(model)
        facts = {**describe(cfg.data, splits), "model": cfg.model,
                 "input": (f"the 300×300 canvas → canonical view {model.spec.size[0]}×{model.spec.size[1]}"
                           if view else f"the whole canvas resized to {cfg.img_size}×{cfg.img_size}"),
                 "in_chans": export_cfg["input_size"][0], "init": cfg.init, "seed": cfg.seed,
                 "best_epoch": state.best_epoch, "epochs_run": state.epoch, "best_val_loss": state.best_val_loss,
                 "recipe": _recipe(cfg, acc, feed, n_epochs, state.plan)}
        hub.write_card(out, facts, metrics, cm)
        report = {"config": {**asdict(cfg), "out": str(cfg.out)}, "identity": state.identity, "plan": state.plan,
                  "processes": acc.num_processes, "weights_sha256_per_process": digests,
                  "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                  "versions": {m.__name__: m.__version__ for m in (torch, timm, datasets, accelerate)},
                  "facts": facts, "test_metrics": metrics}
        atomic_write_text(out / "train_report.json", json.dumps(report, indent=2, default=str) + "\n")
    return metrics


def _recipe(cfg: TrainConfig, acc: Accelerator, feed: Feed, n_epochs: int, plan: dict | None) -> dict:
    size = feed.size if isinstance(feed.size, tuple) else (feed.size, feed.size)
    schedule = (f"one-cycle over {plan['total_steps']} steps ({n_epochs} epochs, planned for a "
                f"{cfg.time_budget:g}-minute budget at {plan['step_s']:.3f} s/step)" if plan
                else f"one-cycle over {n_epochs} epochs")
    return {"optimizer": f"AdamW (lr {cfg.lr:g}, weight decay {cfg.weight_decay:g})",
            "schedule": f"{schedule} (warm-up {cfg.pct_start:g})",
            "loss": f"cross-entropy, label smoothing {cfg.label_smoothing:g}",
            "batch size": f"{cfg.batch_size} per process × {acc.num_processes} process(es)",
            "BatchNorm statistics": (f"recomputed each epoch on {cfg.bn_stats_images} training images"
                                     if cfg.bn_stats_images > 0 else "running averages"),
            "early stopping": f"patience {cfg.patience} epochs on validation loss; best weights restored",
            "augmentation": ", ".join(f"{k} {v}" for k, v in asdict(cfg.augment).items()),
            "precision": "bf16 autocast" if acc.mixed_precision == "bf16" else "fp32",
            "cell scale": ("each cell's median chromosome length and ink greys brought to the reference "
                           "(cellscale)" if cfg.cell_scale else "off: every canvas at its own pixels and greys"),
            "input": f"{size[0]}×{size[1]} px, {len(feed.mean)} channel(s), channels_last"}
