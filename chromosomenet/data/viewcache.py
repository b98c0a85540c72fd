"""Canonical views of a whole split, decoded once into one uint8 tensor: no PNG decode per step.

The 93k views of the full import are ~0.5 GB at ×2 down (104×48 bytes each), so on a CPU the
training loop reads batches straight from memory; the DataLoader path (:class:`CanvasImages` +
:func:`chromosomenet.data.view.views_uint8` per batch on the device) stays for data that does not fit,
and gives the same batches. A built cache is kept under ``$CHROMOSOMENET_CACHE`` (default
``~/.cache/chromosomenet``), keyed by the dataset's identity, the split and the view settings.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import cellscale
from .transforms import CanvasImages, cell_scales
from .view import VIEW_VERSION, ViewSpec, canonical_view, quantize


class ViewCache(Dataset):
    """(uint8 1×h×w view, label, index) samples held in memory, like :class:`CanvasImages` yields canvases."""

    def __init__(self, views: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> None:
        self.views, self.labels, self.scale = views, labels, scale

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.views[i], int(self.labels[i]), i

    @property
    def n_fitted(self) -> int:
        """Instances longer or wider than the window, shrunk to fit."""
        return int((self.scale > 1).sum())


def compute(split, spec: ViewSpec, batch_size: int = 256, workers: int = 0, progress: bool = True,
            device: str | torch.device = "cpu", scales=None) -> ViewCache:
    """Decode every canvas of ``split`` once (read as ``scales`` says, per row, when given) and keep its view."""
    loader = DataLoader(CanvasImages(split, scales), batch_size=batch_size, num_workers=workers)
    views, labels, scales = [], [], []
    for x, y, _ in tqdm(loader, desc="views", disable=not progress, leave=False):
        view, info = canonical_view(x.to(device).float().div_(255.0), spec)
        views.append(quantize(view).cpu())
        labels.append(y)
        scales.append(info.scale.cpu())
    h, w = spec.size
    cat = lambda t, shape: torch.cat(t) if t else torch.zeros(shape)  # noqa: E731
    return ViewCache(cat(views, (0, 1, h, w)).to(torch.uint8), cat(labels, (0,)).long(), cat(scales, (0,)).float())


def _cache_root() -> Path:
    return Path(os.environ.get("CHROMOSOMENET_CACHE", Path.home() / ".cache" / "chromosomenet")) / "views"


def cached(split, split_name: str, data_id: str, spec: ViewSpec, *, workers: int = 0,
           progress: bool = True, cell_scale: bool = False) -> ViewCache:
    """:func:`compute`, reusing (and writing) a cache file for the same data, split, view and reading
    (``cell_scale``: each cell at the reference scale and greys, :func:`.transforms.cell_scales`)."""
    # the reading is a function of the data and cellscale's constants: a cache hit skips measuring the cells
    reading = cellscale.reading_key() if cell_scale else None
    key = hashlib.sha256(json.dumps([data_id, split_name, spec.to_dict(), len(split), VIEW_VERSION, reading]
                                    ).encode()).hexdigest()[:24]
    path = _cache_root() / f"{split_name}-{key}.safetensors"
    if path.exists():
        t = load_file(str(path))
        return ViewCache(t["views"], t["labels"], t["scale"])
    cache = compute(split, spec, workers=workers, progress=progress, scales=cell_scales(split) if cell_scale else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"views": cache.views.contiguous(), "labels": cache.labels, "scale": cache.scale}, str(tmp))
    os.replace(tmp, path)
    return cache


__all__ = ["ViewCache", "compute", "cached"]
