"""Batches for the models: decode on CPU workers, everything else on the device, in batch.

Images stay one 8-bit channel at canvas size through the loader (no 3x bytes, no per-sample PIL
resize: decoding is the only per-sample CPU work). On the device a batch is augmented (training
only), resized as a whole canvas to ``img_size`` (never cropped: size is a class cue), normalised,
and repeated to 3 channels when the model has an RGB stem.

Preprocessing matches what timm's data config describes for the exported model (``crop_pct``
1.0, bilinear, ImageNet mean/std per channel of the grey value repeated), so the standard tools
(timm transforms, ``transformers.pipeline``) see the same input as training did.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .cellscale import RowScales, row_scales
from .view import ViewSpec, views_uint8


def norm_stats(mean: tuple[float, ...], std: tuple[float, ...], in_chans: int
               ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The model's RGB statistics (its timm pretrained_cfg); one channel takes their average,
    matching timm's stem adaptation (a 1-channel stem sums the RGB filters of one grey value)."""
    if in_chans == 3:
        return tuple(mean), tuple(std)
    return (sum(mean) / len(mean),), (sum(std) / len(std),)


class CanvasImages(Dataset):
    """A `datasets` split as (uint8 1xHxW tensor, label, index) samples; decodes PNG bytes only.
    ``scales``: per row, how its cell is read (:mod:`..cellscale`: the row's cell brought to the reference
    scale and greys); None leaves every canvas as it is."""

    def __init__(self, split, scales: RowScales | None = None):
        from datasets import Image as ImageFeature

        self.ds = split.cast_column("image", ImageFeature(decode=False))
        self.scales = scales

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        row = self.ds[i]
        data = row["image"]["bytes"]
        with Image.open(io.BytesIO(data) if data is not None else row["image"]["path"]) as im:
            gray = np.asarray(im.convert("L"))
        if self.scales is not None:
            gray = self.scales.read(i, gray)
        return torch.from_numpy(gray.copy()).unsqueeze(0), row["label"], i


def cell_scales(split) -> RowScales | None:
    """Per row of a split, how its cell is read (None when the split has no ``cell_id``: rows keep their
    pixels). Training, evaluation and the cell-level paths all call this: measured the same way everywhere."""
    if "cell_id" not in split.column_names:
        return None
    images = CanvasImages(split)
    return row_scales((images[i][0][0].numpy() for i in range(len(images))), split["cell_id"])


@dataclass(frozen=True)
class Augment:
    """Light, label-preserving augmentation that keeps size as a cue.

    Rotation about the canvas centre (where the chromosome sits): metaphase chromosomes lie at any
    angle, so small rotations only add what the data already has. Flips: G-bands are transverse
    stripes, so mirroring across the long axis leaves the banding sequence unchanged; flipping the
    other way reverses p/q direction, which in metaphase spreads (unlike straightened karyogram
    cut-outs) is already arbitrary. Brightness/contrast: staining and exposure vary per slide.
    No cropping.

    Another microscope's looks (each 0 = off, and then no random number is drawn for it, so a recipe
    without them draws exactly as before): ``scale`` ±, log-uniform (what the cell-level normalisation
    leaves: one chromosome's length against its cell's median); ``width`` ±, across the chromosome only
    (thinner or fatter chromosomes at the same length); ``gamma`` ±, log-uniform exponent on the grey
    level (another camera's response; white stays white); ``blur`` the share of images blurred by a
    Gaussian of σ ∈ [0.3, 1] view px (focus, finer or coarser bands); ``noise`` the largest σ of
    Gaussian pixel noise; ``jpeg`` the share of images saved as JPEG at quality 30–90 and read back (another
    lab's export: 8×8 blocks, the finest bands lost).
    """

    rotate_deg: float = 15.0
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.1
    scale: float = 0.0
    width: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: float = 0.0


def prepare(batch: torch.Tensor, img_size: int | tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...],
            augment: Augment | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, 1, H, W) canvases (or canonical views) on any device → normalised float (B, C, h, w),
    channels_last, with C = len(mean) (as given by :func:`norm_stats`) and (h, w) = ``img_size``."""
    x = batch.float().div_(255.0)
    if augment is not None:
        x = _augment(x, augment, generator)
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.expand(-1, len(mean), -1, -1)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def _augment(x: torch.Tensor, a: Augment, g: torch.Generator | None) -> torch.Tensor:
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:  # drawn on CPU: same numbers on any device
        return (torch.rand(b, generator=g) * (hi - lo) + lo).to(x.device)

    theta = uniform(-a.rotate_deg, a.rotate_deg) * (math.pi / 180)
    sx = torch.ones(b, device=x.device)
    sy = torch.ones(b, device=x.device)
    if a.flip:
        sx = torch.where(uniform(0, 1) < 0.5, -sx, sx)
        sy = torch.where(uniform(0, 1) < 0.5, -sy, sy)
    if a.scale:  # the grid maps output to input: dividing by s shows the chromosome s times larger
        s = torch.exp(uniform(-math.log1p(a.scale), math.log1p(a.scale)))
        sx, sy = sx / s, sy / s
    if a.width:  # x is across the chromosome in the canonical view (its long axis is vertical)
        sx = sx / torch.exp(uniform(-math.log1p(a.width), math.log1p(a.width)))
    cos, sin = torch.cos(theta), torch.sin(theta)
    affine = torch.stack([torch.stack([cos * sx, -sin * sy, torch.zeros_like(cos)], 1),
                          torch.stack([sin * sx, cos * sy, torch.zeros_like(cos)], 1)], 1)
    grid = F.affine_grid(affine, list(x.shape), align_corners=False)
    # sample the inverted image so the zeros padded in at the corners are white background
    x = 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = uniform(1 - a.contrast, 1 + a.contrast).view(b, 1, 1, 1)
    brightness = uniform(-a.brightness, a.brightness).view(b, 1, 1, 1)
    # contrast about white keeps the background white; brightness shifts only the chromosome
    ink = (1 - x) * contrast
    x = (1 - ink * (1 + brightness)).clamp_(0, 1)
    return _looks(x, a, uniform, g)


def _looks(x: torch.Tensor, a: Augment, uniform, g: torch.Generator | None) -> torch.Tensor:
    """Another camera, focus and export: gamma, blur, noise, JPEG (each only when its lever is on)."""
    b = x.shape[0]
    if a.gamma:
        x = x.clamp(1e-4, 1).pow(torch.exp(uniform(-math.log1p(a.gamma), math.log1p(a.gamma))).view(b, 1, 1, 1))
    if a.blur:
        sigma = uniform(0.3, 1.0)
        on = uniform(0, 1) < a.blur
        t = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
        k = torch.exp(-t.view(1, -1) ** 2 / (2 * sigma.view(-1, 1) ** 2))
        k = k / k.sum(1, keepdim=True)  # (B, 5): one separable kernel per image
        y = F.pad(x, (2, 2, 2, 2), mode="replicate").transpose(0, 1)  # (1, B, H+4, W+4): one group per image
        y = F.conv2d(y, k.view(b, 1, 1, 5), groups=b)
        y = F.conv2d(y, k.view(b, 1, 5, 1), groups=b).transpose(0, 1)
        x = torch.where(on.view(b, 1, 1, 1), y, x)
    if a.noise:
        sigma = uniform(0, a.noise).view(b, 1, 1, 1)
        x = (x + sigma * torch.randn(x.shape, generator=g).to(x.device)).clamp_(0, 1)
    if a.jpeg:
        on, quality = uniform(0, 1) < a.jpeg, uniform(30, 90)
        x = torch.stack([_jpeg(x[i], int(quality[i])) if on[i] else x[i] for i in range(b)])
    return x


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """One (1, H, W) image in [0, 1] through a JPEG file at ``quality`` (Pillow, on the CPU)."""
    buf = io.BytesIO()
    Image.fromarray(image[0].mul(255).round().to(torch.uint8).cpu().numpy()).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return torch.from_numpy(np.array(im)).to(image.device, image.dtype).div(255).unsqueeze(0)


@dataclass(frozen=True)
class Feed:
    """How one model is fed: uint8 batches → :func:`prepare` at ``size`` with its statistics.

    ``view`` set (a :class:`chromosomenet.data.view.ViewSpec`): the batches are canvases from the
    DataLoader path and are turned into canonical views first (the cache path yields views already).
    """

    size: int | tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    view: ViewSpec | None = None

    def __call__(self, batch: torch.Tensor, augment: Augment | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if self.view is not None:
            batch = views_uint8(batch, self.view)
        return prepare(batch, self.size, self.mean, self.std, augment, generator)
