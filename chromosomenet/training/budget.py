"""Plan a one-cycle schedule for a wall-clock budget: measure a step, fix the step count, then run exactly.

The schedule is planned once, from steps timed on a throw-away copy of the model (the real weights,
optimiser and random streams are untouched), and the plan — a step count — is stored with the run:
a resumed run follows the same plan, so resume stays exact. The plan charges every epoch its share
of the fixed costs (BatchNorm statistics, validation) and reserves the final test and export.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Plan:
    total_steps: int           # optimiser steps of the whole run (the one-cycle length)
    steps_per_epoch: int
    step_s: float              # measured seconds per training step
    image_s: float             # measured seconds per image of an eval forward pass
    budget_s: float

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def to_dict(self) -> dict:
        return asdict(self)


def _time(fn, n: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def measure(net: torch.nn.Module, make_batch, loss_fn, lr: float, autocast, steps: int = 12,
            warmup: int = 3) -> tuple[float, float]:
    """(seconds per training step, seconds per image of an eval forward) on a copy of ``net``.

    ``make_batch()`` gives one training batch ``(input, target)`` already prepared for ``net``;
    ``loss_fn(model, input, target)`` its loss (a classifier's criterion on its logits, a detector's
    own losses).
    """
    probe = copy.deepcopy(net).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=lr)
    x, y = make_batch()

    def step() -> None:
        with autocast():
            loss = loss_fn(probe, x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step_s = _time(step, steps, warmup)
    probe.eval()

    def forward() -> None:
        with torch.no_grad(), autocast():
            probe(x)

    image_s = _time(forward, max(2, steps // 3), 1) / len(x)
    return step_s, image_s


def plan(budget_min: float, spent_s: float, steps_per_epoch: int, step_s: float, image_s: float,
         per_epoch_images: int, final_images: int, max_epochs: int) -> Plan:
    """The step count that fits ``budget_min`` minutes, ``spent_s`` of which are already gone.

    Each epoch costs its steps plus ``per_epoch_images`` eval forwards (BN statistics + validation);
    the end costs ``final_images`` forwards (test) plus a few seconds of export. At least one step,
    at most ``max_epochs`` whole epochs.
    """
    budget_s = budget_min * 60.0
    left = budget_s - spent_s - final_images * image_s - 10.0
    per_step = step_s + per_epoch_images * image_s / steps_per_epoch
    total = min(max(1, int(left / per_step)), max_epochs * steps_per_epoch)
    return Plan(total_steps=total, steps_per_epoch=steps_per_epoch, step_s=round(step_s, 6),
                image_s=round(image_s, 8), budget_s=budget_s)
