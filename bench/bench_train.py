"""Training throughput: end-to-end (Parquet → decode → device transforms → step) beside the
model-only step on synthetic canvases already on the device, measured in the same run.

    python bench/bench_train.py --data DATASET [--models resnet50,mobilenetv2_100] [--img-size 224]
        [--batch-size 256] [--steps 30] [--workers 16] [--compile]

The ratio end-to-end / model-only shows whether loading is the bottleneck (goal >= 0.9).
Uses the training loop's own step (chromosomenet.training.classifier.train_step): bf16 autocast on GPU,
channels_last, AdamW + one-cycle, the default augmentation. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, RandomSampler

from chromosomenet.data.loading import load_splits
from chromosomenet.data.transforms import CanvasImages, norm_stats
from chromosomenet.models.factory import create
from chromosomenet.training.classifier import TrainConfig, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, data, a, acc: Accelerator) -> tuple[float, float]:
    cfg = TrainConfig(model=name, data=a.data, out=".", img_size=a.img_size, batch_size=a.batch_size,
                      compile=a.compile)
    model = create(name, init="none").to(memory_format=torch.channels_last)
    mean, std = norm_stats(model.pretrained_cfg["mean"], model.pretrained_cfg["std"], 3)
    net = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-4, total_steps=10 * (a.steps + a.warmup) + 10)
    net, opt = acc.prepare(net, opt)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    gen = torch.Generator().manual_seed(0)
    dev = acc.device

    def run(batches) -> float:
        for x, y in itertools.islice(batches, a.warmup):
            train_step(net, x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), opt, sched, crit, acc, cfg,
                       mean, std, gen)
        _sync(dev)
        t, n = time.perf_counter(), 0
        for x, y in itertools.islice(batches, a.steps):
            train_step(net, x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), opt, sched, crit, acc, cfg,
                       mean, std, gen)
            n += len(y)
        _sync(dev)
        return n / (time.perf_counter() - t)

    x = torch.randint(0, 256, (a.batch_size, 1, 300, 300), dtype=torch.uint8, device=dev)
    y = torch.randint(0, 24, (a.batch_size,), device=dev)
    model_only = run(itertools.repeat((x, y)))
    sampler = RandomSampler(data, replacement=True, num_samples=a.batch_size * (a.steps + a.warmup + 2))
    loader = DataLoader(data, batch_size=a.batch_size, sampler=sampler, num_workers=a.workers,
                        pin_memory=dev.type == "cuda", persistent_workers=a.workers > 0, prefetch_factor=4
                        if a.workers else None, drop_last=True)
    end_to_end = run((x, y) for x, y, _ in loader)
    return model_only, end_to_end


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", default="resnet50,mobilenetv2_100")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    acc = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    data = CanvasImages(load_splits(a.data)["train"])
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; img {a.img_size}, batch {a.batch_size}, {a.steps} timed steps, "
          f"{a.workers} loader workers, {acc.mixed_precision} precision, compile {a.compile}\n")
    print("| model | model-only img/s | end-to-end img/s | end-to-end / model-only |\n|---|---|---|---|")
    for name in a.models.split(","):
        model_only, e2e = measure(name, data, a, acc)
        print(f"| {name} | {model_only:,.0f} | {e2e:,.0f} | {e2e / model_only:.2f} |")


if __name__ == "__main__":
    main()
