"""Fold inference-mode BatchNorm into the convolution before it, then check the result.

In eval mode a BatchNorm is a fixed per-channel affine map, so ``bn(conv(x))`` equals a single
convolution with rescaled weights and a bias. On a CPU the separate normalisation pass over every
activation map costs as much as many depthwise convolutions; removing it is exact up to rounding.

Which convolution feeds which BatchNorm is read off one real forward pass (hooks record the tensor
each module returns and the tensor each BatchNorm receives), so any timm architecture works
without tracing its code. Every pair is folded only if the folded model then reproduces the
original's outputs on the example batch; otherwise the original model is returned unchanged.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """(conv name, BatchNorm name) of every foldable pair, and the model's output on ``example``."""
    names = {m: n for n, m in model.named_modules()}
    made_by: dict[int, nn.Module] = {}
    consumers: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # holds every recorded tensor so no id is reused during the pass
    pairs = []

    def after(module, inputs, output):
        for t in inputs:
            if isinstance(t, torch.Tensor):
                consumers[id(t)] = consumers.get(id(t), 0) + 1
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and inputs and id(inputs[0]) in made_by:
            pairs.append((made_by[id(inputs[0])], module, id(inputs[0])))
        if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
            made_by[id(output)] = module
            keep.append(output)
        keep.extend(t for t in inputs if isinstance(t, torch.Tensor))

    leaves = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm))]
    hooks = [m.register_forward_hook(after) for m in leaves]
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        for h in hooks:
            h.remove()
    # a convolution whose output a second module also reads cannot absorb the BatchNorm
    return [(names[c], names[b]) for c, b, t in pairs
            if consumers.get(t) == 1 and b.track_running_stats and b.running_mean is not None], output


def _without_norm(bn: nn.Module) -> nn.Module:
    """What is left of a BatchNorm once folded: nothing, or timm's fused activation (and its dropout)."""
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    parts = [m for m in (drop, act) if isinstance(m, nn.Module) and not isinstance(m, nn.Identity)]
    return nn.Sequential(*parts) if parts else nn.Identity()


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor, tol: float = 1e-3) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` with every conv→BatchNorm pair folded, and how many were folded.

    ``example`` is any input batch of the model's shape (the fold is exact algebra; the check only
    catches a wrongly read pairing): the copy must reproduce the original's outputs on it within
    ``tol`` of their scale, else the original model is returned with 0 folds. No BatchNorm to fold:
    the original is returned without copying.
    """
    model = model.eval()
    pairs, want = _conv_bn_pairs(model, example)
    if not pairs:
        return model, 0
    folded = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.bias = nn.Parameter(bias.detach().clone())
        _set(folded, bn_name, _without_norm(bn))
    want, got = want.float(), folded(example).float()
    if not torch.allclose(got, want, rtol=0, atol=tol * max(1.0, want.abs().max().item())):
        return model, 0
    return folded, len(pairs)
