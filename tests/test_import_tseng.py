"""Tseng VOC release → paper raw layout, on a tiny real fixture (3 metaphases, 139 boxes)."""
from __future__ import annotations

import csv
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from skimage.filters import threshold_otsu

from chromosomenet import labels
from chromosomenet.data.release import case_id_of
from chromosomenet.errors import BadInputError
from chromosomenet.importers.tseng import COLUMNS, import_tseng

FIXTURE = Path(__file__).parent / "fixtures" / "tseng"
ROOT = FIXTURE / "24_chromosomes_object"
STEMS = ("103181", "103182", "1051261")


def voc_objects(stem: str, root: Path = ROOT) -> list[tuple[str, tuple[int, int, int, int]]]:
    tree = ET.parse(root / "annotations" / f"{stem}.xml").getroot()
    return [(o.findtext("name"), tuple(int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")))
            for o in tree.iter("object")]


def gray(stem: str) -> np.ndarray:
    return np.asarray(Image.open(ROOT / "JEPG" / f"{stem}.jpg").convert("L"))


def overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "metadata.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def out_png(out: Path, stem: str, k: int, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / str(labels.id_of_denver_label(name)) / f"{stem}_{k:02d}.png"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imp") / "raw"
    report = import_tseng(FIXTURE, out, workers=1, separate=False, progress=False)  # each box on its own
    assert report.n_images == 3 and report.n_instances == 139 and not report.skipped
    assert sum(report.per_class.values()) == 139 and report.per_class["18"] == 7  # trisomy 18 cell
    return out


def test_every_object_becomes_one_png_in_its_class_folder(imported: Path) -> None:
    expected = {f"{labels.id_of_denver_label(n)}/{s}_{k:02d}.png"
                for s in STEMS for k, (n, _) in enumerate(voc_objects(s))}
    on_disk = {p.relative_to(imported).as_posix() for p in imported.glob("*/*.png")}
    assert on_disk == expected
    assert sorted(p.name for p in imported.iterdir() if p.is_dir()) == sorted(str(i) for i in range(24))
    for rel in expected:
        with Image.open(imported / rel) as im:
            assert (im.mode, im.size) == ("L", (300, 300))


def test_metadata_columns_rows_cases_and_karyotypes(imported: Path) -> None:
    with (imported / "metadata.csv").open(newline="") as f:
        assert next(csv.reader(f)) == list(COLUMNS)
    rows = read_rows(imported)
    files = [r["file"] for r in rows]
    assert files == sorted(files) and len(set(files)) == len(files) == 139
    by_file = {r["file"]: r for r in rows}
    first = by_file["0/103181_00.png"]  # object 0 of 103181 is A1 at (400, 626, 529, 760)
    assert (first["label"], first["name"], first["case_id"], first["cell_id"]) == ("0", "1", "10318", "103181")
    assert first["source_image"] == "24_chromosomes_object/JEPG/103181.jpg"
    assert [first[c] for c in ("xmin", "ymin", "xmax", "ymax", "scale")] == ["400", "626", "529", "760", "1.0"]
    for r in rows:
        normal = r["cell_id"] != "1051261"
        assert r["case_id"] == ("10318" if normal else "105126")
        assert (r["chromosome_count"], r["karyotype_note"], r["karyotype_type"]) == (
            ("46", "", "normal") if normal else ("47", "18", "numerical"))
        assert r["name"] == labels.NAMES[int(r["label"])] and r["file"].startswith(f"{r['label']}/")
        assert r["quality"] == "ok" or set(r["quality"].split(";")) <= {"separated", "overlap", "merged",
                                                                           "low_fill", "empty"}
        assert r["split"] == ("train" if normal else "test")  # the release's train.txt / test.txt


def test_separate_cuts_merged_instances_and_says_so(imported: Path, tmp_path: Path) -> None:
    report = import_tseng(FIXTURE, tmp_path / "sep", workers=1, progress=False)  # separating is the default
    before = {r["file"]: r["quality"].split(";") for r in read_rows(imported)}
    after = {r["file"]: r["quality"].split(";") for r in read_rows(tmp_path / "sep")}
    assert after.keys() == before.keys() and report.n_instances == 139
    assert sum("merged" in q for q in after.values()) <= 0.5 * sum("merged" in q for q in before.values())
    assert report.quality["separated"] == sum("separated" in q for q in after.values()) >= 20
    assert report.quality["merged"] == sum("merged" in q for q in after.values())
    assert "separated" in report.summary() and not any("separated" in q for q in before.values())


def test_split_files_are_optional_and_must_not_contradict(src_copy: Path, tmp_path: Path) -> None:
    (src_copy / "train.txt").unlink()
    (src_copy / "test.txt").unlink()
    import_tseng(src_copy, tmp_path / "a", cells=["103181"], workers=1, progress=False)
    rows = read_rows(tmp_path / "a")
    assert {r["split"] for r in rows} == {""}
    report = import_tseng(FIXTURE, tmp_path / "c", workers=1, progress=False)
    assert "release split (metaphases): test 1, train 2" in report.summary()
    (src_copy / "train.txt").write_text("103181\n1051261\n")
    (src_copy / "test.txt").write_text("1051261.jpg\n")
    with pytest.raises(BadInputError, match=r"test.txt.*line 1: 1051261 is listed in both"):
        import_tseng(src_copy, tmp_path / "b", workers=1, progress=False)
    assert not (tmp_path / "b").exists()


def test_case_id_rule() -> None:
    assert case_id_of("1050761") == "105076"
    assert case_id_of("1050213_1") == "105021"
    assert case_id_of("103182") == "10318"
    assert case_id_of("unknow010") == case_id_of("unknow019") == "unknown"


def test_lone_boxes_are_copied_unscaled_centred_on_white(imported: Path) -> None:
    checked = 0
    for stem in STEMS:
        g = gray(stem)
        thr = threshold_otsu(g)
        objects = voc_objects(stem)
        for k, (name, box) in enumerate(objects):
            if any(overlaps(box, b) for j, (_, b) in enumerate(objects) if j != k):
                continue
            x0, y0, x1, y1 = box
            src = g[y0:y1, x0:x1]
            out = out_png(imported, stem, k, name)
            ox, oy = (300 - src.shape[1]) // 2, (300 - src.shape[0]) // 2
            inside = out[oy:oy + src.shape[0], ox:ox + src.shape[1]]
            rest = out.copy()
            rest[oy:oy + src.shape[0], ox:ox + src.shape[1]] = 255
            assert (rest == 255).all(), f"{stem}_{k:02d}: ink outside the centred box"
            # every pixel is either masked out (exactly white) or the untouched source grey
            assert ((inside == 255) | (inside == src)).all(), f"{stem}_{k:02d}"
            dark_out, dark_src = int((inside < thr).sum()), int((src < thr).sum())
            assert abs(dark_out - dark_src) <= 0.05 * dark_src, f"{stem}_{k:02d}: {dark_out} vs {dark_src}"
            assert (inside == 255).mean() > 0.2, f"{stem}_{k:02d}: background not masked"
            checked += 1
    assert checked >= 15


def test_overlapping_neighbour_is_removed(imported: Path) -> None:
    objects = voc_objects("103181")
    (b5, box), (_, d15) = objects[8], objects[28]  # B5 beside a D15 whose box cuts into it
    assert (b5, objects[28][0]) == ("B5", "D15") and overlaps(box, d15)
    g = gray("103181")
    thr = threshold_otsu(g)
    raw_dark = int((g[box[1]:box[3], box[0]:box[2]] < thr).sum())
    out_dark = int((out_png(imported, "103181", 8, b5) < thr).sum())
    assert out_dark < 0.9 * raw_dark


def test_two_workers_give_identical_bytes(imported: Path, tmp_path: Path) -> None:
    report = import_tseng(FIXTURE, tmp_path / "w2", workers=2, separate=False, progress=False)
    assert report.workers == 2
    files = sorted(p.relative_to(imported) for p in imported.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "w2") for p in (tmp_path / "w2").rglob("*") if p.is_file())
    for rel in files:
        assert (imported / rel).read_bytes() == (tmp_path / "w2" / rel).read_bytes(), rel


def test_small_canvas_scales_down_and_records_it(tmp_path: Path) -> None:
    report = import_tseng(FIXTURE, tmp_path / "c", cells=["103181"], canvas=100, progress=False)
    rows = read_rows(tmp_path / "c")
    scaled = [r for r in rows if "scaled" in r["quality"]]
    big = [b for _, b in voc_objects("103181") if max(b[2] - b[0], b[3] - b[1]) > 100]
    assert len(scaled) == len(big) == report.n_scaled > 0
    assert all(float(r["scale"]) < 1 for r in scaled)
    assert all(r["scale"] == "1.0" for r in rows if r not in scaled)
    with Image.open(tmp_path / "c" / scaled[0]["file"]) as im:
        assert im.size == (100, 100)


def test_cells_selects_and_rejects_unknown_stems(tmp_path: Path) -> None:
    report = import_tseng(FIXTURE, tmp_path / "one", cells=["1051261"], progress=False)
    assert report.n_images == 1 and {r["cell_id"] for r in read_rows(tmp_path / "one")} == {"1051261"}
    with pytest.raises(BadInputError, match="nope42"):
        import_tseng(FIXTURE, tmp_path / "none", cells=["1051261", "nope42"], progress=False)
    assert not (tmp_path / "none").exists()


# --- bad input: each mutation of a copy of the fixture → (file named in the error, instances
# imported with on_error="skip")

def _set_first(tag: str, value: str) -> Callable[[Path], Path]:
    def mutate(src: Path) -> Path:
        xml = src / "24_chromosomes_object" / "annotations" / "103182.xml"
        tree = ET.parse(xml)
        tree.getroot().find(f"object/{tag}").text = value
        tree.write(xml)
        return xml
    return mutate


def _truncate_jpeg(src: Path) -> Path:
    jpg = src / "24_chromosomes_object" / "JEPG" / "103182.jpg"
    jpg.write_bytes(jpg.read_bytes()[:20000])
    return jpg


N_103182 = len(voc_objects("103182"))
BAD_INPUTS = {
    "unknown class": (_set_first("name", "Q9"), "Q9", 139 - 1),
    "box outside image": (_set_first("bndbox/xmax", "5000"), "outside", 139 - 1),
    "truncated jpeg": (_truncate_jpeg, "cannot be decoded", 139 - N_103182),
}


@pytest.fixture
def src_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(FIXTURE, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # the fixture may be checked out read-only
    return dst


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_fails_atomically_or_is_skipped(kind: str, src_copy: Path, tmp_path: Path) -> None:
    mutate, words, n_skip_mode = BAD_INPUTS[kind]
    bad_file = mutate(src_copy)
    with pytest.raises(BadInputError, match=words) as err:
        import_tseng(src_copy, tmp_path / "fresh", workers=2, progress=False)
    assert str(bad_file) in str(err.value)
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no staged leftovers either

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("old")
    with pytest.raises(BadInputError):
        import_tseng(src_copy, existing, overwrite=True, workers=1, progress=False)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]

    report = import_tseng(src_copy, tmp_path / "skipped", on_error="skip", workers=2, progress=False)
    assert report.n_instances == n_skip_mode == len(read_rows(tmp_path / "skipped"))
    assert len(report.skipped) == 1 and report.skipped[0][0] == str(bad_file)
    assert str(bad_file) in report.summary()


def test_release_layout_and_pairing_errors(src_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        import_tseng(tmp_path / "nowhere", tmp_path / "o", progress=False)
    (src_copy / "24_chromosomes_object" / "JEPG" / "103181.jpg").unlink()
    orphan = src_copy / "24_chromosomes_object" / "annotations" / "103181.xml"
    with pytest.raises(BadInputError, match="annotation has no image") as err:
        import_tseng(src_copy, tmp_path / "o", progress=False)
    assert str(orphan) in str(err.value)
    report = import_tseng(src_copy, tmp_path / "o", on_error="skip", progress=False)
    assert report.n_images == 2 and report.skipped[0][0] == str(orphan)
    shutil.rmtree(src_copy / "24_chromosomes_object" / "annotations")
    with pytest.raises(BadInputError, match="24_chromosomes_object") as err:
        import_tseng(src_copy, tmp_path / "o2", progress=False)
    assert "annotations" in str(err.value)
    assert not (tmp_path / "o2").exists()
