"""Grad-CAM (Selvaraju et al., ICCV 2017) for any timm CNN, our ``chromosomenet_*`` models included.

timm splits every model into ``forward_features`` (the last convolutional map, B×C×h×w) and
``forward_head`` (pooling + classifier), so no hooks are needed: the map is the activation, the
gradient of the class score with respect to it weighs its channels. The heat-map is made at the
map's resolution and stretched over the whole 300×300 canvas the model saw (the canvas is resized
as a whole, never cropped, so the two line up).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

from ..errors import ChromosomeNetError


class CamError(ChromosomeNetError):
    """The model has no spatial feature map (e.g. a vision transformer)."""


def grad_cam(model: torch.nn.Module, x: torch.Tensor, class_id: int) -> np.ndarray:
    """Heat-map in [0, 1] at the feature map's resolution (h×w) for ``class_id`` of the one image in ``x``."""
    if x.shape[0] != 1:
        raise ValueError(f"grad_cam explains one image at a time, got a batch of {x.shape[0]}")
    with torch.enable_grad():
        feats = model.forward_features(x)
        if feats.ndim != 4:
            raise CamError(f"{type(model).__name__} gives features of shape {tuple(feats.shape)}, not a "
                           "B×C×h×w map; Grad-CAM needs a convolutional model")
        feats = feats.detach().requires_grad_(True)
        score = model.forward_head(feats)[0, class_id]
        (grad,) = torch.autograd.grad(score, feats)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * feats.detach()).sum(1))[0].float()
    peak = float(cam.max())
    return (cam / peak).cpu().numpy() if peak > 0 else np.zeros(cam.shape, dtype=np.float32)


def overlay(canvas: np.ndarray | Image.Image, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """The grey canvas with the heat-map (bilinearly stretched to it) blended on top, as RGB.

    The chromosome (darker than the canvas) is tinted fully and the blank background faintly, so the
    colour reads as "these bands" while attention on empty space stays visible.
    """
    grey = np.asarray(canvas.convert("L") if isinstance(canvas, Image.Image) else canvas, dtype=np.float32) / 255.0
    h, w = grey.shape
    heat = F.interpolate(torch.from_numpy(np.asarray(cam, np.float32))[None, None], size=(h, w), mode="bilinear",
                         align_corners=False)[0, 0].clamp_(0, 1).numpy()
    colour = colormaps[cmap](heat)[..., :3]
    ink = 0.2 + 0.8 * np.clip((0.94 - grey) / 0.2, 0, 1)[..., None]  # faint on the background, full on the chromosome
    base = np.repeat(grey[..., None], 3, axis=-1)
    out = base * (1 - alpha * ink) + colour * (alpha * ink)
    return Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), "RGB")
