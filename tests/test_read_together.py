"""A cell read together (``Predictor.cell``): the cell and its mirror images as one batch, BatchNorm by the
batch's own statistics, probabilities averaged over each chromosome and its mirror image. Checked against
numpy's mean and variance, for the shipped default and an untrained (weak) model; blind to the order of
the chromosomes and to mirroring; a split's cells read as each cell alone; the shipped default reads the
sample better together than one by one."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from chromosomenet.data.cellscale import normalise_cell
from chromosomenet.data.loading import load_splits
from chromosomenet.data.transforms import CanvasImages, cell_scales
from chromosomenet.models import shipped
from chromosomenet.pipeline.predict import Predictor, load_classifier, predict, predict_canvases, predict_cell


@pytest.fixture(scope="module")
def default() -> Predictor:
    return Predictor(*load_classifier(shipped.default_spec()))


def weak() -> Predictor:
    model = timm.create_model("chromosomenet_view_resnet10t_half", num_classes=24).eval()
    return Predictor(model, dict(model.pretrained_cfg))


@pytest.mark.parametrize("which", ["default", "weak"])
def test_batchnorm_uses_the_cells_own_statistics_and_leaves_the_models(which, default, sample_cells):
    predictor = default if which == "default" else weak()
    canvases = normalise_cell(sample_cells["103181"][0])[0]
    x = torch.from_numpy(np.stack(canvases)).unsqueeze(1)
    plain = predictor(x).numpy()
    running = [b.running_mean.clone() for b in predictor.unfolded.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    seen = {}
    probs = predictor.cell(x)  # builds the batch-statistics copy on first use
    # a layer inside the backbone: the stem's first one sees ink means 400× its variance, where torch's
    # channels-last float32 kernel drifts 7e-4 from float64 (contiguous: 1e-7), which is torch's, not ours
    norms = [m for m in predictor.by_cell.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn = norms[len(norms) // 2]
    hook = bn.register_forward_hook(  # copies: a ReLU after it works in place
        lambda m, i, o: seen.update(x=i[0].double().numpy().copy(), y=o.double().numpy().copy()))
    assert torch.allclose(predictor.cell(x), probs)
    hook.remove()
    # the cell and its mirror images, one batch (each view also turned 180° inside the view model: ViewNet.tta)
    assert seen["x"].shape[0] == 2 * len(canvases) * (2 if predictor.unfolded.tta else 1)

    def normalised(mean, var):
        w, b = (t.detach().double().numpy()[:, None, None] for t in (bn.weight, bn.bias))
        return (seen["x"] - mean[:, None, None]) / np.sqrt(var + bn.eps)[:, None, None] * w + b

    by_cell = normalised(seen["x"].mean(axis=(0, 2, 3)), seen["x"].var(axis=(0, 2, 3)))  # numpy: biased variance
    by_training = normalised(bn.running_mean.double().numpy(), bn.running_var.double().numpy())
    assert np.abs(seen["y"] - by_cell).max() < 1e-3 < 0.05 < np.abs(seen["y"] - by_training).max()
    assert np.allclose(probs.sum(1).numpy(), 1, atol=1e-5) and probs.shape == (len(canvases), 24)
    after = [b.running_mean for b in predictor.unfolded.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a, r) for a, r in zip(after, running))
    assert np.array_equal(predictor(x).numpy(), plain)  # one by one reads as it did
    assert not np.allclose(probs.numpy(), plain, atol=1e-3)  # and the cell's statistics do move the reading


def test_reading_together_is_blind_to_order_and_to_mirroring(default, sample_cells):
    canvases = normalise_cell(sample_cells["1080551"][0])[0]
    probs = predict_canvases(default, canvases, together=True)
    order = np.random.default_rng(0).permutation(len(canvases))
    assert np.allclose(predict_canvases(default, [canvases[i] for i in order], together=True), probs[order], atol=1e-4)
    mirrored = predict_canvases(default, [c[:, ::-1].copy() for c in canvases], together=True)
    assert np.allclose(mirrored, probs, atol=1e-4)  # (float sums in another order: 2e-5)


def test_a_splits_cells_are_read_as_each_cell_alone(sample_build, default):
    split = load_splits(str(sample_build), need=("test",))["test"]
    probs = predict(default, split, 16, 0, False, cell_scales(split))
    ids = np.asarray(split["cell_id"])
    images = CanvasImages(split)
    for c in np.unique(ids):
        rows = np.flatnonzero(ids == c)
        alone, scale = predict_cell(default, [images[int(i)][0][0].numpy() for i in rows])
        assert scale.factor != 1.0 and np.allclose(probs[rows], alone, atol=1e-5), c


def test_the_default_reads_the_sample_better_together(default, sample_cells):
    """Measured on the 22 sample cells: 97.24 % together, 96.55 % one by one (bench/RESULTS.md)."""
    right, n = {False: 0, True: 0}, 0
    for canvases, y in sample_cells.values():
        canvases = normalise_cell(canvases)[0]
        for together in right:
            right[together] += int((predict_canvases(default, canvases, together=together).argmax(1) == y).sum())
        n += len(y)
    assert n == 1014
    assert right[True] > right[False] + 3 and right[True] / n > 0.965
