"""Shared fixtures: trees copied from the embedded real sample (made by our own Tseng importer)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import chromosomenet
from chromosomenet.data.build import BuildConfig, build_dataset


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def copy_tree(dst: Path, per_class: int | None = None) -> Path:
    """Copy the embedded sample (optionally the first ``per_class`` images per class) to ``dst``."""
    src = chromosomenet.sample_dir()
    rows = read_csv(src / "metadata.csv")
    if per_class is not None:
        seen: dict[str, int] = {}
        keep = []
        for r in rows:
            if seen.get(r["label"], 0) < per_class:
                seen[r["label"]] = seen.get(r["label"], 0) + 1
                keep.append(r)
        rows = keep
    for r in rows:
        (dst / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r["file"], dst / r["file"])
    with open(dst / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    """10 real instances per class (240 images) with metadata: small enough for bad-input cases."""
    return copy_tree(tmp_path / "raw", per_class=10)


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory) -> Path:
    """The whole embedded sample built once (grouped split, default seed)."""
    out = tmp_path_factory.mktemp("built") / "ds"
    build_dataset(BuildConfig(raw=chromosomenet.sample_dir(), out=out, progress=False))
    return out


@pytest.fixture(scope="session")
def sample_cells() -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """The embedded sample's cells: cell_id → (its canvases as they are, their labels)."""
    cells: dict[str, tuple[list, list]] = {}
    for r in read_csv(chromosomenet.sample_dir() / "metadata.csv"):
        canvases, y = cells.setdefault(r["cell_id"], ([], []))
        canvases.append(np.asarray(Image.open(chromosomenet.sample_dir() / r["file"])))
        y.append(int(r["label"]))
    return {k: (v[0], np.array(v[1])) for k, v in cells.items()}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """96 real instances (4 per class) built 2/1/1 per class: small enough to train on in seconds."""
    root = tmp_path_factory.mktemp("tiny")
    raw = copy_tree(root / "raw", per_class=4)
    out = root / "ds"
    build_dataset(BuildConfig(raw=raw, out=out, split="stratified", ratios=(0.5, 0.25, 0.25), progress=False))
    return out


@pytest.fixture(scope="session")
def trained_run(tiny_dataset: Path, tmp_path_factory) -> Path:
    """mobilenetv2_100 trained one epoch at 48 px on the tiny dataset: a finished run folder."""
    from chromosomenet.training.classifier import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "mnv2"
    result = train(TrainConfig(model="mobilenetv2_100", data=str(tiny_dataset), out=out, img_size=48, init="none",
                               workers=0, progress=False, batch_size=16, epochs=1))
    assert result.finished and result.epochs_run == 1 and result.test_metrics is not None
    return out
