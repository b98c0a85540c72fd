"""Adapting a classifier to a new lab (issue 27): `chromosomenet adapt` on a few cells of a simulated lab
(the embedded sample's cells zoomed ×0.8 and darkened, as another microscope and stain would give), and the
microscope looks of the training recipe."""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import chromosomenet
from chromosomenet.apps.cli import main
from chromosomenet.data.build import build_dataset
from chromosomenet.data.buildinfo import BuildConfig
from chromosomenet.data.cellscale import rescale
from chromosomenet.data.transforms import Augment, _augment
from chromosomenet.models import shipped

SPLITS = {"103181": "train", "103182": "train", "1051261": "train", "1051521": "validation",
          "1051611": "test", "1032292": "test"}


@pytest.fixture(scope="module")
def other_lab(tmp_path_factory) -> Path:
    """Six sample cells as another lab would image them, split by cell (each its own case here)."""
    raw = tmp_path_factory.mktemp("lab") / "raw"
    rows = [r for r in csv.DictReader(open(chromosomenet.sample_dir() / "metadata.csv", newline=""))
            if r["cell_id"] in SPLITS]
    for r in rows:
        canvas = np.asarray(Image.open(chromosomenet.sample_dir() / r["file"]))
        zoomed = rescale(canvas, 0.8)[0].astype(np.float32) / 255
        (raw / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((255 * zoomed ** 1.5).round().astype(np.uint8)).save(raw / r["file"])  # a darker stain
        r["split"] = SPLITS[r["cell_id"]]
    with open(raw / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = raw.parent / "ds"
    build_dataset(BuildConfig(raw=raw, out=out, split="from-metadata", progress=False))
    return out


def test_adapt_fine_tunes_the_default_into_a_model_repo(other_lab: Path, tmp_path: Path, capsys):
    out = tmp_path / "adapted"
    assert main(["adapt", str(other_lab), str(out), "--epochs", "2"]) == 0
    assert "adapted in 2 epochs" in capsys.readouterr().out
    default = json.loads((shipped.default_model() / "config.json").read_text())
    assert json.loads((out / "config.json").read_text())["architecture"] == default["architecture"]
    assert (out / shipped.COSTS).read_bytes() == (shipped.default_model() / shipped.COSTS).read_bytes()
    report = json.loads((out / "train_report.json").read_text())
    assert report["config"]["init"] == str(shipped.default_model()) and report["config"]["cell_scale"]
    assert "reference" in report["facts"]["recipe"]["cell scale"]
    assert report["test_metrics"]["accuracy"] > 0.85  # two gentle epochs keep what the default knew
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    with torch.no_grad():
        assert model(torch.ones(2, 1, 300, 300)).shape == (2, 24)


def test_adapt_refuses_what_is_not_a_model(other_lab: Path, tmp_path: Path, capsys):
    assert main(["adapt", str(other_lab), str(tmp_path / "o"), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err and "config.json" in err
    assert not (tmp_path / "o").exists()


def bar() -> torch.Tensor:
    """Two upright chromosome-like bars with dark bands, as views (B, 1, 104, 48) in [0, 1]."""
    x = torch.ones(2, 1, 104, 48)
    x[:, :, 20:84, 18:30] = 0.55
    x[:, :, 30:84:8, 18:30] = 0.15
    return x


def test_looks_off_draw_nothing_and_leave_the_recipe_as_before():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = _augment(bar(), Augment(), g1)
    b = _augment(bar(), Augment(scale=0.0, width=0.0, gamma=0.0, blur=0.0, noise=0.0, jpeg=0.0), g2)
    assert torch.equal(a, b) and torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_each_look_changes_what_it_says():
    still = dict(rotate_deg=0.0, flip=False, brightness=0.0, contrast=0.0)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = _augment(bar(), Augment(**still), g())
    dark = lambda x: (x < 0.8).float()  # noqa: E731
    thin = _augment(bar(), Augment(**still, width=0.4), g())
    widths, plain_w = dark(thin).sum(3).amax((1, 2)), dark(plain).sum(3).amax((1, 2))
    lengths, plain_l = dark(thin).sum(2).amax((1, 2)), dark(plain).sum(2).amax((1, 2))
    assert (widths != plain_w).any() and torch.equal(lengths, plain_l)  # across the chromosome only
    blurred = _augment(bar(), Augment(**still, blur=1.0), g())
    edges = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().sum()  # noqa: E731
    assert edges(blurred) < 0.9 * edges(plain)  # the bands are softer
    gamma = _augment(bar(), Augment(**still, gamma=0.5), g())
    assert torch.equal(gamma[plain == 1], plain[plain == 1]) and not torch.allclose(gamma, plain)  # white stays white
    noisy = _augment(bar(), Augment(**still, noise=0.05), g())
    assert 0 < (noisy - plain).abs().mean() < 0.05 and noisy.min() >= 0 and noisy.max() <= 1
    # JPEG: the image comes back as torchvision's encoder gives it at one quality in 30–90 (both libjpeg)
    jpeg = _augment(bar(), Augment(**still, jpeg=1.0), g())
    io_ = pytest.importorskip("torchvision.io")
    u8 = plain[0].mul(255).round().byte()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision's JPEG moves to torchcodec
        assert min((jpeg[0] - io_.decode_jpeg(io_.encode_jpeg(u8, quality=q)).float() / 255).abs().max()
                   for q in range(30, 91)) <= 2 / 255
    assert (jpeg - plain).abs().max() > 0.02 and jpeg.min() >= 0 and jpeg.max() <= 1
