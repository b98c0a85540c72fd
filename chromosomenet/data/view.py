"""The canonical chromosome view: a 300×300 canvas → an upright, fixed-scale window on the chromosome.

A chromosome fills a few percent of its canvas, so resizing the whole canvas spends most pixels on
white and shrinks a chromosome 21 to a few pixels. The view instead rotates the chromosome about its
ink-weighted centroid so that its major axis (the principal axis of the dark pixels, weighted by
darkness) is vertical, and cuts a ``height``×``width`` window around the centroid **at a fixed
scale** (native canvas pixels, then averaged ``downsample``×``downsample``): size stays a class cue.
Everything is batched torch (moments → affine grid → ``grid_sample``) and runs on the device.
The moments and the extent are measured on 2×2 blocks of the canvas, which on the CPU made the
view ~1.8× faster than on every pixel; against scikit-image's moments of every pixel the centroid
is within 0.1 px and the axis within 1° (``tests/test_view.py``), and the extent of a chromosome
that may not fit is measured again on its pixels, so the scale is exact.

Ambiguities, and how they are handled:

* **Sign of the axis** (p-arm up or down). The principal axis has no direction. We point it so that
  the third moment of the ink along it is non-negative, i.e. the longer tail (usually the q-arm)
  points down, as a karyogram is read. That is reliable for acrocentric and submetacentric
  chromosomes and arbitrary for metacentric ones (1, 3, 16, 19, 20), so training also flips views
  vertically and horizontally (`data.transforms.Augment`): the classifier never relies on it.
* **Bent chromosomes.** The principal axis of a bent chromosome is roughly its chord; the window is
  wide enough (p99 width at native scale ≈ 116 px over both axes of a bent one) that the bend stays
  inside, and small random rotations in training cover the spread of chords.
* **A chromosome longer (or wider) than the window** is scaled down, about its centroid, just
  enough to fit (``scale`` > 1 is returned per sample, so callers can record it): never cut.
* **A canvas without ink** (nothing darker than ``ink_floor``) gives the blank (white) view, angle 0,
  and ``blank`` True: no NaN.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import reduce

import torch
import torch.nn.functional as F

MEASURE_BLOCK = 2  # moments and extent on 2×2 blocks of the canvas (when its sides are even)
# Bumped whenever the view's pixels change, so that caches of an older view are not reused
# (3: the axis by half-angle formulas, no arctangent, for the ONNX export: 7 pixels of the 1,014 sample
# views move one grey level; 2: moments and extent on 2×2 blocks; 1: on every pixel, float64).
VIEW_VERSION = 3


@dataclass(frozen=True)
class ViewSpec:
    """The window, in native canvas pixels, and the factor it is averaged down by."""

    height: int = 208            # along the major axis; p99 length of every class ≤ 200 px
    width: int = 96              # across it
    downsample: int = 2          # 2: a 104×48 view (the CPU default); 1: native scale
    ink_floor: float = 0.04      # grey values within this of white are background (JPEG/scan noise)
    extent_ink: float = 0.15     # pixels at least this dark delimit the chromosome's extent
    margin: float = 2.0          # native pixels kept free at each end of the window

    def __post_init__(self) -> None:
        if self.height % self.downsample or self.width % self.downsample:
            raise ValueError(f"window {self.height}×{self.width} is not divisible by downsample {self.downsample}")

    @property
    def size(self) -> tuple[int, int]:
        """(rows, columns) of the view tensor."""
        return self.height // self.downsample, self.width // self.downsample

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ViewInfo:
    """Per-sample facts of one batch of views (tensors of length B)."""

    angle: torch.Tensor          # radians; rotation that made the major axis vertical
    scale: torch.Tensor          # native pixels per window pixel; > 1 where the chromosome was shrunk to fit
    centre: torch.Tensor         # (B, 2) ink centroid (x, y) in canvas pixels
    blank: torch.Tensor          # bool: no ink on the canvas


@torch.autocast("cpu", enabled=False)
@torch.autocast("cuda", enabled=False)
def canonical_view(canvas: torch.Tensor, spec: ViewSpec = ViewSpec()) -> tuple[torch.Tensor, ViewInfo]:
    """(B, 1, H, W) grey canvases in [0, 1] (1 = white) → (B, 1, *spec.size) views in [0, 1] and their facts.

    Computed in float32 (moments in float64) whatever the autocast context.
    """
    if canvas.ndim != 4 or canvas.shape[1] != 1:
        raise ValueError(f"canonical_view expects (B, 1, H, W) grey canvases, got {tuple(canvas.shape)}")
    inv = 1 - canvas.float()                                                 # ink side up: 0 = white
    b, _, h, w = inv.shape
    # The moments and the extent are measured on f×f blocks (a quarter of the pixels at f = 2: on
    # the CPU they cost more than the sampling otherwise). Block sums keep the mass and the
    # centroid exact; the axis loses only the spread inside blocks, the same in every direction.
    f = MEASURE_BLOCK if h % MEASURE_BLOCK == 0 and w % MEASURE_BLOCK == 0 else 1
    ink = (inv - spec.ink_floor).clamp_(min=0)
    blocks = _block_mean(ink, f)[:, 0].double()                               # (B, H/f, W/f)
    dark = _block_reduce(ink, f, torch.maximum)[:, 0] > spec.extent_ink      # any dark pixel in the block
    hb, wb = blocks.shape[1:]
    # every raw moment up to order 3 in one batched product: sum ink · y^i · x^j = (Y^T · ink · X)[i, j],
    # in block-centre coordinates (native pixels) about the canvas centre; float64, because in
    # float32 an input one ulp off (a grey canvas given as RGB) could move the view by a level
    powers = torch.arange(4, device=inv.device, dtype=torch.float64)
    ox, oy = (w - 1) / 2, (h - 1) / 2
    xs = torch.arange(wb, device=inv.device, dtype=torch.float64) * f + (f - 1) / 2 - ox
    ys = torch.arange(hb, device=inv.device, dtype=torch.float64) * f + (f - 1) / 2 - oy
    m = (ys.view(-1, 1) ** powers).T @ (blocks @ (xs.view(-1, 1) ** powers))  # (B, 4, 4)
    mass = m[:, 0, 0] * f * f
    blank = mass < 1e-3
    safe = torch.where(blank, torch.ones_like(mass), m[:, 0, 0])
    e = m / safe.view(b, 1, 1)                                               # E[y^i x^j], centred coordinates
    cx = torch.where(blank, torch.zeros_like(mass), e[:, 0, 1])
    cy = torch.where(blank, torch.zeros_like(mass), e[:, 1, 0])
    cxx = e[:, 0, 2] - cx * cx
    cyy = e[:, 2, 0] - cy * cy
    cxy = e[:, 1, 1] - cx * cy
    # the major axis at angle θ = atan2(2 cxy, cxx − cyy) / 2 from the x axis, as its cosine and sine by the
    # half-angle formulas (no arctangent: onnxruntime has none in float64, and the ONNX export must agree)
    dx, dy = cxx - cyy, 2 * cxy
    r = torch.sqrt(dx * dx + dy * dy)
    c2 = torch.where(r > 0, dx / torch.where(r > 0, r, torch.ones_like(r)), torch.ones_like(r))
    cos = torch.sqrt(((1 + c2) / 2).clamp(min=0))
    sin = torch.sqrt(((1 - c2) / 2).clamp(min=0)) * torch.where(dy < 0, -1.0, 1.0).to(r.dtype)
    traced = _traced()
    # third central moment along the axis (a·dx + b·dy)^3, expanded into central moments mu_ij
    mu30 = e[:, 0, 3] - 3 * cx * e[:, 0, 2] + 2 * cx ** 3
    mu03 = e[:, 3, 0] - 3 * cy * e[:, 2, 0] + 2 * cy ** 3
    mu21 = e[:, 1, 2] - 2 * cx * e[:, 1, 1] - cy * e[:, 0, 2] + 2 * cx * cx * cy       # E[dx² dy]
    mu12 = e[:, 2, 1] - 2 * cy * e[:, 1, 1] - cx * e[:, 2, 0] + 2 * cy * cy * cx       # E[dx dy²]
    skew = cos ** 3 * mu30 + 3 * cos ** 2 * sin * mu21 + 3 * cos * sin ** 2 * mu12 + sin ** 3 * mu03
    # point the axis along the longer tail (third moment ≥ 0): that end goes to the bottom
    sign = torch.where(skew < 0, -1.0, 1.0).to(cos.dtype)
    cos, sin = cos * sign, sin * sign
    # the chromosome's extent along and across the axis, measured on the blocks (a pixel lies
    # within half a block diagonal of its block's centre); where that says it may not fit, on the
    # pixels themselves, so that a long chromosome is shrunk by exactly what it needs
    limits = torch.tensor([spec.height / 2 - spec.margin, spec.width / 2 - spec.margin], dtype=torch.float64,
                          device=inv.device)
    half = _half_extent(dark, xs, ys, cx, cy, cos, sin) + 0.5 + (f - 1) / 2 * 2 ** 0.5   # (B, 2)
    fit = half / limits
    near = (fit > 1).any(1) & ~blank
    # A traced graph (ONNX export) cannot branch on data or write through a mask: there the extent on
    # the pixels is measured for every canvas and chosen where needed (the same numbers, more work).
    native = torch.arange(max(h, w), device=inv.device, dtype=torch.float64)
    if f > 1 and traced:
        exact = (_half_extent(ink[:, 0] > spec.extent_ink, native[:w] - ox, native[:h] - oy, cx, cy, cos, sin)
                 + 0.5) / limits
        fit = torch.where(near.unsqueeze(1), exact, fit)
    elif f > 1 and near.any():
        fit[near] = (_half_extent(ink[near, 0] > spec.extent_ink, native[:w] - ox, native[:h] - oy, cx[near], cy[near],
                                  cos[near], sin[near]) + 0.5) / limits
    scale = fit.amax(1).clamp_(min=1).float()                               # blank: nothing dark, 1
    cos, sin = torch.where(blank, 1.0, cos).float(), torch.where(blank, 0.0, sin).float()
    theta = torch.atan2(sin, cos)
    cx, cy = (cx + ox).float(), (cy + oy).float()                            # back to canvas pixels

    # window pixel centres (u across, v along) in native pixels about the centroid
    u = (torch.arange(spec.width, device=inv.device, dtype=torch.float32) + 0.5 - spec.width / 2).view(1, 1, -1)
    v = (torch.arange(spec.height, device=inv.device, dtype=torch.float32) + 0.5 - spec.height / 2).view(1, -1, 1)
    s = scale.view(b, 1, 1)
    cos, sin = cos.view(b, 1, 1), sin.view(b, 1, 1)
    # v runs along the axis (cos, sin); u across it (-sin, cos): window down = axis direction. Each
    # coordinate is computed in place and written into its slot of the grid (align_corners=False):
    # the same float32 operations as out-of-place, without the (B, h, w) temporaries and the stack,
    # which cost a fifth of the view on the CPU
    coords = ((v * cos - u * sin, cx, w), (v * sin + u * cos, cy, h))
    if traced:  # out-of-place: the same float32 operations in the same order
        grid = torch.stack([((p * s + c.view(b, 1, 1)) * 2 + 1) / size - 1 for p, c, size in coords], -1)
    else:
        grid = torch.empty(b, spec.height, spec.width, 2, device=inv.device)
        for i, (p, c, size) in enumerate(coords):
            torch.sub(p.mul_(s).add_(c.view(b, 1, 1)).mul_(2).add_(1).div_(size), 1, out=grid[..., i])
    # sample the ink (1 - grey) so that everything outside the canvas is white
    out = 1 - F.grid_sample(inv, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = _block_mean(out, spec.downsample)
    return out.clamp_(0, 1), ViewInfo(angle=theta, scale=scale, centre=torch.stack([cx, cy], 1), blank=blank)


def _traced() -> bool:
    """Inside an ONNX export (TorchScript tracing or torch.export): no data-dependent branches there."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def _half_extent(dark: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor,
                 cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(B, 2) largest distance of a dark cell's centre from (cx, cy) along and across the axis
    (cos, sin); ``dark`` (B, R, C) with cell centres ``xs`` (C,) and ``ys`` (R,). A linear
    function's maximum over a row's cells lies at its first or last dark cell, so two per row do."""
    b, r, c = dark.shape
    # small integers are fastest in torch; onnxruntime's ArgMax takes floats only (the same first index)
    dtypes = (torch.float32, torch.float32) if _traced() else (torch.uint8, torch.int16)
    dark = dark.to(dtypes[0])
    first = torch.argmax(dark, 2)
    last = torch.argmax(dark * torch.arange(c, device=dark.device, dtype=dtypes[1]), 2)
    rx = xs[torch.stack([first, last], -1)] - cx.view(b, 1, 1)              # (B, R, 2)
    ry = (ys.view(1, r) - cy.view(b, 1)).view(b, r, 1)
    cos, sin = cos.view(b, 1, 1), sin.view(b, 1, 1)
    keep = (dark.amax(2) > 0).unsqueeze(-1)                                  # rows with ink
    along = torch.where(keep, (rx * cos + ry * sin).abs(), 0.0).amax((1, 2))
    across = torch.where(keep, (-rx * sin + ry * cos).abs(), 0.0).amax((1, 2))
    return torch.stack([along, across], 1)


def _block_mean(x: torch.Tensor, f: int) -> torch.Tensor:
    """Means of f×f blocks of (…, H, W), H and W divisible by f: ``avg_pool2d``'s result from
    strided sums, about 3× faster on the CPU."""
    return x if f == 1 else _block_reduce(x, f, torch.add).mul_(1.0 / (f * f))


def _block_reduce(x: torch.Tensor, f: int, op) -> torch.Tensor:
    if f == 1:
        return x
    rows = reduce(op, (x[..., i::f, :] for i in range(f)))
    return reduce(op, (rows[..., j::f] for j in range(f)))


def views_uint8(canvases: torch.Tensor, spec: ViewSpec = ViewSpec()) -> torch.Tensor:
    """uint8 (B, 1, H, W) canvases → uint8 views: what the cache stores and the loader path yields."""
    view, _ = canonical_view(canvases.float().div_(255.0), spec)
    return quantize(view)


def quantize(view: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → uint8, rounded: the exported model rounds the same way, so it sees what training saw."""
    return view.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
