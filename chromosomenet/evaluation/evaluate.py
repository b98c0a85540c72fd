"""Score a model on a dataset split: predictions, the paper's metrics, figures, InferenceTime.

    EVAL_DIR/predictions.parquet  id, group, cell_id, label, predicted, p_1 … p_Y
    EVAL_DIR/metrics.json         metrics + how they were made (model, data, split, device, timing)
    EVAL_DIR/confusion.png, per_class.png

The model is any timm model with 24 outputs: a run folder, ``local-dir:``, ``hf-hub:`` or a timm
name. External predictions (``chromosomenet score``) go through the same report.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .. import labels
from ..data.cellscale import summary
from ..data.loading import describe, load_splits
from ..data.transforms import CanvasImages, cell_scales
from ..errors import BadInputError
from ..fsutil import atomic_write_bytes, atomic_write_text
from ..metrics.classification import confusion, full_report
from ..metrics.figures import confusion_png, per_class_png
from ..models.registry import measure
from ..pipeline.predict import Predictor, load_classifier, predict

PROB_COLUMNS = tuple(f"p_{n}" for n in labels.NAMES)


@dataclass(frozen=True)
class EvalConfig:
    model: str
    data: str
    out: Path
    split: str = "test"
    batch_size: int | None = None    # None: 128 on a GPU, 16 on a CPU (measured fastest on 2 cores: cache)
    workers: int | None = None       # decode processes; None: up to 8 on a GPU, 0 on a CPU (they take its cores)
    timing: bool = True              # InferenceTime (paper) + best-batch throughput + params/FLOPs
    timing_samples: int = 1000
    throughput_seconds: float = 2.0  # per batch size tried
    precision: str = "auto"          # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
    backend: str = "torch"           # torch | onnx (``model`` is then a .onnx file from ``export-onnx``)
    cell_scale: bool = True          # read each cell (``cell_id``) at the reference scale and greys (:mod:`.cellscale`)
    together: bool = True            # and each cell's chromosomes together (``Predictor.cell``); False: one by one,
                                     # as training scores its test split and single-image tools read
    n_boot: int = 1000
    seed: int = 0
    progress: bool = True


def inference_time(predictor: Predictor, split, n: int = 1000, warmup: int = 20) -> dict:
    """The paper's InferenceTime: seconds to predict ``n`` samples one at a time, consecutively, from
    decoded images (decode excluded; preprocessing, model and the argmax included), after warm-up."""
    images = CanvasImages(split)
    decoded = [images[i % len(images)][0].unsqueeze(0) for i in range(min(n, len(images)))]
    for i in range(warmup):
        predictor(decoded[i % len(decoded)]).argmax().item()
    start = time.perf_counter()
    for i in range(n):
        predictor(decoded[i % len(decoded)]).argmax().item()  # .item(): wait for the device each time
    seconds = time.perf_counter() - start
    return {"samples": n, "seconds_per_1000": seconds * 1000 / n, "ms_per_sample": seconds * 1000 / n}


def best_throughput(predictor: Predictor, batch_sizes=(1, 16, 64, 256), seconds: float = 2.0) -> dict:
    """Model-only images/s (preprocessing on the device included) at the best of ``batch_sizes``."""
    best = {"batch_size": 0, "images_per_s": 0.0}
    for bs in batch_sizes:
        x = torch.full((bs, 1, 300, 300), 255, dtype=torch.uint8, device=predictor.device)
        try:
            predictor(x)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                predictor(x).argmax(-1).cpu()
                n += bs
        except torch.OutOfMemoryError:
            break
        rate = n / (time.perf_counter() - start)
        if rate > best["images_per_s"]:
            best = {"batch_size": bs, "images_per_s": rate}
    return best


def write_predictions(path: Path, ids, groups, cells, y_true, y_pred, probs: np.ndarray | None) -> None:
    cols = {"id": pa.array(list(ids), pa.string()), "group": pa.array(list(groups), pa.string()),
            "cell_id": pa.array(list(cells), pa.string()), "label": pa.array(np.asarray(y_true), pa.int64()),
            "predicted": pa.array(np.asarray(y_pred), pa.int64())}
    if probs is not None:
        cols.update({c: pa.array(probs[:, i].astype(np.float32)) for i, c in enumerate(PROB_COLUMNS)})
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table(cols), buf)
    atomic_write_bytes(path, buf.getvalue().to_pybytes())


def format_metrics(m: dict) -> str:
    keys = ("accuracy", "precision", "sensitivity", "specificity", "f1", "kappa", "top2_accuracy", "ece")
    rows = [f"{k:<14} {100 * m[k]:7.2f}" + ("" if k != "accuracy" else
            f"   (95% CI {100 * m['accuracy_ci95'][0]:.2f}–{100 * m['accuracy_ci95'][1]:.2f}, "
            f"resampling {m['ci_resampling']})") for k in keys if m.get(k) is not None]
    if m.get("no_support"):
        rows.append(f"no test images for class(es): {', '.join(m['no_support'])}")
    return "\n".join(rows)


def report(out: Path, split, probs: np.ndarray | None, y_pred: np.ndarray, facts: dict, n_boot: int,
           seed: int) -> dict:
    """Metrics, predictions, figures and metrics.json for one scored split."""
    out.mkdir(parents=True, exist_ok=True)
    y_true = np.asarray(split["label"])
    cols = split.column_names
    groups = split["group"] if "group" in cols else [None] * len(y_true)
    cells = split["cell_id"] if "cell_id" in cols else [None] * len(y_true)
    known = None if any(g is None for g in groups) else groups
    metrics = full_report(y_true, y_pred, probs, groups=known, n_boot=n_boot, seed=seed)
    write_predictions(out / "predictions.parquet", split["file"], groups, cells, y_true, y_pred, probs)
    confusion_png(confusion(y_true, y_pred), out / "confusion.png", f"{facts.get('model', '')} — {facts['split']}")
    per_class_png(metrics["per_class_accuracy"], out / "per_class.png", f"per-class accuracy — {facts['split']}")
    atomic_write_text(out / "metrics.json", json.dumps({"metrics": metrics, **facts}, indent=2, default=float) + "\n")
    return metrics


def evaluate(cfg: EvalConfig) -> dict:
    """Predict a split with a model and write the report; returns the metrics."""
    splits = load_splits(cfg.data, need=(cfg.split,))
    split = splits[cfg.split]
    if cfg.backend == "onnx":  # an exported file (chromosomenet export-onnx): onnxruntime, no torch model
        from ..pipeline.onnx import OnnxPredictor

        model, mcfg, predictor = None, {"input_size": (1, 300, 300)}, OnnxPredictor(cfg.model)
    elif cfg.backend == "torch":
        model, mcfg = load_classifier(cfg.model)
        predictor = Predictor(model, mcfg, precision=cfg.precision)
    else:
        raise BadInputError(cfg.backend, "unknown backend", "use torch or onnx")
    gpu = predictor.device.type == "cuda"
    batch_size = cfg.batch_size or (128 if gpu else 16)
    workers = cfg.workers if cfg.workers is not None else (min(8, os.cpu_count() or 1) if gpu else 0)
    scales = cell_scales(split) if cfg.cell_scale else None
    probs = predict(predictor, split, batch_size, workers, cfg.progress, scales, cfg.together)
    facts = {"model": cfg.model, "split": cfg.split, "data": describe(cfg.data, splits), "backend": cfg.backend,
             "device": torch.cuda.get_device_name() if predictor.device.type == "cuda" else "cpu",
             "torch_threads": torch.get_num_threads(), "input_size": list(mcfg["input_size"]),
             "precision": "bf16" if getattr(predictor, "bf16", False) else "fp32",
             "batchnorm_folded": getattr(predictor, "folded", None),
             "cell_scale": summary(scales) if scales is not None else None,
             # each cell's chromosomes as one batch by the cell's statistics (Predictor.cell; not in onnxruntime)
             "cells_read_together": scales is not None and cfg.together and hasattr(predictor, "cell")}
    if cfg.timing:
        if model is not None:
            params_m, gmacs = measure(model, img_size=mcfg["input_size"][1], in_chans=mcfg["input_size"][0])
            facts["complexity"] = {"params_m": params_m, "gmacs": gmacs}
        facts["inference_time"] = inference_time(predictor, split, cfg.timing_samples)
        facts["throughput"] = best_throughput(predictor, seconds=cfg.throughput_seconds)
    return report(Path(cfg.out), split, probs, probs.argmax(1), facts, cfg.n_boot, cfg.seed)


def read_external(path: str | Path, split) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted ids, probabilities or None) in the split's order from a CSV of ``id`` (the dataset's
    ``file``), ``predicted`` (class name 1…22, X, Y) and/or the 24 columns ``p_1`` … ``p_Y``."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "predictions file not found", "give a CSV with columns id, predicted")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    has_probs = all(c in header for c in PROB_COLUMNS)
    if "id" not in header or not ("predicted" in header or has_probs):
        raise BadInputError(path, f"has columns {header[:6]}", "give 'id' and 'predicted' (and optionally p_1 … p_Y)")
    order = {f: i for i, f in enumerate(split["file"])}
    seen: dict[str, int] = {}
    for n, r in enumerate(rows, start=2):
        if r["id"] in seen:
            raise BadInputError(path, f"id {r['id']!r} is repeated (lines {seen[r['id']]} and {n})",
                                "give one prediction per test image")
        if r["id"] not in order:
            raise BadInputError(path, f"id {r['id']!r} (line {n}) is not in the split",
                                "use the dataset's `file` values of that split as ids")
        seen[r["id"]] = n
    missing = [f for f in order if f not in seen]
    if missing:
        raise BadInputError(path, f"misses {len(missing)} of the split's {len(order)} ids (first: {missing[0]})",
                            "predict every image of the split")
    by_id = {r["id"]: r for r in rows}
    ordered = [by_id[f] for f in split["file"]]
    probs = None
    if has_probs:
        try:
            probs = np.array([[float(r[c]) for c in PROB_COLUMNS] for r in ordered])
        except ValueError as e:
            raise BadInputError(path, f"a probability is not a number ({e})", "write plain decimals") from None
    if "predicted" in header:
        try:
            pred = np.array([labels.id_of(r["predicted"]) for r in ordered])
        except KeyError as e:
            raise BadInputError(path, str(e.args[0]), "write class names 1…22, X, Y in 'predicted'") from None
    else:
        pred = probs.argmax(1)
    return pred, probs


def score(predictions: str | Path, data: str, split_name: str, out: Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """Score an external predictions file with exactly the metrics and report of ``evaluate``."""
    splits = load_splits(data, need=(split_name,))
    split = splits[split_name]
    pred, probs = read_external(predictions, split)
    facts = {"model": f"external:{Path(predictions).name}", "split": split_name, "data": describe(data, splits)}
    try:
        return report(Path(out), split, probs, pred, facts, n_boot, seed)
    except ValueError as e:  # e.g. probability rows that do not sum to 1
        raise BadInputError(predictions, str(e), "give probabilities that sum to 1 per row") from None
