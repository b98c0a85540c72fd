"""Table 6 prior methods: registered in timm, any size/channels, trainable, Hub round trip, paper rows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from timm.models import save_for_hf

from chromosomenet.labels import NUM_CLASSES
from chromosomenet.models.classic import ARCHITECTURES, PRIOR_METHODS

NAMES = ("chromosomenet_deepcnn", "chromosomenet_vanillacnn", "chromosomenet_hucnn",
         "chromosomenet_chromnet2", "chromosomenet_cirnet", "chromosomenet_mixnet")
PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "chromosomenet.txt"
# Two Table 6 rows, typed from the paper independently of the module: (reported, evaluated, improvement).
TABLE6_ROWS = {"chromosomenet_deepcnn": "Deep CNN [33]\t86.7%\t92.09%\t+5.39%",
               "chromosomenet_cirnet": "CIR-Net [20]\t95.98%\t98.64%\t+2.66%"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny batches gain nothing from threads, and on a busy 2-core box OpenMP's spin-waits
    made these tests ~100x slower with 2 threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _row(name: str) -> str:
    """A PRIOR_METHODS entry written the way Table 6 prints it."""
    p = PRIOR_METHODS[name]
    reported = "86.7" if p["reported_acc"] == 86.7 else f"{p['reported_acc']:.2f}"  # printed so
    return f"{p['label']} [{p['ref']}]\t{reported}%\t{p['chromosomenet_acc']:.2f}%\t+{p['improvement']:.2f}%"


def test_registered_with_weightless_24_class_cfgs():
    assert tuple(ARCHITECTURES) == NAMES
    for name in NAMES:
        assert timm.is_model(name) and not timm.models.is_model_pretrained(name)
        cfg = timm.models.get_pretrained_cfg(name)
        assert cfg.num_classes == NUM_CLASSES and cfg.input_size == (3, 224, 224)
        assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
        assert not cfg.url and not cfg.hf_hub_id and not cfg.file
        model = timm.create_model(name)
        assert model.num_classes == NUM_CLASSES and model.default_cfg is model.pretrained_cfg
        modules = dict(model.named_modules())
        assert isinstance(modules[cfg.first_conv], torch.nn.Conv2d)
        assert modules[cfg.classifier] is model.get_classifier()


@pytest.mark.parametrize("name", NAMES)
def test_shapes_channels_sizes_and_backward(name):
    torch.manual_seed(0)
    for in_chans, size in ((1, 64), (3, 96)):
        model = timm.create_model(name, num_classes=NUM_CLASSES, in_chans=in_chans, drop_rate=0.1)
        assert model.stem.conv.in_channels == in_chans
        logits = model(torch.randn(2, in_chans, size, size))
        assert logits.shape == (2, NUM_CLASSES)
        logits.logsumexp(1).mean().backward()
        grad = model.stem.conv.weight.grad
        assert grad is not None and grad.abs().sum() > 0
        feats = model.forward_features(torch.randn(2, in_chans, size, size))
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
    model.reset_classifier(10)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10) and model.num_classes == 10
    model.reset_classifier(5, global_pool="catavgmax")  # a new pooling rebuilds the head
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, model.head_hidden_size)


@pytest.mark.parametrize("name", NAMES)
def test_save_for_hf_local_dir_round_trip(name, tmp_path):
    torch.manual_seed(1)
    model = timm.create_model(name, num_classes=NUM_CLASSES, in_chans=1).eval()
    save_for_hf(model, tmp_path, model_config={"label_names": [str(i) for i in range(NUM_CLASSES)]},
                safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == name and config["model_args"]["in_chans"] == 1
    loaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert loaded.in_chans == 1 and loaded.num_classes == NUM_CLASSES
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_prior_methods_table6():
    assert tuple(PRIOR_METHODS) == NAMES
    assert [p["ref"] for p in PRIOR_METHODS.values()] == [33, 41, 8, 30, 20, 22]
    for p in PRIOR_METHODS.values():
        assert {"authors", "year", "venue", "title"} <= set(p)
        assert round(p["chromosomenet_acc"] - p["reported_acc"], 2) == p["improvement"]
    for name, row in TABLE6_ROWS.items():
        assert _row(name) == row


@pytest.mark.skipif(not PAPER.exists(), reason="paper text not in this checkout")
def test_prior_methods_match_paper_text():
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    for name in NAMES:
        assert _row(name) in lines, name
    assert all(row in lines for row in TABLE6_ROWS.values())
