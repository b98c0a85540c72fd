"""`make baselines` (tools/baselines.py) end to end at a tiny scale, so that the device run cannot fail for a
typo: the embedded sample as the import (1,014 real crops of 22 cases), a split of its cases given like the
default classifier's split_cases.csv, each of the 8 baselines one training step on the canonical view and the smallest one a whole epoch,
the report with Tables 1–4, case-bootstrap intervals and the shipped model beside them."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import timm
import torch

import chromosomenet
from chromosomenet.models.viewnet import PAPER_BACKBONES

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("baselines", ROOT / "tools/baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", PAPER_BACKBONES)
def test_every_baseline_reads_the_canonical_view_and_learns(name: str):
    """Each of the 8 on the view: a forward pass in both modes and one step that lowers nothing to NaN."""
    model = timm.create_model(f"chromosomenet_view_{name}")
    x = torch.rand(2, 3, 300, 300)
    loss = torch.nn.functional.cross_entropy(model.train()(x), torch.tensor([0, 23]))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 24)


def test_the_baselines_script_end_to_end_on_the_sample(tmp_path: Path):
    with open(chromosomenet.sample_dir() / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cells = sorted({(r["case_id"], r["cell_id"]) for r in rows})
    cases = [c for c, _ in cells[:8]]  # 8 cases, about 370 crops: the other 14 are left out as the sample is
    (tmp_path / "left_out.txt").write_text("\n".join(cell for _, cell in cells[8:]))
    split = tmp_path / "model" / "split_cases.csv"
    split.parent.mkdir()
    split.write_text("group,split\n" + "".join(
        f"{c},{'test' if k % 4 == 0 else 'validation' if k % 4 == 1 else 'train'}\n" for k, c in enumerate(cases)))
    tool = _tool()
    models = ("chromosomenet_view_mobilenetv2_100",)  # the other 7 are checked above, one step each
    readme = tool.main(["--raw", str(chromosomenet.sample_dir()), "--work", str(tmp_path / "work"),
                        "--out", str(tmp_path / "report"), "--split-cases", str(split), "--exclude-cells", str(tmp_path / "left_out.txt"),
                        "--epochs", "1", "--timing-samples", "5", "--workers", "0", "--models", ",".join(models)])
    text = readme.read_text()
    for section in ("## Table 1", "## Table 2", "## Table 3", "## Table 4", "## Cell level",
                    "The best baseline beside the shipped view model", "bootstrap over cases", "from scratch"):
        assert section in text, section
    manifest = list(csv.DictReader(open(tmp_path / "work" / "dataset_model" / "manifest.csv", newline="")))
    test_cases = {r["group"] for r in manifest if r["split"] == "test"}
    assert test_cases == {c for k, c in enumerate(cases) if k % 4 == 0}  # the given split, not a fresh one
    for m in models:
        metrics = json.loads((tmp_path / "report" / "eval" / m / "metrics.json").read_text())
        assert metrics["metrics"]["accuracy_ci95"] is not None and 0 <= metrics["metrics"]["accuracy"] <= 1
    # the shipped model on the same test cases reads them far better than one epoch from scratch
    shipped = json.loads((tmp_path / "report" / "eval" / "shipped" / "metrics.json").read_text())
    assert shipped["metrics"]["accuracy"] > 0.8
    table = tool.finished_table(tmp_path / "report", tool.models_for("view"))  # the 7 not run are left out
    assert table.count("\n") == 2 and "| chromosomenet_view_mobilenetv2_100 | " in table
    assert tool.models_for("view") == tuple(f"chromosomenet_view_{b}" for b in PAPER_BACKBONES)
    assert tool.models_for("224") == PAPER_BACKBONES
