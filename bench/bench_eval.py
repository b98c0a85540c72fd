"""Evaluation throughput, three ways, measured in the same run on the same model and images:

1. model-only: the predictor on canvases already in memory (preprocessing on the device included);
2. end-to-end: Parquet → decode (DataLoader workers) → predictor → metrics (`chromosomenet evaluate`'s path),
   also without folding BatchNorm into the convolutions, to show what the fold is worth;
3. plain reference: a textbook timm eval loop — decoded PIL images, timm's own eval transform per
   sample (resize + to-tensor + normalise on the CPU), fp32, NCHW, a DataLoader with the same workers.

    python bench/bench_eval.py --model RUN_DIR_OR_TIMM_ID --data DATASET [--split test] [--batch-size 64]
        [--workers 2] [--limit 2000]

Goals: end-to-end >= 70 % of model-only on a GPU; on CPU, end-to-end / plain >= 2x. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import timm
import torch
from torch.utils.data import DataLoader, Dataset

from chromosomenet.data.loading import load_splits
from chromosomenet.data.transforms import CanvasImages
from chromosomenet.metrics.classification import full_report
from chromosomenet.models.viewnet import is_view_model
from chromosomenet.pipeline.predict import Predictor, load_classifier, predict


class PilImages(Dataset):
    """The plain way: decoded PIL images through timm's eval transform, one sample at a time."""

    def __init__(self, split, transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        row = self.split[i]
        return self.transform(row["image"].convert("RGB")), row["label"]


def plain_loop(spec: str, split, batch_size: int, workers: int) -> float:
    model = timm.create_model(spec if ":" in spec else f"local-dir:{spec}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    loader = DataLoader(PilImages(split, transform), batch_size=batch_size, num_workers=workers)
    start, preds = time.perf_counter(), []
    with torch.no_grad():
        for x, _ in loader:
            preds.append(model(x).argmax(-1))
    return len(split) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--plain-workers", type=int, default=os.cpu_count() or 1, help="the reference's DataLoader workers")
    ap.add_argument("--limit", type=int, default=2000, help="images used (first N of the split)")
    a = ap.parse_args()
    split = load_splits(a.data, need=(a.split,))[a.split]
    split = split.select(range(min(a.limit, len(split))))
    model, cfg = load_classifier(a.model)
    predictor = Predictor(model, cfg)

    canvases = torch.stack([CanvasImages(split)[i][0] for i in range(len(split))])

    def model_only_rate(p: Predictor) -> float:
        p(canvases[: a.batch_size])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(canvases), a.batch_size):
            p(canvases[i : i + a.batch_size]).argmax(-1).cpu()
        return len(canvases) / (time.perf_counter() - start)

    model_only = model_only_rate(predictor)

    def end_to_end_rate(p: Predictor) -> float:
        start = time.perf_counter()
        probs = predict(p, split, a.batch_size, a.workers, progress=False)
        full_report(np.asarray(split["label"]), probs.argmax(1), probs, n_boot=1000)
        return len(split) / (time.perf_counter() - start)

    end_to_end = end_to_end_rate(predictor)
    one_pass = None
    if is_view_model(model):  # it reads both turns of the view in eval mode; one pass beside it
        model.tta = False
        single = Predictor(model, cfg)
        model.tta = True
        one_pass = model_only_rate(single), end_to_end_rate(single)
    unfolded = end_to_end_rate(Predictor(model, cfg, fold_bn=False))
    bf16 = end_to_end_rate(Predictor(model, cfg, precision="bf16")) if not torch.cuda.is_available() else None
    plain = plain_loop(a.model, split, a.batch_size, a.plain_workers)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; model {a.model} at {cfg['input_size']}; {len(split)} images; batch "
          f"{a.batch_size}; ours: {a.workers} loader workers; {torch.get_num_threads()} torch threads\n")
    print("| path | images/s | ratio |\n|---|---|---|")
    print(f"| model-only (canvases in memory) | {model_only:,.0f} | 1.00 |")
    print(f"| end-to-end (Parquet → decode → model → metrics) | {end_to_end:,.0f} | {end_to_end / model_only:.2f} of model-only |")
    if one_pass is not None:
        print(f"| one turn of the view only (`model.tta = False`): model-only / end-to-end | "
              f"{one_pass[0]:,.0f} / {one_pass[1]:,.0f} | {one_pass[0] / model_only:.2f}x / "
              f"{one_pass[1] / end_to_end:.2f}x the default |")
    print(f"| end-to-end, BatchNorm not folded ({predictor.folded} pairs are by default) | {unfolded:,.0f} | "
          f"folding gains {end_to_end / unfolded:.2f}x |")
    if bf16 is not None:
        print(f"| end-to-end, bf16 on CPU (`--precision bf16`) | {bf16:,.0f} | ours is {bf16 / plain:.2f}x the plain loop |")
    print(f"| plain timm loop (PIL transforms, fp32, NCHW, {a.plain_workers} workers) | {plain:,.0f} | "
          f"ours (fp32) is {end_to_end / plain:.2f}x |")


if __name__ == "__main__":
    main()
