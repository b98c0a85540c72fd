"""Training throughput of canonical-view candidates against the whole-canvas Lite0, same run, same data.

    python bench/bench_view_train.py --data DATASET [--steps 12] [--batch-size 64] [--bf16] [--compile]

Rows: each candidate backbone at ×2 down (104×48) and native scale (208×96), fp32 (and bf16 autocast
with --bf16), channels_last; "end-to-end" reads the split's view cache through the training loop's
DataLoader + Feed + train_step (what `chromosomenet train` runs), "model-only" repeats one batch
already in memory. Reference: `tf_efficientnet_lite0` on the whole canvas at 128 px, end-to-end from
Parquet (PNG decode in 2 loader workers), as the suite trained it before the view. Ratio = a row's
end-to-end img/s over the reference's. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, RandomSampler

from chromosomenet.data import viewcache
from chromosomenet.data.loading import dataset_identity, load_splits
from chromosomenet.data.transforms import CanvasImages, Feed, norm_stats
from chromosomenet.models.factory import create
from chromosomenet.models.viewnet import is_view_model
from chromosomenet.training.classifier import TrainConfig, train_step

CANDIDATES = ("chromosomenet_view_resnet18", "chromosomenet_view_resnet10t", "chromosomenet_view_resnet10t_half",
              "chromosomenet_view_lite0")


def _rate(step, batches, warmup: int, steps: int) -> float:
    for x, y in itertools.islice(batches, warmup):
        step(x, y)
    start, n = time.perf_counter(), 0
    for x, y in itertools.islice(batches, steps):
        step(x, y)
        n += len(y)
    return n / (time.perf_counter() - start)


def measure(name: str, dataset, a, precision: str, img_size: int = 128) -> tuple[float, float]:
    """(model-only, end-to-end) training img/s of ``name`` on ``dataset`` (views or canvases)."""
    acc = Accelerator(mixed_precision="bf16" if precision == "bf16" else "no", cpu=True)
    cfg = TrainConfig(model=name, data=a.data, out=".", batch_size=a.batch_size, img_size=img_size)
    model = create(name, init="none")
    if is_view_model(model):
        net, feed = model.net, Feed(model.spec.size, (model.view_mean,), (model.view_std,))
    else:
        net = model
        feed = Feed(img_size, *norm_stats(model.pretrained_cfg["mean"], model.pretrained_cfg["std"], 3))
    net = net.to(memory_format=torch.channels_last)
    net = torch.compile(net) if a.compile else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-4, total_steps=10 * (a.steps + a.warmup) + 10)
    net, opt = acc.prepare(net, opt)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    gen = torch.Generator().manual_seed(0)

    def step(x, y):
        train_step(net, x, y, opt, sched, crit, acc, cfg, feed, gen)

    workers = 0 if isinstance(dataset, viewcache.ViewCache) else 2
    sampler = RandomSampler(dataset, replacement=True, num_samples=a.batch_size * (a.steps + a.warmup + 2))
    loader = DataLoader(dataset, batch_size=a.batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)
    x, y, _ = next(iter(loader))
    model_only = _rate(step, itertools.repeat((x, y)), a.warmup, a.steps)
    end_to_end = _rate(step, ((x, y) for x, y, _ in loader), a.warmup, a.steps)
    return model_only, end_to_end


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", default=",".join(CANDIDATES))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="also measure bf16 autocast (fast only with AVX-512-BF16/AMX)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--limit", type=int, default=4096, help="training images the batches are drawn from")
    a = ap.parse_args()
    splits = load_splits(a.data, need=("train",))
    data_id = dataset_identity(a.data, splits)
    splits["train"] = splits["train"].select(range(min(a.limit, len(splits["train"]))))
    print(f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads; batch {a.batch_size}, {a.steps} timed "
          f"steps; compile {a.compile}\n")
    ref_model, ref = measure("tf_efficientnet_lite0", CanvasImages(splits["train"]), a, "fp32")
    rows = [("tf_efficientnet_lite0, whole canvas 128 px (reference)", "fp32", ref_model, ref)]
    for name in a.models.split(","):
        for suffix, label in (("", "104×48 (×2 down)"), ("_native", "208×96 (native)")):
            views = viewcache.cached(splits["train"], "train", data_id, create(name + suffix).spec, workers=2,
                                     progress=False)
            for precision in ("fp32", "bf16") if a.bf16 else ("fp32",):
                model_only, e2e = measure(name + suffix, views, a, precision)
                rows.append((f"{name}, view {label}", precision, model_only, e2e))
    print("| model | precision | model-only img/s | end-to-end img/s | end-to-end / reference |\n|---|---|---|---|---|")
    for label, precision, model_only, e2e in rows:
        print(f"| {label} | {precision} | {model_only:,.0f} | {e2e:,.0f} | {e2e / ref:.2f}× |")


if __name__ == "__main__":
    main()
