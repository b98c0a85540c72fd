"""The prior methods of the paper's Table 6, registered with timm: ``create_model("chromosomenet_cirnet")``.

The ChromosomeNet paper re-ran six earlier chromosome classifiers on its dataset (Section 5.6,
Table 6). Importing this module registers one timm model per method, so they train, save
(``timm.models.save_for_hf``) and load (``local-dir:`` / ``hf-hub:``) through the same code as the
timm baselines. No weights exist: every ``pretrained_cfg`` is an untrained 24-class config.

None is reproduced layer for layer: they are written from the papers' descriptions, and some papers
give no layer list. Each class docstring says what its paper describes and what we chose. Common
choices: same-padded convs with BatchNorm + ReLU (BN added where a paper omits it: one training
recipe must fit all), a global pool before the classifier (any input of at least 64x64 works),
and widths a CPU can train. ``PRIOR_METHODS``: each method's citation and Table 6 row as printed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from ..labels import NUM_CLASSES
from .prior_methods import PRIOR_METHODS

# One step of an Inception branch: (width | "max" | "avg", kernel[, stride]); pools keep the width.
Step = tuple[Any, ...]

__all__ = ["PRIOR_METHODS", "ARCHITECTURES", "ClassicNet", "PlainCNN", "DeepCNN", "VanillaCNN", "HuCNN",
           "ChromNet2", "CIRNet", "MixNet", "ConvBnAct", "Head", "Mixed", "InceptionResidual",
           "AggregatedBottleneck"]  # register_model appends the six chromosomenet_* entrypoints




class ConvBnAct(nn.Sequential):
    """Same-padded conv, BatchNorm, optional ReLU: the one conv unit every model here shares."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int] = 3, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(cin, cout, (kh, kw), stride, (kh // 2, kw // 2), groups=groups, bias=False),
            bn=nn.BatchNorm2d(cout))
        if act:
            layers["act"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class Head(nn.Module):
    """Global pool, optional hidden fully connected layers, dropout, classifier ``fc``."""

    def __init__(self, in_features: int, num_classes: int, pool_type: str, hidden: Sequence[int],
                 drop_rate: float) -> None:
        super().__init__()
        if not pool_type:  # a flattened map would tie the hidden layer to one input size
            raise ValueError("global_pool must name a pooling ('avg', 'max', 'avgmax', 'catavgmax')")
        self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=True)
        width = in_features * self.global_pool.feat_mult()
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.pre_logits = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop_rate)
        self.width = width
        self.fc = self.classifier(num_classes)

    def classifier(self, num_classes: int) -> nn.Module:
        """A fresh ``fc``; 0 classes gives timm's pooled-features output (Identity)."""
        return nn.Linear(self.width, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pre_logits(self.global_pool(x)))
        return x if pre_logits else self.fc(x)


class ClassicNet(nn.Module, ABC):
    """timm plumbing shared by all six: ``stem`` (first conv) -> ``stages`` -> ``head``.

    Subclasses only describe their body (``_body``); the head's hidden layers and default dropout
    are class attributes. ``drop_rate`` (timm's kwarg) is the dropout before the classifier.
    """

    hidden: tuple[int, ...] = ()     # fully connected layers between pooling and the classifier
    default_drop_rate: float = 0.0   # used when the caller passes no drop_rate

    def __init__(self, num_classes: int = NUM_CLASSES, in_chans: int = 3,
                 drop_rate: float | None = None, global_pool: str = "avg") -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.drop_rate = self.default_drop_rate if drop_rate is None else drop_rate
        self.stem, self.stages, self.num_features = self._body(in_chans)
        self.head = Head(self.num_features, num_classes, global_pool, self.hidden, self.drop_rate)
        self.head_hidden_size = self.head.width

    @abstractmethod
    def _body(self, in_chans: int) -> tuple[nn.Module, nn.Module, int]:
        """(stem holding the first conv, the remaining layers, output channels): each network defines it."""

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New classifier; a new pooling type rebuilds the whole head (hidden layers re-initialised)."""
        self.num_classes = num_classes
        if global_pool is not None and global_pool != self.head.global_pool.pool_type:
            self.head = Head(self.num_features, num_classes, global_pool, self.hidden, self.drop_rate)
            self.head_hidden_size = self.head.width
        else:
            self.head.fc = self.head.classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class PlainCNN(ClassicNet):
    """A plain conv stack as a table: each stage is its convs, then 2x2 max-pool (+ dropout)."""

    widths: tuple[tuple[int, ...], ...] = ()  # conv output widths, one tuple per stage
    kernels: tuple[int, ...] = ()              # conv kernel size per stage
    stage_drop: float = 0.0                    # dropout after each pooling (0: none)

    def _body(self, in_chans: int) -> tuple[nn.Module, nn.Module, int]:
        layers: list[nn.Module] = []
        cin = in_chans
        for widths, k in zip(self.widths, self.kernels, strict=True):
            for w in widths:
                layers.append(ConvBnAct(cin, w, k))
                cin = w
            layers.append(nn.MaxPool2d(2))
            if self.stage_drop:
                layers.append(nn.Dropout(self.stage_drop))
        return layers[0], nn.Sequential(*layers[1:]), cin


class DeepCNN(PlainCNN):
    """Deep CNN, Sharma et al. 2017 [33].

    Paper: a deep CNN classifying straightened chromosome crops (straightening is a preprocessing
    step, not part of the network); we do not know its exact layer list. Chosen: a VGG-style stack
    of eight 3x3 convs (32-32, 64-64, 128-128, 256-256, a max-pool after each pair), global
    average pool, FC-512, dropout 0.5, classifier.
    """

    widths = ((32, 32), (64, 64), (128, 128), (256, 256))
    kernels = (3, 3, 3, 3)
    hidden = (512,)
    default_drop_rate = 0.5


class VanillaCNN(PlainCNN):
    """Vanilla CNN, Zhang et al. 2018 [41].

    Paper: a plain ("vanilla") CNN of stacked convolution and max-pooling layers with fully
    connected layers on top; the exact widths are not known to us. Chosen: four conv + max-pool
    stages (32, 64 with 5x5 kernels; 128, 256 with 3x3), global average pool, FC-256,
    dropout 0.5, classifier.
    """

    widths = ((32,), (64,), (128,), (256,))
    kernels = (5, 5, 3, 3)
    hidden = (256,)
    default_drop_rate = 0.5


class HuCNN(PlainCNN):
    """CNN of Hu et al. 2019 [8].

    Paper: six convolutional, three pooling, four dropout and two fully connected layers. Those
    counts are kept: three stages of two 3x3 convs each ending in max-pool + dropout (three
    dropouts), then FC, dropout (the fourth), classifier FC (the second FC). Chosen: widths
    32/64/128, FC-512, dropout 0.25 after pools and 0.5 before the classifier, BN after each
    conv, a global average pool before the first FC.
    """

    widths = ((32, 32), (64, 64), (128, 128))
    kernels = (3, 3, 3)
    stage_drop = 0.25
    hidden = (512,)
    default_drop_rate = 0.5


class ChromNet2(PlainCNN):
    """ChromNet2, Remya et al. 2020 [30].

    Paper: the deeper of two CNNs (ChromNet1/2) built for the study; layer details are not known
    to us. Chosen: five conv stages (32, 64, 128-128, 256-256, 512; 3x3 kernels; max-pool after
    each), global average pool, dropout 0.5, classifier.
    """

    widths = ((32,), (64,), (128, 128), (256, 256), (512,))
    kernels = (3, 3, 3, 3, 3)
    default_drop_rate = 0.5


def _branch(cin: int, steps: Sequence[Step], div: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for kind, kernel, *rest in steps:
        stride = rest[0] if rest else 1
        if kind == "max":
            layers.append(nn.MaxPool2d(kernel, stride, kernel // 2))
        elif kind == "avg":
            layers.append(nn.AvgPool2d(kernel, stride, kernel // 2, count_include_pad=False))
        else:
            layers.append(ConvBnAct(cin, kind // div, kernel, stride))
            cin = kind // div
    return nn.Sequential(*layers), cin


class Mixed(nn.Module):
    """Inception module: parallel branches (tables of ``Step``), concatenated on channels."""

    def __init__(self, cin: int, branches: Sequence[Sequence[Step]], div: int) -> None:
        super().__init__()
        built = [_branch(cin, steps, div) for steps in branches]
        self.branches = nn.ModuleList(b for b, _ in built)
        self.out_channels = sum(c for _, c in built)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class InceptionResidual(nn.Module):
    """Inception-ResNet block: x + scale * linear 1x1(Mixed(x)), then ReLU."""

    def __init__(self, cin: int, branches: Sequence[Sequence[Step]], div: int, scale: float) -> None:
        super().__init__()
        self.mixed = Mixed(cin, branches, div)
        self.proj = nn.Conv2d(self.mixed.out_channels, cin, 1)  # linear: keeps the residual unbounded
        self.scale = scale  # the Inception-ResNet paper's residual scaling, for stable training
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.scale * self.proj(self.mixed(x)))


class CIRNet(ClassicNet):
    """CIR-Net, Lin et al. 2020 [20].

    Paper: Inception-ResNet-v2 (stem, 10 x block A, reduction A, 20 x B, reduction B, 10 x C,
    1x1 conv to 1536, global average pool, dropout 0.2 (v2's keep 0.8)), plus data augmentation
    (flips, as we recall; that belongs to the training recipe, not here). Chosen: the same
    topology and branch tables at a quarter of the widths, 3/5/3 instead of 10/20/10 blocks,
    same-padded (not valid) convs, a ReLU after every block (v2 skips it after the last).
    """

    div = 4
    repeats = (3, 5, 3)
    scales = (0.17, 0.10, 0.20)
    default_drop_rate = 0.2
    # Inception-ResNet-v2's branch tables at full width (divided by ``div`` when built).
    STEM: tuple[Step, ...] = ((32, 3), (64, 3), ("max", 3, 2), (80, 1), (192, 3), ("max", 3, 2))
    MIXED_5B = (((96, 1),), ((48, 1), (64, 5)), ((64, 1), (96, 3), (96, 3)), (("avg", 3, 1), (64, 1)))
    BLOCK_A = (((32, 1),), ((32, 1), (32, 3)), ((32, 1), (48, 3), (64, 3)))
    REDUCTION_A = ((("max", 3, 2),), ((384, 3, 2),), ((256, 1), (256, 3), (384, 3, 2)))
    BLOCK_B = (((192, 1),), ((128, 1), (160, (1, 7)), (192, (7, 1))))
    REDUCTION_B = ((("max", 3, 2),), ((256, 1), (384, 3, 2)), ((256, 1), (288, 3, 2)),
                   ((256, 1), (288, 3), (320, 3, 2)))
    BLOCK_C = (((192, 1),), ((192, 1), (224, (1, 3)), (256, (3, 1))))
    FINAL_WIDTH = 1536

    def _body(self, in_chans: int) -> tuple[nn.Module, nn.Module, int]:
        stem = ConvBnAct(in_chans, 32 // self.div, 3, 2)
        rest, cin = _branch(32 // self.div, self.STEM, self.div)
        layers = list(rest)
        blocks = zip((self.BLOCK_A, self.BLOCK_B, self.BLOCK_C), self.repeats, self.scales)
        reductions = (self.MIXED_5B, self.REDUCTION_A, self.REDUCTION_B)
        for entry, (block, n, scale) in zip(reductions, blocks):
            mixed = Mixed(cin, entry, self.div)
            cin = mixed.out_channels
            layers += [mixed] + [InceptionResidual(cin, block, self.div, scale) for _ in range(n)]
        layers.append(ConvBnAct(cin, self.FINAL_WIDTH // self.div, 1))
        return stem, nn.Sequential(*layers), self.FINAL_WIDTH // self.div


class AggregatedBottleneck(nn.Module):
    """ResNeXt block: 1x1 reduce, grouped 3x3 (``groups`` parallel paths), 1x1 expand, + shortcut."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(cin, width, 1)
        self.conv2 = ConvBnAct(width, width, 3, stride, groups)
        self.conv3 = ConvBnAct(width, cout, 1, act=False)
        nn.init.zeros_(self.conv3.bn.weight)  # each block starts as identity: trains from scratch
        self.shortcut = (ConvBnAct(cin, cout, 1, stride, act=False)
                         if stride != 1 or cin != cout else nn.Identity())
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.conv3(self.conv2(self.conv1(x))))


class MixNet(ClassicNet):
    """MixNet / MixedNet, Lin et al. 2020 [22].

    Paper: a chromosome classifier on the aggregated residual (ResNeXt) architecture: bottleneck
    blocks whose 3x3 conv is split into parallel paths (a grouped conv); depth and widths are not
    known to us. Chosen: a ResNet stem (7x7/2 conv, 3x3/2 max-pool), ResNeXt's usual cardinality
    32, four stages of two blocks (ResNeXt-26-like) at half the ResNeXt-50 32x4d widths
    (bottleneck 64-512, output 128-1024), global average pool, classifier.
    """

    cardinality = 32
    stem_width = 64
    # (blocks, bottleneck width, output width, stride) per stage
    STAGES = ((2, 64, 128, 1), (2, 128, 256, 2), (2, 256, 512, 2), (2, 512, 1024, 2))

    def _body(self, in_chans: int) -> tuple[nn.Module, nn.Module, int]:
        layers: list[nn.Module] = [nn.MaxPool2d(3, 2, 1)]
        cin = self.stem_width
        for n, width, cout, stride in self.STAGES:
            for i in range(n):
                layers.append(AggregatedBottleneck(cin, width, cout, stride if i == 0 else 1,
                                                   self.cardinality))
                cin = cout
        return ConvBnAct(in_chans, self.stem_width, 7, 2), nn.Sequential(*layers), cin


ARCHITECTURES: dict[str, type[ClassicNet]] = {
    "chromosomenet_deepcnn": DeepCNN, "chromosomenet_vanillacnn": VanillaCNN,
    "chromosomenet_hucnn": HuCNN, "chromosomenet_chromnet2": ChromNet2,
    "chromosomenet_cirnet": CIRNet, "chromosomenet_mixnet": MixNet,
}


def _cfg(name: str) -> dict[str, Any]:
    prior = PRIOR_METHODS[name]
    return {"num_classes": NUM_CLASSES, "input_size": (3, 224, 224), "pool_size": None,
            "crop_pct": 1.0,  # the whole canvas: a crop could cut off a long chromosome
            "interpolation": "bilinear", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
            "first_conv": "stem.conv", "classifier": "head.fc", "paper_name": prior["title"],
            "notes": (f"{prior['label']} [{prior['ref']}] of the ChromosomeNet paper's Table 6; "
                      "architecture only, no weights",)}


# register_model (below) reads this module-level name when each entrypoint is registered.
default_cfgs = generate_default_cfgs({name: _cfg(name) for name in ARCHITECTURES})


def _entrypoint(name: str, cls: type[ClassicNet]) -> Any:
    """A timm entrypoint named ``name`` (timm registers functions by ``__name__``)."""
    def create(pretrained: bool = False, **kwargs: Any) -> ClassicNet:
        return build_model_with_cfg(cls, name, pretrained, **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__doc__ = f"{PRIOR_METHODS[name]['label']} [{PRIOR_METHODS[name]['ref']}]: see {cls.__name__}."
    return register_model(create)


for _name, _cls in ARCHITECTURES.items():
    globals()[_name] = _entrypoint(_name, _cls)
del _name, _cls
