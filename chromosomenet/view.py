"""The canonical chromosome view: a 300×300 canvas → an upright, fixed-scale window on the chromosome.

A chromosome fills a few percent of its canvas, so resizing the whole canvas spends most pixels on
white and shrinks a chromosome 21 to a few pixels. The view instead rotates the chromosome about its
ink-weighted centroid so that its major axis (the principal axis of the dark pixels, weighted by
darkness) is vertical, and cuts a ``height``×``width`` window around the centroid **at a fixed
scale** (native canvas pixels, then averaged ``downsample``×``downsample``): size stays a class cue.
Everything is batched torch (moments → affine grid → ``grid_sample``) and runs on the device.

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

import torch
import torch.nn.functional as F


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

    Computed in float32 whatever the autocast context: moments of 300-pixel coordinates need it.
    """
    if canvas.ndim != 4 or canvas.shape[1] != 1:
        raise ValueError(f"canonical_view expects (B, 1, H, W) grey canvases, got {tuple(canvas.shape)}")
    inv = 1 - canvas.float()                                                 # ink side up: 0 = white
    b, _, h, w = inv.shape
    ink = (inv[:, 0] - spec.ink_floor).clamp_(min=0)                         # (B, H, W)
    # every raw moment up to order 3 in one batched product: sum ink · y^i · x^j = (Y^T · ink · X)[i, j]
    # (float64: third moments of 300-pixel coordinates lose too much in float32)
    powers = torch.arange(4, device=inv.device, dtype=torch.float64)
    px_ = torch.arange(w, device=inv.device, dtype=torch.float64).view(-1, 1) ** powers   # (W, 4)
    py_ = torch.arange(h, device=inv.device, dtype=torch.float64).view(-1, 1) ** powers   # (H, 4)
    m = py_.T @ (ink.double() @ px_)                                         # (B, 4, 4): m[i, j] = Σ y^i x^j
    mass = m[:, 0, 0]
    blank = mass < 1e-3
    safe = torch.where(blank, torch.ones_like(mass), mass)
    e = m / safe.view(b, 1, 1)                                               # E[y^i x^j]
    cx = torch.where(blank, torch.full_like(mass, (w - 1) / 2), e[:, 0, 1])
    cy = torch.where(blank, torch.full_like(mass, (h - 1) / 2), e[:, 1, 0])
    cxx = e[:, 0, 2] - cx * cx
    cyy = e[:, 2, 0] - cy * cy
    cxy = e[:, 1, 1] - cx * cy
    theta = 0.5 * torch.atan2(2 * cxy, cxx - cyy)                            # major axis vs the x axis
    cos, sin = torch.cos(theta), torch.sin(theta)
    # third central moment along the axis (a·dx + b·dy)^3, expanded into central moments mu_ij
    mu30 = e[:, 0, 3] - 3 * cx * e[:, 0, 2] + 2 * cx ** 3
    mu03 = e[:, 3, 0] - 3 * cy * e[:, 2, 0] + 2 * cy ** 3
    mu21 = e[:, 1, 2] - 2 * cx * e[:, 1, 1] - cy * e[:, 0, 2] + 2 * cx * cx * cy       # E[dx² dy]
    mu12 = e[:, 2, 1] - 2 * cy * e[:, 1, 1] - cx * e[:, 2, 0] + 2 * cy * cy * cx       # E[dx dy²]
    skew = cos ** 3 * mu30 + 3 * cos ** 2 * sin * mu21 + 3 * cos * sin ** 2 * mu12 + sin ** 3 * mu03
    # point the axis along the longer tail (third moment ≥ 0): that end goes to the bottom
    sign = torch.where(skew < 0, -1.0, 1.0).to(cos.dtype)
    cos, sin = cos * sign, sin * sign
    # extent of the dark pixels along and across the axis: a linear function's maximum over a row's
    # pixels lies at its first or last dark pixel, so two points per row give the exact extent
    dark = (ink > spec.extent_ink).to(torch.uint8)                           # (B, H, W)
    cols = torch.arange(w, device=inv.device, dtype=torch.int32).view(1, 1, w)
    first = torch.argmax(dark, 2)
    last = torch.argmax(dark * cols, 2)
    row_ink = dark.amax(2) > 0                                               # (B, H)
    rx = torch.stack([first, last], -1).double() - cx.view(b, 1, 1)          # (B, H, 2)
    ry = torch.arange(h, device=inv.device, dtype=torch.float64).view(1, h, 1) - cy.view(b, 1, 1)
    along = (rx * cos.view(b, 1, 1) + ry * sin.view(b, 1, 1)).abs()
    across = (-rx * sin.view(b, 1, 1) + ry * cos.view(b, 1, 1)).abs()
    keep = row_ink.unsqueeze(-1)
    half_len = torch.where(keep, along, torch.zeros_like(along)).amax((1, 2)) + 0.5
    half_wid = torch.where(keep, across, torch.zeros_like(across)).amax((1, 2)) + 0.5
    scale = torch.stack([torch.ones_like(half_len), half_len / (spec.height / 2 - spec.margin),
                         half_wid / (spec.width / 2 - spec.margin)], 1).amax(1)
    scale = torch.where(blank, torch.ones_like(scale), scale).float()
    theta = torch.where(blank, torch.zeros_like(theta), torch.atan2(sin, cos)).float()
    cx, cy = cx.float(), cy.float()
    cos, sin = torch.cos(theta), torch.sin(theta)

    # window pixel centres (u across, v along) in native pixels about the centroid
    u = (torch.arange(spec.width, device=inv.device, dtype=torch.float32) + 0.5 - spec.width / 2).view(1, 1, -1)
    v = (torch.arange(spec.height, device=inv.device, dtype=torch.float32) + 0.5 - spec.height / 2).view(1, -1, 1)
    s = scale.view(b, 1, 1)
    # v runs along the axis (cos, sin); u across it (-sin, cos): window down = axis direction
    px = cx.view(b, 1, 1) + s * (v * cos.view(b, 1, 1) - u * sin.view(b, 1, 1))
    py = cy.view(b, 1, 1) + s * (v * sin.view(b, 1, 1) + u * cos.view(b, 1, 1))
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)      # align_corners=False
    # sample the ink (1 - grey) so that everything outside the canvas is white
    out = 1 - F.grid_sample(inv, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if spec.downsample > 1:
        out = F.avg_pool2d(out, spec.downsample)
    return out.clamp_(0, 1), ViewInfo(angle=theta, scale=scale, centre=torch.stack([cx, cy], 1), blank=blank)


def views_uint8(canvases: torch.Tensor, spec: ViewSpec = ViewSpec()) -> torch.Tensor:
    """uint8 (B, 1, H, W) canvases → uint8 views: what the cache stores and the loader path yields."""
    view, _ = canonical_view(canvases.float().div_(255.0), spec)
    return quantize(view)


def quantize(view: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → uint8, rounded: the exported model rounds the same way, so it sees what training saw."""
    return view.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
