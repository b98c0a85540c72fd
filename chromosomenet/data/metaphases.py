"""Whole metaphases with their chromosome boxes, for training and scoring detectors.

    splits = release_metaphases(SRC, split_cases="models/…/split_cases.csv", exclude_cells=sample stems)
    images = load_grays(splits["train"])                  # decoded once, 8-bit grey, native size
    x, boxes = training_crop(images[i], splits["train"][i].boxes, DetectAugment(), gen)

Cases go to splits by a ``group,split`` CSV (the one shipped beside a classifier: the detector then
holds out exactly the cases the classifier held out, so the bare-image pipeline is scored on cases
that neither model saw); a case the file does not list goes to train; the cases of
``exclude_cells`` (the embedded sample) go nowhere.

A training sample is a square crop of a metaphase at a random scale around the detector's working
scale, turned by one of the 8 symmetries of the square, with the looks of other microscopes: ink
contrast and gamma, blur, noise, JPEG. Every draw comes from the caller's generator (exact resume).
"""
from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ..errors import BadInputError
from . import voc
from .images import decode_gray
from .release import case_id_of, release_cells

SPLITS = ("train", "validation", "test")
MIN_VISIBLE = 0.5  # a box cut by the crop stays a target if at least this share of it is inside


@dataclass(frozen=True)
class Metaphase:
    stem: str
    case: str
    split: str
    image: Path
    boxes: np.ndarray        # (N, 4) float32 xmin, ymin, xmax, ymax, half-open, image px
    karyotype_type: str      # normal / numerical / structural / unknown (the release's CSVs)


def read_split_cases(path: str | Path) -> dict[str, str]:
    """case → split from a ``group,split`` CSV."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "split cases file not found", "give the split_cases.csv shipped beside a model")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"group", "split"} <= set(rows[0]):
        raise BadInputError(path, "is not a group,split CSV", "give the split_cases.csv shipped beside a model")
    bad = next((r for r in rows if r["split"] not in SPLITS), None)
    if bad:
        raise BadInputError(path, f"case {bad['group']} has split {bad['split']!r}", f"use one of {', '.join(SPLITS)}")
    return {r["group"]: r["split"] for r in rows}


def release_metaphases(src: str | Path, split_cases: str | Path | None = None,
                       exclude_cells: tuple[str, ...] = ()) -> dict[str, list[Metaphase]]:
    """The release's metaphases with their boxes, by split (see the module doc)."""
    cells, problems = release_cells(Path(src))
    if problems:
        raise BadInputError(*problems[0])
    by_case = read_split_cases(split_cases) if split_cases else {}
    excluded = {case_id_of(s) for s in exclude_cells}
    out: dict[str, list[Metaphase]] = {s: [] for s in SPLITS}
    for c in cells:
        case = case_id_of(c.stem)
        if case in excluded:
            continue
        try:
            root = ET.parse(c.xml).getroot()
        except ET.ParseError as e:
            raise BadInputError(c.xml, f"unparseable XML ({e})", "re-export or remove the annotation") from None
        w, h = int(root.findtext("size/width") or 0), int(root.findtext("size/height") or 0)
        boxes = [voc.clip(b, w, h) if w and h else b for _, _, b in voc.objects(root) if b is not None]
        split = by_case.get(case, "train")
        out[split].append(Metaphase(c.stem, case, split, c.jpg,
                                    np.asarray([b for b in boxes if b], dtype=np.float32).reshape(-1, 4),
                                    c.karyotype[2]))
    return out


def load_grays(metaphases: list[Metaphase], workers: int = 2) -> list[np.ndarray]:
    """Each image decoded once (8-bit grey, native size), in order."""
    def one(m: Metaphase) -> np.ndarray:
        return decode_gray(m.image.read_bytes(), str(m.image))

    with ThreadPoolExecutor(max(1, workers)) as pool:  # Pillow's decoder releases the GIL
        return list(pool.map(one, metaphases))


def describe(splits: dict[str, list[Metaphase]]) -> dict:
    """Counts per split: metaphases, cases, boxes (for cards and reports)."""
    return {s: {"metaphases": len(ms), "cases": len({m.case for m in ms}), "boxes": int(sum(len(m.boxes) for m in ms)),
                "types": dict(Counter(m.karyotype_type for m in ms))} for s, ms in splits.items()}


@dataclass(frozen=True)
class DetectAugment:
    scale_range: float = 1.6      # crop scale = working scale × e^U(−ln r, ln r): 0.375–0.96 px/px at 0.6
    symmetries: bool = True       # flips and 90° turns: a slide has no up
    ink: tuple[float, float] = (0.6, 1.3)   # darkness of the ink against the white background
    gamma: tuple[float, float] = (0.6, 1.6)
    blur: float = 0.3             # probability of a Gaussian blur, sigma 0.3–1.5 px
    noise: float = 0.3            # probability of Gaussian noise, sigma up to 0.04
    jpeg: float = 0.3             # probability of JPEG at quality 30–90


def _u(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def training_crop(gray: np.ndarray, boxes: np.ndarray, crop: int, scale: float, aug: DetectAugment,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One (1, crop, crop) float image in [0, 1] (white background) and its (M, 4) boxes in crop px."""
    h, w = gray.shape
    s = scale * math.exp(_u(gen, -math.log(aug.scale_range), math.log(aug.scale_range)))
    side = crop / s  # the window, in image px; it may be larger than the image (then white around it)
    x0 = _u(gen, min(0.0, w - side), max(0.0, w - side))
    y0 = _u(gen, min(0.0, h - side), max(0.0, h - side))
    ix0, iy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    ix1, iy1 = min(w, math.ceil(x0 + side)), min(h, math.ceil(y0 + side))
    part = torch.tensor(gray[iy0:iy1, ix0:ix1], dtype=torch.float32).div_(255.0)[None, None]
    ph, pw = max(1, round((iy1 - iy0) * s)), max(1, round((ix1 - ix0) * s))
    part = F.interpolate(part, size=(ph, pw), mode="bilinear", antialias=s < 1, align_corners=False)[0]
    out = torch.ones(1, crop, crop)
    oy, ox = max(0, round((iy0 - y0) * s)), max(0, round((ix0 - x0) * s))
    out[:, oy:oy + ph, ox:ox + pw] = part[:, :crop - oy, :crop - ox]
    # boxes follow the pixels as resampled and pasted (not the ideal window: rounding moves them)
    fx, fy = pw / (ix1 - ix0), ph / (iy1 - iy0)
    b = ((torch.from_numpy(boxes).float() - torch.tensor([ix0, iy0, ix0, iy0]))
         * torch.tensor([fx, fy, fx, fy]) + torch.tensor([ox, oy, ox, oy]))
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = b.clamp(0, crop)
    inside = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = b[(inside >= MIN_VISIBLE * area) & (b[:, 2] - b[:, 0] >= 2) & (b[:, 3] - b[:, 1] >= 2)]
    if aug.symmetries:
        k = int(torch.randint(8, (), generator=gen))
        if k & 4:  # transpose
            out, b = out.transpose(1, 2), b[:, [1, 0, 3, 2]]
        if k & 1:  # left-right
            out, b = out.flip(2), torch.stack([crop - b[:, 2], b[:, 1], crop - b[:, 0], b[:, 3]], 1)
        if k & 2:  # up-down
            out, b = out.flip(1), torch.stack([b[:, 0], crop - b[:, 3], b[:, 2], crop - b[:, 1]], 1)
    return _looks(out.contiguous(), aug, gen), b.reshape(-1, 4)


def _looks(x: torch.Tensor, aug: DetectAugment, gen: torch.Generator) -> torch.Tensor:
    """Another microscope's rendering of the same slide: ink darkness, gamma, blur, noise, JPEG."""
    ink = 1.0 - (1.0 - x) * _u(gen, *aug.ink)
    x = ink.clamp(0, 1).pow(_u(gen, *aug.gamma))
    if _u(gen, 0, 1) < aug.blur:
        x = TF.gaussian_blur(x, kernel_size=[5, 5], sigma=[_u(gen, 0.3, 1.5)] * 2)
    if _u(gen, 0, 1) < aug.noise:
        x = x + torch.randn(x.shape, generator=gen) * _u(gen, 0.0, 0.04)
    if _u(gen, 0, 1) < aug.jpeg:
        x = _jpeg(x, round(_u(gen, 30, 90)))
    return x.clamp(0, 1)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """The image through Pillow's JPEG encoder and decoder at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(x[0].clamp(0, 1).mul(255).round().to(torch.uint8).numpy(), "L").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return torch.from_numpy(np.asarray(Image.open(buf), dtype=np.float32) / 255.0)[None]
