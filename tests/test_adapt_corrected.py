"""`adapt` from what a lab has after correcting the calls (issue 34): karyotype's VOC boxes and calls tables,
VOC files beside their images, a cell's call.csv; rehearsal on the shipped pack of Tseng cells. Every file here
is made in the test from the embedded sample by the suite's own verbs; the technologist's corrections are
written the way a person would (a label changed in the table, a name changed in the VOC file)."""
from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import chromosomenet
from chromosomenet import labels
from chromosomenet.apps.cli import main
from chromosomenet.data.loading import load_splits, with_rehearsal
from chromosomenet.errors import BadInputError
from chromosomenet.importers.corrected import import_corrected
from chromosomenet.models import shipped
from chromosomenet.pipeline.predict import Predictor, load_classifier, predict_cell
from chromosomenet.samples import rehearsal_dir

STEMS = ("1050161", "1053732", "103181")  # the shipped model gets 3, 2 and 0 of their chromosomes wrong


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def truth(stem: str) -> list[str]:
    """The sample's annotated class of each object, as names 1 … 22, X, Y."""
    root = ET.parse(chromosomenet.sample_metaphases_dir() / f"{stem}.xml").getroot()
    return [labels.NAMES[labels.id_of_denver_label(o.findtext("name"))] for o in root.iter("object")]


@pytest.fixture(scope="module")
def karyotyped(tmp_path_factory) -> Path:
    """Three sample metaphases karyotyped from their boxes (karyotype --metaphase --boxes): OUT/boxes, OUT/calls."""
    root = tmp_path_factory.mktemp("lab")
    images = root / "microscope"
    images.mkdir()
    for s in STEMS:
        shutil.copyfile(chromosomenet.sample_metaphases_dir() / f"{s}.jpg", images / f"{s}.jpg")
    out = root / "calls"
    assert main(["karyotype", "--metaphase", str(images), "--boxes", str(chromosomenet.sample_metaphases_dir()),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture
def corrected(karyotyped: Path, tmp_path: Path) -> Path:
    """A copy of the karyotype output, every call set right as a technologist would: metaphase 1 in the
    table, metaphase 2 in the VOC file, metaphase 3 left as called."""
    out = tmp_path / "calls"
    shutil.copytree(karyotyped, out)
    rows = read_csv(out / "calls" / f"{STEMS[0]}.csv")
    for r, t in zip(rows, truth(STEMS[0])):
        r["label"] = t
    write_csv(out / "calls" / f"{STEMS[0]}.csv", rows)
    xml = out / "boxes" / f"{STEMS[1]}.xml"
    tree = ET.parse(xml)
    for o, t in zip(tree.getroot().iter("object"), truth(STEMS[1])):
        o.find("name").text = t
    tree.write(xml)
    return out


def test_karyotype_writes_what_adapt_reads_back(karyotyped: Path):
    root = ET.parse(karyotyped / "boxes" / f"{STEMS[0]}.xml").getroot()
    assert Path(root.findtext("path")).is_file() and Path(root.findtext("path")).name == f"{STEMS[0]}.jpg"
    made = json.loads((karyotyped / "calls" / f"{STEMS[0]}.json").read_text())
    assert made["source"] == root.findtext("path")
    assert [c["label"] for c in made["chromosomes"]] == [o.findtext("name") for o in root.iter("object")]


def test_corrections_from_the_table_and_from_the_boxes_both_land(corrected: Path, karyotyped: Path, tmp_path: Path):
    report = import_corrected([corrected], tmp_path / "raw")
    rows = read_csv(tmp_path / "raw" / "metadata.csv")
    by_cell = {s: sorted(((r["file"], r["name"]) for r in rows if r["cell_id"] == s)) for s in STEMS}
    for s in STEMS[:2]:  # the corrected metaphases hold the annotated classes, object by object
        want = sorted((f"{labels.id_of(t)}/{s}_{k:02d}.png", t) for k, t in enumerate(truth(s)))
        assert by_cell[s] == want
    called = [r["label"] for r in read_csv(karyotyped / "calls" / f"{STEMS[2]}.csv")]
    assert sorted(n for _, n in by_cell[STEMS[2]]) == sorted(called)  # uncorrected: as called
    wrong = sum(sum(c != t for c, t in zip((r["label"] for r in read_csv(karyotyped / "calls" / f"{s}.csv")), truth(s)))
                for s in STEMS[:2])
    assert report.corrections == wrong > 0 and report.cells == 3 and report.instances == len(rows)
    assert all((tmp_path / "raw" / r["file"]).is_file() for r in rows)
    assert {r["case_id"] for r in rows} == set(STEMS)  # a folder of images: each metaphase its own case


def test_a_row_marked_as_no_chromosome_is_left_out(corrected: Path, tmp_path: Path):
    table = corrected / "calls" / f"{STEMS[2]}.csv"
    rows = read_csv(table)
    rows[3]["label"] = "-"
    write_csv(table, rows)
    report = import_corrected([corrected], tmp_path / "raw")
    kept = [r for r in read_csv(tmp_path / "raw" / "metadata.csv") if r["cell_id"] == STEMS[2]]
    assert report.left_out == 1 and len(kept) == len(rows) - 1
    assert not any(r["file"].endswith(f"{STEMS[2]}_03.png") for r in kept)


def test_the_same_chromosome_corrected_two_ways_is_refused(corrected: Path, tmp_path: Path):
    table, xml = corrected / "calls" / f"{STEMS[2]}.csv", corrected / "boxes" / f"{STEMS[2]}.xml"
    rows = read_csv(table)
    a, b = [n for n in labels.NAMES if n != rows[4]["label"]][:2]
    rows[4]["label"] = a
    write_csv(table, rows)
    tree = ET.parse(xml)
    list(tree.getroot().iter("object"))[4].find("name").text = b
    tree.write(xml)
    with pytest.raises(BadInputError, match=f"chromosome {STEMS[2]}_04: the table says '{a}', the boxes say '{b}'") as e:
        import_corrected([corrected], tmp_path / "raw")
    assert str(table) in str(e.value) and "one of them" in str(e.value)
    assert not (tmp_path / "raw").exists()  # nothing half-written


def test_moved_images_are_found_with_images_or_named(corrected: Path, tmp_path: Path):
    elsewhere = tmp_path / "archive"
    shutil.copytree(Path(ET.parse(corrected / "boxes" / f"{STEMS[0]}.xml").getroot().findtext("path")).parent, elsewhere)
    for xml in (corrected / "boxes").glob("*.xml"):  # as if the microscope folder were moved
        xml.write_text(xml.read_text().replace("<path>", "<path>/gone"))
    with pytest.raises(BadInputError, match="image was not found") as e:
        import_corrected([corrected], tmp_path / "raw")
    assert "--images" in str(e.value) and ".xml" in str(e.value)
    assert import_corrected([corrected], tmp_path / "raw", images=elsewhere).cells == 3


def test_voc_files_beside_their_images_are_enough(tmp_path: Path):
    """LabelImg's folder (or the Space's download): image + VOC named by the classes, no table."""
    lab = tmp_path / "labelimg"
    lab.mkdir()
    for s in STEMS[:2]:
        shutil.copyfile(chromosomenet.sample_metaphases_dir() / f"{s}.jpg", lab / f"{s}.jpg")
        shutil.copyfile(chromosomenet.sample_metaphases_dir() / f"{s}.xml", lab / f"{s}.xml")  # Denver names
    report = import_corrected([lab], tmp_path / "raw")
    rows = read_csv(tmp_path / "raw" / "metadata.csv")
    assert report.cells == 2 and sorted(r["name"] for r in rows) == sorted(truth(STEMS[0]) + truth(STEMS[1]))


def test_a_cells_call_csv_from_karyotype_images(tmp_path: Path):
    cell = tmp_path / "cell"
    src = [r for r in read_csv(chromosomenet.sample_dir() / "metadata.csv") if r["cell_id"] == STEMS[0]]
    cell.mkdir()
    for r in src:
        shutil.copyfile(chromosomenet.sample_dir() / r["file"], cell / Path(r["file"]).name)
    assert main(["karyotype", "--images", str(cell), "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "call.csv")
    right = {Path(r["file"]).name: r["name"] for r in src}
    for r in rows:
        r["label"] = right[r["id"]]
    write_csv(tmp_path / "out" / "call.csv", rows)
    import_corrected([tmp_path / "out"], tmp_path / "raw")
    got = read_csv(tmp_path / "raw" / "metadata.csv")
    assert sorted(r["name"] for r in got) == sorted(right.values()) and len(got) == len(src)


def test_rehearsal_adds_whole_tseng_cells_in_the_labs_columns():
    pack = load_splits(str(rehearsal_dir()), need=("train",))["train"]
    assert len(set(pack["cell_id"])) == 32 and len(pack) > 1400
    lab = load_splits(str(rehearsal_dir()), need=("train",))["train"].select(range(100))
    mixed = with_rehearsal(lab.remove_columns(["xmin"]) if "xmin" in lab.column_names else lab, pack, 200, seed=1)
    extra = mixed.select(range(100, len(mixed)))
    cells = set(extra["cell_id"])
    assert 200 <= len(extra) < 200 + 60  # whole cells until about 200 chromosomes
    assert all(pack["cell_id"].count(c) == extra["cell_id"].count(c) for c in cells)


def sample_accuracy(spec: str, cells) -> float:
    """Per chromosome, the sample's cells other than the three learnt from, each read as every path reads it."""
    model, cfg = load_classifier(spec)
    predictor = Predictor(model, cfg)
    right = n = 0
    for cell, (canvases, y) in cells.items():
        if cell not in STEMS:
            right += int((predict_cell(predictor, canvases)[0].argmax(1) == y).sum())
            n += len(y)
    return right / n


def test_adapt_learns_from_corrected_karyotypes_and_every_verb_takes_it(corrected: Path, tmp_path: Path, capsys,
                                                                        sample_cells):
    out = tmp_path / "lab_model"
    assert main(["adapt", str(corrected), str(out), "--epochs", "2"]) == 0
    assert "adapted in 2 epochs" in capsys.readouterr().out
    facts = json.loads((out / "adapt.json").read_text())
    assert facts["kind"] == "corrected karyotypes" and facts["train_cells"] == 2 and facts["validation_cells"] == 1
    assert facts["rehearsal"].startswith("the shipped pack") and facts["corrections"] > 0
    card = (out / "README.md").read_text()
    assert "## Adaptation" in card and str(corrected) in card and "rehearsal" in card
    report = json.loads((out / "train_report.json").read_text())
    assert report["facts"]["n_train"] > facts["lab_chromosomes"]  # the lab's own plus the rehearsal
    # every verb that takes a classifier takes the adapted folder
    images = Path(ET.parse(corrected / "boxes" / f"{STEMS[0]}.xml").getroot().findtext("path")).parent
    assert main(["karyotype", "--run", str(out), "--metaphase", str(images / f"{STEMS[0]}.jpg"), "--boxes",
                 str(chromosomenet.sample_metaphases_dir()), "--out", str(tmp_path / "k")]) == 0
    called = read_csv(tmp_path / "k" / "calls" / f"{STEMS[0]}.csv")
    assert np.mean([r["label"] == t for r, t in zip(called, truth(STEMS[0]))]) > 0.85
    # rehearsal keeps the training lab: the sample's other 19 cells within 1.5 points of the shipped model
    assert sample_accuracy(f"local-dir:{out}", sample_cells) >= sample_accuracy(shipped.default_spec(), sample_cells) - 0.015
    assert main(["evaluate", f"local-dir:{out}", "--data", str(out.parent / "lab_model-data" / "dataset"),
                 "--split", "validation", "--out", str(tmp_path / "e")]) == 0
