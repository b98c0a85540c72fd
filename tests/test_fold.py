"""Folding eval-mode BatchNorm into convolutions: same outputs, fewer modules, refusals checked."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import chromosomenet  # noqa: F401  (registers the chromosomenet_* models with timm)
from chromosomenet.models.fold import fold_batchnorm


def _with_real_looking_stats(model: nn.Module) -> nn.Module:
    """Fresh models have mean 0 / var 1 / weight 1 / bias 0, which folding would leave unchanged."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "mobilenetv2_100", "resnet18", "chromosomenet_cirnet"])
def test_folded_model_gives_the_same_logits_without_batchnorm(name: str):
    model = _with_real_looking_stats(timm.create_model(name, num_classes=24))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    folded, n = fold_batchnorm(model, x[:2])
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n == n_bn  # every BatchNorm in these follows a convolution
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)  # x[2] was not the example
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is untouched


class _ReusedConvOutput(nn.Module):
    """The convolution's output is read twice (by the BatchNorm and by an addition): not foldable."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_fold_that_would_change_the_output_is_refused():
    model = _with_real_looking_stats(_ReusedConvOutput())
    x = torch.randn(2, 3, 8, 8)
    same, n = fold_batchnorm(model, x)
    assert n == 0 and same is model


def test_batchnorm_before_its_convolution_is_left_alone():
    model = _with_real_looking_stats(nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    x = torch.randn(2, 3, 8, 8)
    folded, n = fold_batchnorm(model, x)
    assert n == 1 and isinstance(folded[0], nn.BatchNorm2d) and isinstance(folded[2], nn.Identity)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_model_without_batchnorm_comes_back_as_is():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    same, n = fold_batchnorm(model, torch.randn(2, 3, 8, 8))
    assert n == 0 and same is model
