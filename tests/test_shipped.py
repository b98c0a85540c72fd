"""The model that ships in models/: loads through every door and classifies real cells it never saw."""
from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from datasets import load_dataset
from PIL import Image

import chromosomenet
from chromosomenet import NAMES
from chromosomenet.data.transforms import CanvasImages
from chromosomenet.models import shipped
from chromosomenet.pipeline.cells import saved_costs
from chromosomenet.pipeline.predict import Predictor, load_classifier

FOLDER = shipped.models_dir() / shipped.DEFAULT


@pytest.fixture(scope="module")
def sample_probs(sample_build):
    """The shipped model's probabilities for every chromosome of the embedded sample (22 unseen cases)."""
    model, cfg = load_classifier(f"local-dir:{FOLDER}")
    predictor = Predictor(model, cfg, device=torch.device("cpu"))
    ds = load_dataset(str(sample_build))
    labels, probs = [], []
    for split in ds.values():
        images = CanvasImages(split)
        x = torch.stack([images[i][0] for i in range(len(images))])
        probs += [predictor(x[i:i + 128]) for i in range(0, len(x), 128)]
        labels += split["label"]
    return torch.cat(probs).numpy(), np.asarray(labels)


def test_the_shipped_model_is_a_compact_timm_repo_with_a_card():
    assert shipped.default_model() == FOLDER
    assert (FOLDER / "model.safetensors").stat().st_size <= 30e6
    config = json.loads((FOLDER / "config.json").read_text())
    assert config["architecture"] == "chromosomenet_view_resnet10t_half" and config["label_names"] == list(NAMES)
    card = (FOLDER / "README.md").read_text()
    assert "model-index" in card and "Cell level" in card and "Tseng" in card and "not a medical device" in card
    saved_costs(str(FOLDER / shipped.COSTS))  # parses
    listing = shipped.listing()
    assert shipped.DEFAULT in listing and "% test accuracy" in listing


def test_it_classifies_the_embedded_sample_above_a_floor_no_broken_model_passes(sample_probs):
    probs, y = sample_probs
    assert probs.shape == (len(y), 24) and np.allclose(probs.sum(1), 1, atol=1e-4)
    accuracy = float((probs.argmax(1) == y).mean())
    # chance is ~4 %, a model that learnt only size ~30 %; the shipped one scores ~90 % on these cases
    assert accuracy >= 0.80, accuracy
    assert len(set(probs.argmax(1).tolist())) == 24  # every class is predicted somewhere


def test_timm_and_transformers_load_it_and_agree():
    from transformers import pipeline

    image = Image.open(next((chromosomenet.sample_dir() / "20").glob("*.png")))
    model = timm.create_model(f"local-dir:{FOLDER}", pretrained=True).eval()
    assert next(model.parameters()).dtype == torch.float32  # float16 storage, float32 compute
    cfg = timm.data.resolve_data_config({}, model=model)
    with torch.no_grad():
        ours = model(timm.data.create_transform(**cfg)(image.convert("RGB")).unsqueeze(0)).softmax(-1)[0]
    out = pipeline("image-classification", model=str(FOLDER))(image, top_k=24)
    theirs = torch.tensor([{r["label"]: r["score"] for r in out}[n] for n in NAMES])
    torch.testing.assert_close(theirs, ours, atol=2e-3, rtol=0)


def test_the_space_engine_shows_the_view_and_uses_the_shipped_costs():
    from chromosomenet.apps.engine import Engine, classify_chromosome

    engine = Engine(f"local-dir:{FOLDER}")
    assert shipped.COSTS in engine.costs_from and 0 < engine.threshold < 1
    assert str(FOLDER) not in engine.costs_from  # the page never shows the server's paths
    r = classify_chromosome(engine, next((chromosomenet.sample_dir() / "0").glob("*.png")))
    assert r.canvas.size == (3 * 48, 3 * 104) and r.heatmap.size == r.canvas.size  # the 104×48 view, ×3
    assert "1" in r.top5  # a chromosome 1 of an unseen case


@pytest.mark.parametrize("name, n_val, n_test", [(shipped.DEFAULT, 59, 59), ("chromosomenet-view-resnet10t", 58, 60)])
def test_the_cases_it_trained_and_was_tested_on_ship_with_it_and_the_sample_is_not_among_them(name, n_val, n_test):
    import csv

    from chromosomenet.data.release import case_id_of
    path = shipped.models_dir() / name / "split_cases.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cases = [r["group"] for r in rows]
    assert len(set(cases)) == len(cases)  # one split per case: leakage-free
    count = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    assert sum(count.values()) == len(rows) and (count["validation"], count["test"]) == (n_val, n_test)
    sample = {case_id_of(line.split()[0]) for line in (shipped.models_dir().parent / "tools" / "sample_cells.txt")
              .read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert len(sample) == 22 and not sample & set(cases)  # `make run` scores cases the model never saw
