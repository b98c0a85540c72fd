"""`import-cells`: a per-cell class-folder tree (as karyotyping software exports it) made in the test from
the embedded sample's chromosomes, cut tight and saved as TIFFs, with the surprises real exports carry."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import chromosomenet
from chromosomenet.apps.cli import main
from chromosomenet.data.build import BuildConfig, build_dataset
from chromosomenet.importers.cells import cell_and_case, class_of_folder, import_cells


def tight(png: Path) -> np.ndarray:
    """A sample canvas cut to its chromosome's bounding box: what a karyogram export holds."""
    a = np.asarray(Image.open(png))
    ys, xs = np.nonzero(a < 250)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "export"
    sample = chromosomenet.sample_dir()
    for cell, folder in (("103181", "10318.1.tiff"), ("1051261", "10512.61.tiff")):
        for label in (0, 17, 20, 22):  # chromosomes 1, 18, 21 and X, in Pki-3's clase<N> naming
            d = src / folder / f"clase{label + 1}"
            d.mkdir(parents=True)
            for k, png in enumerate(sorted(sample.glob(f"{label}/{cell}_*.png"))):
                Image.fromarray(tight(png)).save(d / f"clase{label + 1}_{k}_{folder}", format="TIFF",
                                                 compression="tiff_lzw")
    (src / "10318.1.tiff/clase25").mkdir()  # not a class of the 24 (Pki-3 has one)
    Image.new("L", (10, 40), 80).save(src / "10318.1.tiff/clase25/odd.tiff")
    (src / "10318.1.tiff/clase24").mkdir()  # an empty class folder: no Y in a female cell's export
    return src


def test_class_and_cell_names():
    assert [class_of_folder(n) for n in ("clase1", "clase23", "clase24", "CHRX", "chr22", "Y", "24", "1")] == \
        [0, 22, 23, 22, 21, 23, 23, 0]
    assert class_of_folder("clase25") is None and class_of_folder("misc") is None and class_of_folder("0") is None
    assert cell_and_case("97002023.12.tiff") == ("97002023.12", "97002023")
    assert cell_and_case("patient7") == ("patient7", "patient7")


def test_import_places_each_crop_unscaled_and_reports_the_surprises(tree: Path, tmp_path: Path):
    report = import_cells(tree, tmp_path / "raw", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "raw/metadata.csv", newline="")))
    assert report.cells == 2 and report.instances == len(rows) > 10
    assert report.unknown_class_folders == ["10318.1.tiff/clase25"] and "clase25" in report.summary()
    assert report.empty_class_folders == ["10318.1.tiff/clase24"]
    assert {(r["cell_id"], r["case_id"]) for r in rows} == {("10318.1", "10318"), ("10512.61", "10512")}
    assert {r["name"] for r in rows} == {"1", "18", "21", "X"} and all(r["quality"] == "ok" for r in rows)
    r = next(r for r in rows if r["name"] == "18")
    crop = np.asarray(Image.open(tree / r["source_image"]))
    canvas = np.asarray(Image.open(tmp_path / "raw" / r["file"]))
    h, w = crop.shape
    y0, x0 = (300 - h) // 2, (300 - w) // 2
    assert canvas.shape == (300, 300) and np.array_equal(canvas[y0:y0 + h, x0:x0 + w], crop)  # unscaled, centred
    assert (canvas[:y0] == 255).all()
    ds = build_dataset(BuildConfig(raw=tmp_path / "raw", out=tmp_path / "ds", split="stratified",
                                   ratios=(0.5, 0.25, 0.25), progress=False))
    assert ds.total == len(rows)


def test_a_crop_larger_than_the_canvas_is_scaled_down_and_recorded(tree: Path, tmp_path: Path):
    Image.new("L", (40, 420), 60).save(tree / "10318.1.tiff/clase1/long.tiff")
    import_cells(tree, tmp_path / "raw", progress=False)
    row = next(r for r in csv.DictReader(open(tmp_path / "raw/metadata.csv", newline=""))
               if r["source_image"].endswith("long.tiff"))
    assert row["quality"] == "scaled" and float(row["scale"]) == pytest.approx(300 / 420, abs=1e-4)


def test_a_non_image_file_is_one_line_or_skipped_and_nothing_is_half_written(tree: Path, tmp_path: Path, capsys):
    (tree / "10512.61.tiff/clase18/notes.txt").write_text("checked by JL")
    out = tmp_path / "raw"
    assert main(["import-cells", str(tree), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar: the one error line
    assert err.startswith("chromosomenet import-cells: error: ") and "notes.txt" in err and "--on-error skip" in err
    assert not out.exists()
    assert main(["import-cells", str(tree), str(out), "--on-error", "skip"]) == 0
    assert "notes.txt" in capsys.readouterr().out and (out / "metadata.csv").exists()
    assert main(["import-cells", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
