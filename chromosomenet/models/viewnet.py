"""Canonical-view classifiers, registered with timm: ``create_model("chromosomenet_view_resnet18")``.

Each model takes what every model of this suite takes — the 300×300 canvas (grey or RGB, in [0, 1]:
its ``pretrained_cfg`` mean is 0 and std 1, so timm's transforms and ``transformers.pipeline`` only
scale to [0, 1]) — and returns 24 logits. Inside, the canvas becomes the canonical view
(:mod:`chromosomenet.data.view`: upright, fixed scale, 104×48 at ×2 down), is rounded to 8 bits exactly
as the training cache stores it, normalised with the backbone's own statistics, and classified by a
one-channel timm backbone (``.net``). Training feeds ``.net`` views directly from the cache.

In eval mode the view is also classified turned 180° and the two logit vectors are averaged
(``ViewNet.tta``; set it False for one pass at twice the speed). The view's principal axis has no
sign a straight chromosome can tell (p-arm up or down; training flips both ways), so both readings
are equally valid, and their mean is steadier: +0.5 points on validation and +0.4 on the unseen
test cases for the shipped ResNet-10t (bench/RESULTS.md). It is done on the feature map — the
turned view's map turned back lies on the same view coordinates, and global pooling plus the
linear head make the mean of the maps give the mean of the logits — so ``forward``,
``forward_features``/``forward_head`` (what ``transformers`` and Grad-CAM call) all agree.

``VIEW_ARCHITECTURES`` is the table of variants: name → ``ViewArch`` (timm backbone, view downsample
factor, arguments that reshape the backbone). The ``_half`` ResNet-10t halves every stage's width (and
the stem's): a quarter of the multiply-adds, for the predict-speed goal (bench/RESULTS.md).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import timm
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ..data.transforms import norm_stats
from ..data.view import ViewInfo, ViewSpec, canonical_view, quantize
from ..labels import NUM_CLASSES


class ViewArch(NamedTuple):
    backbone: str        # a timm model name
    downsample: int      # view scale: 1 native, 2 half
    backbone_args: dict[str, Any] = {}  # overrides of the timm entrypoint's shape (never mutated)

    @property
    def net(self) -> str:
        """The backbone as the config notes and docstrings name it."""
        return f"{self.backbone} {self.backbone_args}" if self.backbone_args else self.backbone


_HALF = {"channels": (32, 64, 128, 256), "stem_width": 16}  # ResNet-10t is (64, 128, 256, 512), stem 32

VIEW_ARCHITECTURES: dict[str, ViewArch] = {
    "chromosomenet_view_resnet18": ViewArch("resnet18", 2),
    "chromosomenet_view_resnet18_native": ViewArch("resnet18", 1),
    "chromosomenet_view_resnet10t": ViewArch("resnet10t", 2),
    "chromosomenet_view_resnet10t_native": ViewArch("resnet10t", 1),
    "chromosomenet_view_resnet10t_half": ViewArch("resnet10t", 2, _HALF),
    "chromosomenet_view_resnet10t_half_native": ViewArch("resnet10t", 1, _HALF),
    "chromosomenet_view_lite0": ViewArch("tf_efficientnet_lite0", 2),
    "chromosomenet_view_lite0_native": ViewArch("tf_efficientnet_lite0", 1),
}
# The paper's 8 baselines on the canonical view (``tools/baselines.py --input view``), ×2 down as the default.
PAPER_BACKBONES = ("mobilenetv2_100", "densenet121", "resnet50", "resnet101", "resnet152", "resnext101_32x8d",
                   "res2net50_26w_4s", "resnest50d")
VIEW_ARCHITECTURES.update({f"chromosomenet_view_{b}": ViewArch(b, 2) for b in PAPER_BACKBONES})

__all__ = ["VIEW_ARCHITECTURES", "ViewArch", "ViewNet", "is_view_model", "turned"]


def turned(views: torch.Tensor) -> torch.Tensor:
    """Views (or their feature maps) turned 180° in their plane: the other sign of the principal axis."""
    return views.flip((-2, -1))


class ViewNet(nn.Module):
    """Canvas → canonical view → one-channel timm ``backbone`` → logits (both turns of the view in eval)."""

    tta = True  # eval mode: average the logits of the view and of the view turned 180° (see the module doc)

    def __init__(self, backbone: str = "resnet18", downsample: int = 2, num_classes: int = NUM_CLASSES,
                 in_chans: int = 3, **kwargs: Any) -> None:
        super().__init__()
        self.spec = ViewSpec(downsample=downsample)
        self.in_chans = in_chans  # channels of the canvas; the backbone always sees one grey channel
        self.net = timm.create_model(backbone, pretrained=False, num_classes=num_classes, in_chans=1, **kwargs)
        (self.view_mean,), (self.view_std,) = norm_stats(self.net.pretrained_cfg["mean"],
                                                         self.net.pretrained_cfg["std"], 1)
        self.num_classes = self.net.num_classes
        self.num_features = self.net.num_features

    def view(self, x: torch.Tensor) -> tuple[torch.Tensor, ViewInfo]:
        """Canvases (B, C, H, W) in [0, 1] → uint8 views (B, 1, h, w) and their facts."""
        grey = (x.float() if x.shape[1] == 1 else x.float().mean(1, keepdim=True)).clamp(0, 1)
        view, info = canonical_view(grey, self.spec)
        return quantize(view), info

    def normalise(self, views: torch.Tensor) -> torch.Tensor:
        """uint8 views → the backbone's input (what training's ``prepare`` gives it)."""
        return (views.float() / 255.0 - self.view_mean) / self.view_std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map, in view coordinates (rows along the chromosome); in eval
        mode with ``tta``, the mean of the view's map and the turned view's map turned back."""
        v = self.normalise(self.view(x)[0])
        if self.training or not self.tta:
            return self.net.forward_features(v)
        f, g = self.net.forward_features(torch.cat([v, turned(v)])).chunk(2)
        return 0.5 * (f + turned(g))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()

    def reset_classifier(self, num_classes: int, *args: Any, **kwargs: Any) -> None:
        self.net.reset_classifier(num_classes, *args, **kwargs)
        self.num_classes = num_classes


def is_view_model(model: nn.Module) -> bool:
    return isinstance(model, ViewNet)


def _cfg(name: str) -> dict[str, Any]:
    arch = VIEW_ARCHITECTURES[name]
    backbone, downsample = arch.backbone, arch.downsample
    own = timm.models.get_pretrained_cfg(backbone)  # the backbone's own layer names, under ``net.``
    first_conv, classifier = f"net.{own.first_conv if own else 'conv1'}", f"net.{own.classifier if own else 'fc'}"
    h, w = ViewSpec(downsample=downsample).size
    return {"num_classes": NUM_CLASSES, "input_size": (3, 300, 300), "pool_size": None,
            "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
            "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),  # the view needs the raw [0, 1] canvas
            "first_conv": first_conv, "classifier": classifier,
            "notes": (f"300x300 canvas -> canonical view {h}x{w} -> {arch.net} (one grey channel)",)}


# register_model (below) reads this module-level name when each entrypoint is registered.
default_cfgs = generate_default_cfgs({name: _cfg(name) for name in VIEW_ARCHITECTURES})


def _entrypoint(name: str) -> Any:
    arch = VIEW_ARCHITECTURES[name]
    backbone, downsample, backbone_args = arch

    def create(pretrained: bool = False, **kwargs: Any) -> ViewNet:
        return build_model_with_cfg(ViewNet, name, pretrained, backbone=backbone, downsample=downsample,
                                    feature_cfg={"flatten_sequential": False}, **{**backbone_args, **kwargs})

    create.__name__ = create.__qualname__ = name
    create.__doc__ = f"Canonical view ({'native scale' if downsample == 1 else f'x{downsample} down'}) + {arch.net}."
    return register_model(create)


for _name in VIEW_ARCHITECTURES:
    globals()[_name] = _entrypoint(_name)
del _name
