"""The verifier head: a second look at each of the detector's candidate boxes.

FCOS scores a box from one feature-map point; whether the box holds one whole chromosome (not a part of
one, not two touching ones, not a nucleus) shows in its surroundings. The head reads each candidate, with
a margin of context around it, twice: the detector's own stride-8 feature map (RoIAlign, 7×7) and the
grey pixels themselves (RoIAlign at the model's scale, 32×32, through two small convolutions: bands and
edges finer than stride 8), beside the candidate's measured features (:func:`chromosomenet.pipeline.verify.
candidate_features`: size against the cell's own chromosomes, ink on the border, neighbours). It returns
per candidate the logit of p(one whole chromosome, IoU ≥ 0.5), the logit of the IoU it expects, and the
box corrections (torchvision's box coding) that fit the box to the chromosome.

The detector stays frozen: the head trains on its candidates in minutes (``chromosomenet train-verifier``).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import roi_align

FEATURE_STRIDE = 8
TOP = 200  # candidates read per metaphase, best-scored first (those below add no chromosome: 99.58 % recall either way)
CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # as torchvision's Faster R-CNN box head


def with_context(boxes: torch.Tensor, context: float) -> torch.Tensor:
    """Each box grown by ``context`` × its size plus 4 px on every side (model px)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    dx, dy = context * w + 4, context * h + 4
    return torch.stack([boxes[:, 0] - dx, boxes[:, 1] - dy, boxes[:, 2] + dx, boxes[:, 3] + dy], 1)


class VerifierHead(nn.Module):
    """(stride-8 features (1, C, h, w), image (1, 1, H, W) in [0, 1], boxes (N, 4) model px, features (N, F))
    → (logits (N, 2): whole chromosome, IoU; box deltas (N, 4))."""

    def __init__(self, fpn_channels: int = 64, n_features: int = 23, hidden: int = 256, pool: int = 7,
                 pixels: int = 32, context: float = 0.25):
        super().__init__()
        self.pool, self.pixels, self.context = pool, pixels, context
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.reduce = nn.Sequential(nn.Conv2d(fpn_channels, 32, 1), nn.ReLU())
        self.look = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        width = 32 * pool * pool + 32 * (pixels // 4) ** 2 + n_features
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.judge = nn.Linear(hidden, 2)
        self.fit = nn.Linear(hidden, 4)
        nn.init.zeros_(self.fit.weight)  # start from the detector's own boxes
        nn.init.zeros_(self.fit.bias)
        self.coder = BoxCoder(CODER_WEIGHTS)

    def forward(self, feature: torch.Tensor, image: torch.Tensor, boxes: torch.Tensor, features: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        wide = [with_context(boxes, self.context)]
        f = roi_align(feature, wide, self.pool, spatial_scale=1 / FEATURE_STRIDE, sampling_ratio=2, aligned=True)
        g = roi_align(1.0 - image, wide, self.pixels, spatial_scale=1.0, sampling_ratio=2, aligned=True)  # ink > 0
        x = torch.cat([self.reduce(f).flatten(1), self.look(g).flatten(1), (features - self.mean) / self.std], 1)
        h = self.mlp(x)
        return self.judge(h), self.fit(h)

    def refine(self, boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """The candidate boxes moved by the head's corrections."""
        return self.coder.decode_single(deltas, boxes)

    def targets(self, boxes: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """The corrections that move each candidate box onto its ``truth`` box."""
        return self.coder.encode_single(truth, boxes)


def card_section(report: dict, table) -> str:
    """The detector card's section on the verifier beside it, from its ``verifier_report.json``."""
    ours, alone, op, cfg = report["test_metrics"], report["test_detector_alone"], report["operating"], report["config"]

    def pct(v) -> str:
        return "–" if v is None else f"{100 * v:.2f} %"
    rows = [[k, pct(alone[m]), pct(ours[m])] for k, m in (
        ("recall at IoU 0.5", "recall50"), ("precision at IoU 0.5", "precision50"), ("AP50", "ap50"),
        ("AP50:95", "ap50_95"), ("metaphases with the exact chromosome count", "exact_count"))] if ours else []
    return f"""
## The verifier beside it (`verifier.safetensors`, `verifier.json`)

`load_detector(..., verify=True)` (the CLI's `--verify`) loads it with the detector: opt-in, since it fits
boxes better but does not yet count better (the table). FCOS proposes every box
above score 0.05, merged only at IoU ≥ {op['pre_nms']:g}; the verifier head reads each of the
{TOP} best again, with context around it, in the detector's own stride-8 features and in the grey
pixels, beside measured features (size against the cell's own chromosomes, ink on its border, the dark
components inside it, its neighbours): p(one whole chromosome), the IoU it expects and a correction of
the box. The chromosomes are then chosen greedily by p (≥ {op['threshold']:g}; the same object as a chosen one:
IoU ≥ {op['nms_iou']:g}{f" or lying ≥ {op['contain']:g} inside it" if op['contain'] <= 1 else ""}). A chosen box below p {op['sure']:g},
or one left out above p {op['unsure']:g}, is a doubt: the count is then not final (`count_review`).
Trained on the frozen detector's candidates of the train split (best of {report['epochs_run']} epochs by
validation loss: epoch {report['best_epoch']}; {report['train_minutes']:.1f} min of epochs,
{report['minutes_this_invocation']:.0f} min in all with mining, tuning and test, 2 CPU cores); the choice
tuned on validation for exact counts; lr {cfg['lr']:g}. What it does not yet tell apart: two chromosomes
that cross or touch (their boxes overlap at IoU 0.5–0.6, as a second box on one chromosome does), which
is why the count is still exact in only a minority of metaphases (bench/RESULTS.md).

{table(["test (unseen cases)", "the detector alone (its own score and NMS over the same candidates)",
                    "with the verifier"], rows) if rows else ""}
"""

