"""`chromosomenet karyotype` on real cells of the embedded sample (a weak, briefly trained model)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import read_csv
from PIL import Image

import chromosomenet
import chromosomenet.models.shipped
from chromosomenet.apps.cli import main
from chromosomenet.errors import BadInputError
from chromosomenet.pipeline.cells import KaryotypeConfig, karyotype_images, karyotype_split


def _cell_files(cell: str) -> list[Path]:
    return sorted(chromosomenet.sample_dir().glob(f"*/{cell}_*.png"))


def test_dataset_mode_calls_every_test_cell(trained_run: Path, sample_build: Path, tmp_path: Path):
    out = tmp_path / "cells"
    s = karyotype_split(KaryotypeConfig(run=str(trained_run), out=out, data=str(sample_build), workers=0,
                                        progress=False))
    test_cells = sorted({r["group"] for r in read_csv(sample_build / "manifest.csv") if r["split"] == "test"})
    rows = read_csv(out / "cells.csv")
    assert s["cells"] == len(rows) == len(test_cells)  # one metaphase per case in the sample
    assert s["chromosomes"] == sum(int(r["n"]) for r in rows)
    for r in rows:
        assert (out / "karyograms" / f"{r['cell']}.png").exists() and (out / "calls" / f"{r['cell']}.csv").exists()
        assert r["true_iscn"].startswith(("45,", "46,", "47,")) and r["type"] in ("normal", "numerical", "structural")
    assert 0 <= s["instance_accuracy_after"] <= 1 and 0 <= s["fraction_flagged"] <= 1
    # normal cells are those annotated 46,XX / 46,XY; a normal case's spread with another count is apart
    of_normal_cases = [r for r in rows if r["type"] == "normal"]
    assert s["normal_cells"] == sum(r["true_iscn"] in ("46,XX", "46,XY") for r in of_normal_cases)
    assert s["normal_cells"] + s["spread_loss_gain_cells"] == len(of_normal_cases)
    costs = json.loads((out / "costs.json").read_text())
    assert costs["tuned_on"] == "validation" and "extra_viable_trisomy" in costs["costs"]
    assert "exact ISCN count match" in (out / "README.md").read_text() and (out / "risk_coverage.png").exists()
    # chromosomes whose crop is merged (or low_fill) are flagged whatever their confidence
    quality = {r["file"]: r["quality"] for r in read_csv(chromosomenet.sample_dir() / "metadata.csv")}
    calls = [c for r in rows for c in read_csv(out / "calls" / f"{r['cell']}.csv")]
    forced = [c for c in calls if {"merged", "low_fill"} & set(quality[c["id"]].split(";"))]
    assert forced and all(c["flag"] == "True" for c in forced)
    assert s["fraction_forced"] == pytest.approx(len(forced) / len(calls))
    assert costs["always_review"] == ["merged", "low_fill", "empty"]


def test_images_of_one_cell(trained_run: Path, tmp_path: Path, capsys):
    files = _cell_files("1051261")
    assert len(files) == 47
    out = tmp_path / "one"
    code = main(["karyotype", "--run", str(trained_run), "--images", *map(str, files), "--out", str(out)])
    assert code == 0 and "karyogram" in capsys.readouterr().out
    with open(out / "call.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 47
    assert Image.open(out / "karyogram.png").size[0] > 500


def test_mixed_cells_need_one_cell(trained_run: Path, tmp_path: Path):
    mixed = _cell_files("1051261")[:20] + _cell_files("103181")[:20]
    cfg = KaryotypeConfig(run=str(trained_run), out=tmp_path / "m", images=tuple(map(str, mixed)))
    with pytest.raises(BadInputError, match="the images come from 2 cells"):
        karyotype_images(cfg)
    call = karyotype_images(KaryotypeConfig(run=str(trained_run), out=tmp_path / "m", images=tuple(map(str, mixed)),
                                            one_cell=True))
    assert len(call.labels) == 40
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    shutil.copy(mixed[0], unnamed / "a.png")
    with pytest.raises(BadInputError, match="do not say which cell"):
        karyotype_images(KaryotypeConfig(run=str(trained_run), out=tmp_path / "u", images=(str(unnamed),)))


def test_implausible_counts_and_bad_files(trained_run: Path, tmp_path: Path):
    one = karyotype_images(KaryotypeConfig(run=str(trained_run), out=tmp_path / "1",
                                           images=(str(_cell_files("1051261")[0]),)))
    assert not one.plausible and "implausible" in one.message
    many = [str(p) for p in sorted(chromosomenet.sample_dir().glob("*/*.png"))[:200]]
    call = karyotype_images(KaryotypeConfig(run=str(trained_run), out=tmp_path / "200", images=tuple(many),
                                            one_cell=True))
    assert len(call.labels) == 200 and not call.plausible
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(BadInputError, match=r"report\.pdf: is not an image file"):
        karyotype_images(KaryotypeConfig(run=str(trained_run), out=tmp_path / "p", images=(str(pdf),)))
    broken = tmp_path / "cell9_00.png"
    broken.write_bytes(_cell_files("1051261")[0].read_bytes()[:100])
    with pytest.raises(BadInputError, match=r"cell9_00\.png: truncated or corrupt image"):
        karyotype_images(KaryotypeConfig(run=str(trained_run), out=tmp_path / "b", images=(str(broken),)))


def test_cli_can_turn_forced_review_off(trained_run: Path, sample_build: Path, tmp_path: Path):
    main(["karyotype", "--run", str(trained_run), "--data", str(sample_build), "--out", str(tmp_path / "k"),
          "--always-review", "", "--workers", "0"])
    s = json.loads((tmp_path / "k" / "summary.json").read_text())
    assert s["always_review"] == [] and s["fraction_forced"] == 0.0


def test_a_cell_exported_as_class_folders_is_karyotyped_by_the_shipped_default(tmp_path: Path, sample_cells):
    """A sorted cell as karyotyping software exports it (``<cell>/clase<k>/<image>.tiff``, Pki-3's layout):
    its images are read (the software's classes are not), the cell named by its folder, with the costs and
    review threshold shipped beside the model. An empty folder is one clear error."""
    from chromosomenet.labels import NUM_CLASSES
    from chromosomenet.pipeline.assign import iscn

    canvases, y = sample_cells["103181"]
    cell = tmp_path / "97000001.3.tiff"
    for i, (canvas, label) in enumerate(zip(canvases, y)):
        (cell / f"clase{label + 1}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas).save(cell / f"clase{label + 1}" / f"clase{label + 1}_{i}_97000001.3.tiff")
    out = tmp_path / "call"
    call = karyotype_images(KaryotypeConfig(run=chromosomenet.models.shipped.default_spec(), out=out,
                                            images=(str(cell),)))
    assert len(call.labels) == len(y) == 46 and call.iscn == iscn(np.bincount(y, minlength=NUM_CLASSES))
    assert len(read_csv(out / "call.csv")) == 46 and (out / "karyogram.png").exists()
    (tmp_path / "empty" / "clase1").mkdir(parents=True)
    with pytest.raises(BadInputError, match="empty: holds no image files"):
        karyotype_images(KaryotypeConfig(run=chromosomenet.models.shipped.default_spec(), out=tmp_path / "e",
                                         images=(str(tmp_path / "empty"),)))
