"""Karyogram picture of one called cell (Pillow): standard layout, true relative scale, flags boxed.

Rows as in a clinical karyogram: 1–5 / 6–12, X / 13–18 / 19–22, Y. Each chromosome is drawn from
its canonical view (:mod:`chromosomenet.data.view`, the view the classifier sees, at native scale in a
window large enough never to shrink it): upright along its principal axis, longer arm down, cut to
its non-white bounding box; then the whole cell is scaled by one common factor, so a 21 stays a
quarter of a 1 as on the slide. Homologues stand side by side above their class name; a class with no
chromosome keeps its empty place, so a loss is visible. The title is the ISCN count string.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..data.view import ViewSpec, views_uint8
from ..errors import ChromosomeNetError
from ..fsutil import atomic_write_bytes
from ..labels import NAMES
from .assign import CellCall

LAYOUT: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4),
    (5, 6, 7, 8, 9, 10, 11, 22),
    (12, 13, 14, 15, 16, 17),
    (18, 19, 20, 21, 23),
)
INK = 235  # darker than this is chromosome; the canvases' background is 255 with JPEG haze to ~240
TALLEST_PX = 220  # the longest chromosome of the cell is drawn this tall ...
MAX_UPSCALE = 3.0  # ... unless that would blow tiny crops up into blur
MARGIN, HOMOLOGUE_GAP, GROUP_GAP, ROW_GAP, LABEL_H, MIN_GROUP_W = 36, 10, 40, 34, 30, 56
FLAG_RGB, LINE_RGB, TEXT_RGB = (220, 30, 30), (60, 60, 60), (20, 20, 20)


class KaryogramError(ChromosomeNetError, ValueError):
    """Images that do not match the call they should picture."""


def _gray(img: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("L")
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[..., :3].mean(-1) if a.shape[-1] >= 3 else a[..., 0]
    if a.ndim != 2:
        raise KaryogramError(f"a chromosome image has shape {np.asarray(img).shape}; pass 2-D grayscale or "
                             "H×W×3 RGB canvases")
    if a.dtype != np.uint8:
        a = np.clip(a * 255 if a.max(initial=0) <= 1 else a, 0, 255).astype(np.uint8)  # float in [0,1] or [0,255]
    return Image.fromarray(a, mode="L")


def _crop(img: Image.Image) -> Image.Image | None:
    """The non-white bounding box, or None for an empty canvas."""
    box = Image.eval(img, lambda v: 255 if v < INK else 0).getbbox()
    return img.crop(box) if box else None


def _upright(images: list[Image.Image]) -> list[Image.Image]:
    """Each grey image turned upright by the canonical view (a rigid motion at native scale)."""
    if not images:
        return []
    size = max(max(im.size) for im in images)
    side = 2 * size  # any chromosome of the canvas fits along the window's height
    batch = np.full((len(images), 1, size, size), 255, np.uint8)
    for i, im in enumerate(images):
        batch[i, 0, :im.height, :im.width] = np.asarray(im)
    views = views_uint8(torch.from_numpy(batch), ViewSpec(height=side, width=side, downsample=1))
    return [Image.fromarray(v[0].numpy(), mode="L") for v in views]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _pieces(images: Sequence[np.ndarray | Image.Image], call: CellCall) -> dict[int, list[tuple[Image.Image, bool]]]:
    """Class id → [(upright crop at the common scale, flagged)], in input order within a class."""
    if len(images) != len(call.labels):
        raise KaryogramError(f"got {len(images)} images for a call of {len(call.labels)} chromosomes; pass the "
                             "canvases in the order of the probability rows")
    flags = call.flags or (False,) * len(call.labels)
    crops = [_crop(v) for v in _upright([_gray(im) for im in images])]
    tallest = max((c.height for c in crops if c is not None), default=1)
    scale = min(TALLEST_PX / tallest, MAX_UPSCALE)  # one factor for the whole cell: sizes stay comparable
    out: dict[int, list[tuple[Image.Image, bool]]] = {c: [] for c in range(len(NAMES))}
    for crop, label, flagged in zip(crops, call.labels, flags):
        if crop is None:
            continue
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        out[label].append((crop.resize(size, Image.Resampling.LANCZOS), bool(flagged)))
    return out


def _span(group: list[tuple[Image.Image, bool]]) -> int:
    """Width of homologues standing side by side."""
    return sum(p.width for p, _ in group) + HOMOLOGUE_GAP * max(len(group) - 1, 0)


def _wrap(text: str, font, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` px in ``font`` (words kept whole where they fit)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def render_karyogram(images: Sequence[np.ndarray | Image.Image], call: CellCall, path: str | Path,
                     title: str | None = None) -> Path:
    """Write the karyogram PNG of ``call`` (images in the order of its labels) atomically; return the path."""
    pieces = _pieces(images, call)
    group_w = {c: max(MIN_GROUP_W, _span(ps)) for c, ps in pieces.items()}
    # Each row splits the width into equal cells, one per class; the widest row sets the width.
    width = 2 * MARGIN + max(len(row) * (max(group_w[c] for c in row) + GROUP_GAP) for row in LAYOUT)
    row_h = [max([p.height for c in row for p, _ in pieces[c]], default=0) + LABEL_H for row in LAYOUT]
    f_title, f_sub, f_label = _font(34), _font(17), _font(20)
    subtitle = _wrap(" · ".join(s for s in (title, call.message) if s), f_sub, width - 2 * MARGIN)
    head = MARGIN + 44 + 22 * len(subtitle) + (4 if subtitle else 0)
    n_flag = sum(bool(f) for f in call.flags)
    height = head + sum(row_h) + ROW_GAP * len(LAYOUT) + (30 if n_flag else 0) + MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((width / 2, MARGIN), call.iscn or "no karyotype called", fill=TEXT_RGB, font=f_title, anchor="mt")
    for k, line in enumerate(subtitle):  # a long cell name or message wraps, never runs off the picture
        draw.text((width / 2, MARGIN + 44 + 22 * k), line, fill=LINE_RGB, font=f_sub, anchor="mt")
    y = head + ROW_GAP
    for row, h in zip(LAYOUT, row_h):
        base = y + h - LABEL_H  # chromosomes stand on this line; the class name sits under it
        row_cell = (width - 2 * MARGIN) / len(row)  # short rows spread out, as on a printed karyogram
        for j, c in enumerate(row):
            centre = MARGIN + (j + 0.5) * row_cell
            x = round(centre - _span(pieces[c]) / 2)
            for img, flagged in pieces[c]:
                canvas.paste(img, (x, base - img.height))
                if flagged:
                    draw.rectangle((x - 4, base - img.height - 4, x + img.width + 3, base + 2), outline=FLAG_RGB,
                                   width=3)
                x += img.width + HOMOLOGUE_GAP
            half = group_w[c] / 2
            draw.line((centre - half, base + 5, centre + half, base + 5), fill=LINE_RGB, width=2)
            draw.text((centre, base + 9), NAMES[c], fill=TEXT_RGB, font=f_label, anchor="mt")
        y += h + ROW_GAP
    if n_flag:
        draw.text((width - MARGIN, height - MARGIN), f"red box: flagged for review ({n_flag} of {len(call.labels)})",
                  fill=FLAG_RGB, font=f_sub, anchor="rs")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)  # several times faster than level 6, a few % larger
    atomic_write_bytes(path, buf.getvalue())
    return path
