"""Canonical-view models: training from the view cache, time budget and resume, export and loading."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import chromosomenet
from chromosomenet import NAMES
from chromosomenet.data import viewcache
from chromosomenet.data.loading import load_splits
from chromosomenet.data.transforms import Augment, CanvasImages, Feed, cell_scales
from chromosomenet.data.view import ViewSpec
from chromosomenet.models.viewnet import ViewNet, turned
from chromosomenet.training.budget import plan
from chromosomenet.training.classifier import TrainConfig, train

FAST = dict(model="chromosomenet_view_resnet10t", init="none", workers=0, progress=False, batch_size=16,
            bn_stats_images=32, lr=1e-3)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), out=out, **{**FAST, **kw})


@pytest.fixture(scope="session")
def view_run(tiny_dataset: Path, tmp_path_factory) -> Path:
    """A view model trained under a time budget (capped at 2 epochs) on the tiny real dataset."""
    out = tmp_path_factory.mktemp("view") / "run"
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHROMOSOMENET_CACHE", str(cache))
        r = train(_cfg(tiny_dataset, out, time_budget=1000, max_epochs=2))
    assert r.finished and r.epochs_run == 2
    return out


def test_the_budget_plan_is_stored_and_caps_at_max_epochs(view_run: Path):
    report = json.loads((view_run / "train_report.json").read_text())
    p = report["plan"]
    assert p["total_steps"] == 2 * p["steps_per_epoch"] and p["step_s"] > 0 and p["budget_s"] == 60_000
    assert "planned for a 1000-minute budget" in (view_run / "README.md").read_text()


def test_plan_fits_the_budget_with_the_fixed_costs():
    p = plan(10, spent_s=60, steps_per_epoch=100, step_s=0.5, image_s=0.001, per_epoch_images=5000,
             final_images=2000, max_epochs=500)
    # 600 s − 60 spent − 2 s test − 10 s export = 528 s; each step 0.5 s + 5 s / 100 steps = 0.55 s
    assert p.total_steps == int(528 / 0.55) and p.epochs == 10
    assert plan(0.01, 0, 100, 0.5, 0.001, 0, 0, max_epochs=500).total_steps == 1  # never zero steps


def test_a_budget_run_resumed_after_a_kill_ends_with_identical_weights(tiny_dataset: Path, tmp_path: Path,
                                                                       monkeypatch, view_run: Path):
    monkeypatch.setenv("CHROMOSOMENET_CACHE", str(tmp_path / "cache"))
    killed = tmp_path / "killed"
    first = train(_cfg(tiny_dataset, killed, time_budget=1000, max_epochs=2, stop_after=1))
    assert not first.finished and first.epochs_run == 1
    planned = json.loads((killed / "checkpoint" / "state.json").read_text())["plan"]
    train(_cfg(tiny_dataset, killed, time_budget=1000, max_epochs=2, resume=True))
    assert json.loads((killed / "train_report.json").read_text())["plan"] == planned  # not re-measured
    a, b = load_file(str(killed / "model.safetensors")), load_file(str(view_run / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cache_and_loader_paths_give_the_same_batches(tiny_dataset: Path):
    split = load_splits(str(tiny_dataset), need=("train",))["train"]
    spec = ViewSpec()
    cache = viewcache.compute(split, spec, batch_size=7, progress=False)
    assert cache.views.shape == (len(split), 1, *spec.size) and cache.views.dtype == torch.uint8
    on_views = Feed(spec.size, (0.45,), (0.23,))
    on_canvases = Feed(spec.size, (0.45,), (0.23,), view=spec)
    aug = Augment()
    from_cache = DataLoader(cache, batch_size=16)
    from_disk = DataLoader(CanvasImages(split), batch_size=16)
    for (v, yv, iv), (c, yc, ic) in zip(from_cache, from_disk):
        assert torch.equal(yv, yc) and torch.equal(iv, ic)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        assert torch.equal(on_views(v, aug, g1), on_canvases(c, aug, g2))


def test_the_view_cache_file_is_reused(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CHROMOSOMENET_CACHE", str(tmp_path))
    split = load_splits(str(tiny_dataset), need=("validation",))["validation"]
    first = viewcache.cached(split, "validation", "manifest:x", ViewSpec(), progress=False)
    files = list((tmp_path / "views").glob("*.safetensors"))
    assert len(files) == 1
    again = viewcache.cached(split, "validation", "manifest:x", ViewSpec(), progress=False)
    assert torch.equal(first.views, again.views) and torch.equal(first.labels, again.labels)
    other = viewcache.cached(split, "validation", "manifest:x", ViewSpec(downsample=1), progress=False)
    assert other.views.shape[-2:] == (208, 96) and len(list((tmp_path / "views").glob("*.safetensors"))) == 2
    # each cell read at the reference scale and greys: its own file, the same views as reading it afresh
    read = viewcache.cached(split, "validation", "manifest:x", ViewSpec(), progress=False, cell_scale=True)
    assert len(list((tmp_path / "views").glob("*.safetensors"))) == 3
    assert torch.equal(read.views, viewcache.compute(split, ViewSpec(), progress=False, scales=cell_scales(split)).views)
    assert not torch.equal(read.views, first.views)


def test_the_export_takes_the_canvas_and_round_trips_through_local_dir(view_run: Path):
    config = json.loads((view_run / "config.json").read_text())
    assert config["architecture"] == "chromosomenet_view_resnet10t" and config["label_names"] == list(NAMES)
    assert config["pretrained_cfg"]["input_size"] == [3, 300, 300] and "model_args" not in config
    trained = ViewNet("resnet10t").eval()
    trained.net.load_state_dict(load_file(str(view_run / "checkpoint" / "best.safetensors")))
    loaded = timm.create_model(f"local-dir:{view_run}", pretrained=True).eval()
    x = torch.rand(3, 1, 300, 300).repeat(1, 3, 1, 1)  # grey canvases as RGB
    x[:, :, 100:180, 140:160] = 0.3  # a dark bar on each
    with torch.no_grad():
        assert torch.equal(trained(x), loaded(x))
        grey = loaded(x[:, :1])  # a one-channel canvas gives the same logits
    # the RGB mean of three equal channels can differ from the channel by an ulp, and the CI's CPU
    # sums convolutions in another order: equal up to float noise, not bit for bit
    torch.testing.assert_close(grey, loaded(x), atol=1e-3, rtol=1e-3)


def test_the_half_width_resnet10t_keeps_its_shape_through_export_and_has_no_imagenet_init(tmp_path: Path):
    from chromosomenet.errors import BadInputError
    from chromosomenet.models import factory, hub

    torch.manual_seed(0)
    full = timm.create_model("chromosomenet_view_resnet10t")
    half = timm.create_model("chromosomenet_view_resnet10t_half").eval()
    assert half.net.layer4[0].conv2.out_channels == 256 and half.net.conv1[0].out_channels == 12  # tiered stem 16: 12, 16
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.2 < n(half) / n(full) < 0.3  # every conv halved on both sides: about a quarter
    hub.save(tmp_path, half, hub.export_cfg(half))  # config.json names the architecture, no model_args
    loaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    x = torch.ones(2, 1, 300, 300)
    x[:, :, 90:210, 140:160] = 0.4
    with torch.no_grad():
        assert torch.equal(half(x), loaded(x))
    with pytest.raises(BadInputError, match="no ImageNet weights fit"):
        factory.create("chromosomenet_view_resnet10t_half", init="imagenet")


def test_eval_mode_averages_the_view_and_the_view_turned_180_degrees():
    torch.manual_seed(0)
    model = ViewNet("resnet10t").eval()
    x = torch.ones(2, 1, 300, 300)
    x[:, :, 90:210, 140:160] = 0.5
    x[0, :, 90:120, 140:160] = 0.1  # a darker end: the turned view looks different
    x[1, :, 180:210, 140:160] = 0.2
    with torch.no_grad():
        v = model.normalise(model.view(x)[0])
        one, other = model.net(v), model.net(turned(v))
        assert (one - other).abs().max() > 1e-4  # the two readings differ (well above the 1e-6 below)
        torch.testing.assert_close(model(x), 0.5 * (one + other), atol=1e-6, rtol=0)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))  # transformers' path
        model.tta = False
        assert torch.equal(model(x), one)
        model.tta = True
        model.train()  # training: one pass, as the backbone is trained
        assert torch.equal(model(x), model.net(v))


def test_the_view_export_works_in_transformers_pipeline_and_timm_transforms(view_run: Path):
    from PIL import Image
    from transformers import pipeline

    image = Image.open(next((chromosomenet.sample_dir() / "20").glob("*.png")))
    model = timm.create_model(f"local-dir:{view_run}", pretrained=True).eval()
    cfg = timm.data.resolve_data_config({}, model=model)
    x = timm.data.create_transform(**cfg)(image.convert("RGB")).unsqueeze(0)
    assert x.shape == (1, 3, 300, 300) and float(x.max()) <= 1.0  # [0, 1]: the view needs the raw canvas
    with torch.no_grad():
        ours = model(x).softmax(-1)[0]
    classify = pipeline("image-classification", model=str(view_run))
    out = {r["label"]: r["score"] for r in classify(image.convert("L"), top_k=24)}
    assert sorted(out) == sorted(NAMES)
    torch.testing.assert_close(torch.tensor([out[n] for n in NAMES]), ours, atol=2e-3, rtol=0)
