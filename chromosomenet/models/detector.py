"""Chromosome detectors, registered with timm: ``create_model("chromosomenet_detector_resnet10t_half")``.

A detector finds every chromosome of a metaphase as one class-agnostic box with a score; which
chromosome it is, is the classifier's job. It is torchvision's FCOS (anchor-free: one point per
feature-map location, focal loss, GIoU box loss, centre-ness, NMS) over a small timm backbone with
torchvision's feature pyramid and a light head: only the glue between them is ours. Why FCOS: no
anchor shapes to tune for thin, bent objects, and a 2-conv head keeps it at a few images/s on 2 CPU
cores (bench/RESULTS.md).

Input: a list of grey metaphases as float tensors (1, H, W) in [0, 1] (white background), already at
the detector's working scale (``pretrained_cfg["scale"]``: model pixels per image pixel) and padded
with white to a multiple of 32; :mod:`chromosomenet.pipeline.detect` does that and maps the boxes back. The
model never resizes (torchvision's own transform would tie the scale to the image size, but a
metaphase photo's size says nothing about its chromosomes' size).

``DETECTOR_ARCHITECTURES`` is the table of variants; the config.json of an exported detector holds
the architecture's name and, in ``pretrained_cfg``, the working scale and the operating thresholds
tuned on validation as ``model_args`` (timm passes them back to the entrypoint), so
``timm.create_model("local-dir:…" | "hf-hub:…", pretrained=True)`` restores all of it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import timm
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork

from ..data.transforms import norm_stats

LABEL = "chromosome"
STRIDE = 32  # the coarsest feature map's stride: inputs are padded to a multiple of it


class DetectorArch(NamedTuple):
    backbone: str                 # a timm model name (one grey input channel)
    backbone_args: dict[str, Any] = {}
    fpn_channels: int = 64
    head_convs: int = 2
    # FCOS assigns a box to the level whose range holds max(l, t, r, b): [4 s, 8 s) for anchor size s,
    # the first level from 0, the last without a ceiling. Strides 8 / 16 / 32 → boxes up to ~128 model
    # px on the finest level: at the working scale nearly every chromosome lies there.
    sizes: tuple[int, ...] = (8, 16, 32)


_HALF = {"channels": (32, 64, 128, 256), "stem_width": 16}  # as the half-width view classifier's backbone

DETECTOR_ARCHITECTURES: dict[str, DetectorArch] = {
    "chromosomenet_detector_resnet10t_half": DetectorArch("resnet10t", _HALF),
    "chromosomenet_detector_resnet10t": DetectorArch("resnet10t", {}),
    "chromosomenet_detector_resnet18": DetectorArch("resnet18", {}, fpn_channels=96),
}

# The working scale and the operating point: data, saved as config.json's model_args (tuned on validation).
DEFAULTS = {"scale": 0.6,             # model px per image px: Tseng's chromosome 21 (35–50 px) → 21–30
            "score_threshold": 0.5,   # a detection counts from this score
            "nms_threshold": 0.7,     # annotated boxes overlap: 2 % of them have another box at IoU > 0.5
            "max_side": 1600,         # model px; larger inputs are scaled down to it (and said so)
            "min_side": 64}           # image px; a smaller image cannot hold a metaphase's chromosomes


class _Unresized(GeneralizedRCNNTransform):
    """torchvision's batching and normalising, without its resize (the scale is the caller's)."""

    def resize(self, image, target=None):
        return image, target


class _Features(nn.Module):
    """timm backbone strides 8, 16, 32 → torchvision feature pyramid."""

    def __init__(self, arch: DetectorArch):
        super().__init__()
        self.body = timm.create_model(arch.backbone, pretrained=False, features_only=True, out_indices=(2, 3, 4),
                                      in_chans=1, **arch.backbone_args)
        self.fpn = FeaturePyramidNetwork(self.body.feature_info.channels(), arch.fpn_channels)
        self.out_channels = arch.fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict:
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.body(x))))


class ChromosomeDetector(nn.Module):
    """FCOS over a timm backbone; ``forward(images, targets=None)`` as torchvision's detection models."""

    def __init__(self, backbone: str = "resnet10t", backbone_args: dict | None = None, fpn_channels: int = 64,
                 head_convs: int = 2, sizes: tuple[int, ...] = (8, 16, 32), num_classes: int = 1,
                 in_chans: int = 1, **overrides: Any) -> None:
        super().__init__()
        arch = DetectorArch(backbone, dict(backbone_args or {}), fpn_channels, head_convs, tuple(sizes))
        features = _Features(arch)
        (mean,), (std,) = norm_stats(features.body.pretrained_cfg["mean"], features.body.pretrained_cfg["std"], 1)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, fpn_channels  # timm's config
        self.fcos = FCOS(features, num_classes, min_size=1, max_size=1, image_mean=[mean], image_std=[std],
                         anchor_generator=AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * len(sizes)),
                         head=FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs),
                         score_thresh=0.05, detections_per_img=200, topk_candidates=1000)
        self.fcos.transform = _Unresized(1, 1, [mean], [std])
        # torchvision starts the (ReLU'd, anchor-size-normalised) box regression at ~0: boxes of a pixel or
        # less, where the GIoU loss has almost no gradient and stays at 1.0 (measured: 40 steps, no change).
        # Starting each side at one anchor size from the point gives boxes the size of the level's objects.
        nn.init.constant_(self.fcos.head.regression_head.bbox_reg.bias, 1.0)
        unknown = set(overrides) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown detector settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.operating: dict[str, float] = {}
        self.set_operating_point(**overrides)

    def set_operating_point(self, **settings: float) -> None:
        """Change the scale / thresholds (NMS lives inside FCOS's postprocessing; the rest is the caller's)."""
        self.operating = {**DEFAULTS, **self.operating, **{k: float(v) for k, v in settings.items()}}
        self.fcos.nms_thresh = self.operating["nms_threshold"]

    @property
    def backbone(self) -> nn.Module:
        return self.fcos.backbone.body

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        return self.fcos(images, targets)


def _cfg(name: str) -> dict[str, Any]:
    arch = DETECTOR_ARCHITECTURES[name]
    net = f"{arch.backbone} {arch.backbone_args}" if arch.backbone_args else arch.backbone
    return {"num_classes": 1, "input_size": (1, 512, 512), "fixed_input_size": False, "pool_size": None,
            "mean": (0.0,), "std": (1.0,), "first_conv": None, "classifier": None, "label_names": (LABEL,),
            "notes": (f"FCOS (torchvision) over {net}, FPN {arch.fpn_channels} channels, strides 8/16/32, "
                      f"{arch.head_convs}-conv head; grey metaphase in [0, 1] at `scale` model px per image px",)}


default_cfgs = generate_default_cfgs({name: _cfg(name) for name in DETECTOR_ARCHITECTURES})


def _entrypoint(name: str) -> Any:
    arch = DETECTOR_ARCHITECTURES[name]

    def create(pretrained: bool = False, **kwargs: Any) -> ChromosomeDetector:
        kwargs.pop("num_classes", None)  # always one class: a chromosome
        return build_model_with_cfg(ChromosomeDetector, name, pretrained, backbone=arch.backbone,
                                    backbone_args=arch.backbone_args, fpn_channels=arch.fpn_channels,
                                    head_convs=arch.head_convs, sizes=arch.sizes, **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__doc__ = f"Chromosome detector: FCOS over {arch.backbone} {arch.backbone_args or ''}".rstrip()
    return register_model(create)


def is_detector(model: nn.Module) -> bool:
    return isinstance(model, ChromosomeDetector)


for _name in DETECTOR_ARCHITECTURES:
    globals()[_name] = _entrypoint(_name)
del _name
