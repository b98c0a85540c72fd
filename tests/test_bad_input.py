"""Every bad input of a build: one clear line naming the file; skip vs fail; nothing half-written."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import read_csv
from PIL import Image

from chromosomenet.apps.cli import main
from chromosomenet.data.build import BuildConfig, build_dataset
from chromosomenet.data.images import decode
from chromosomenet.errors import BadInputError, DatasetError


def _build(raw: Path, out: Path, **kw):
    return build_dataset(BuildConfig(raw=raw, out=out, split="stratified", progress=False, **kw))


def _first_png(tree: Path, label: int = 0) -> Path:
    return sorted((tree / str(label)).glob("*.png"))[0]


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


CORRUPTIONS = {
    "truncated": (_truncate, "truncated or corrupt image"),
    "zero_bytes": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "text_as_png": (lambda p: p.write_text("not a picture\n"), "not an image file"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_bad_file_fails_or_is_skipped(small_tree: Path, tmp_path: Path, kind: str, capsys):
    corrupt, message = CORRUPTIONS[kind]
    bad = _first_png(small_tree, 5)
    corrupt(bad)
    out = tmp_path / "out"
    with pytest.raises(BadInputError) as err:
        _build(small_tree, out)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written
    # the CLI turns it into one line on stderr and a non-zero exit
    assert main(["build-dataset", str(small_tree), str(out), "--split", "stratified", "--workers", "1"]) == 2
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "%|" not in ln]  # no tqdm
    assert len(err_lines) == 1 and str(bad) in err_lines[0] and err_lines[0].startswith("chromosomenet")
    # skip: the rest is built and the bad file is listed
    report = _build(small_tree, out, on_error="skip")
    assert [p for p, _ in report.skipped] == [str(bad)]
    files = {r["file"] for r in read_csv(out / "manifest.csv")}
    assert bad.relative_to(small_tree).as_posix() not in files and len(files) == 239
    assert json.loads((out / "build_report.json").read_text())["skipped"][0][0] == str(bad)


def test_several_bad_files_are_all_named_in_one_run(small_tree: Path, tmp_path: Path, capsys):
    """A lab's tree with three bad files: one run names every one of them (a line each), not only the first."""
    bad = [_first_png(small_tree, 2), _first_png(small_tree, 5), _first_png(small_tree, 23)]
    for corrupt, p in zip((_truncate, lambda p: p.write_bytes(b""), lambda p: p.write_text("x\n")), bad):
        corrupt(p)
    out = tmp_path / "out"
    assert main(["build-dataset", str(small_tree), str(out), "--split", "stratified", "--workers", "1"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "%|" not in ln]
    assert lines[0].startswith("chromosomenet build-dataset: error: 3 bad files, nothing was written")
    assert "--on-error skip" in lines[0] and len(lines) == 4
    assert [ln.split(": ")[0] for ln in lines[1:]] == sorted(map(str, bad))  # in file order
    assert not out.exists()


def test_unknown_folder_and_stray_file(small_tree: Path, tmp_path: Path):
    (small_tree / "chr7").mkdir()
    shutil.copy(_first_png(small_tree), small_tree / "chr7" / "a.png")
    with pytest.raises(BadInputError, match="chr7: unknown class folder name"):
        _build(small_tree, tmp_path / "out")
    report = _build(small_tree, tmp_path / "out", on_error="skip")
    assert report.skipped[0][0].endswith("chr7") and report.total == 240
    shutil.rmtree(small_tree / "chr7")
    (small_tree / "3" / "notes.txt").write_text("hello")
    with pytest.raises(BadInputError, match=r"notes\.txt: not an image file in a class folder"):
        _build(small_tree, tmp_path / "out2", on_error="fail")


def test_empty_class_folder(small_tree: Path, tmp_path: Path):
    for p in (small_tree / "23").iterdir():
        p.unlink()
    with pytest.raises(BadInputError, match=r"23: empty class folder"):
        _build(small_tree, tmp_path / "out")


def test_ambiguous_and_missing_layout(tmp_path: Path, small_tree: Path):
    with pytest.raises(BadInputError, match="no class folders"):
        _build(tmp_path / "raw" / "0", tmp_path / "o1")  # a class folder, not a tree
    shutil.rmtree(small_tree / "0")
    shutil.rmtree(small_tree / "23")
    with pytest.raises(BadInputError, match="do not say whether they are class ids or names"):
        _build(small_tree, tmp_path / "o2")
    with pytest.raises(BadInputError, match="is not a folder"):
        _build(tmp_path / "nope", tmp_path / "o3")


def test_same_image_under_two_labels_lists_both(small_tree: Path, tmp_path: Path):
    src = _first_png(small_tree, 0)
    dst = small_tree / "22" / "copy.png"
    shutil.copy(src, dst)
    with pytest.raises(BadInputError) as err:
        _build(small_tree, tmp_path / "out")
    msg = str(err.value)
    assert "same image appears under different labels" in msg
    assert src.relative_to(small_tree).as_posix() in msg and "22/copy.png" in msg and "(class X)" in msg


def test_duplicates_within_a_label_kept_once(small_tree: Path, tmp_path: Path):
    src = _first_png(small_tree, 4)
    shutil.copy(src, small_tree / "4" / "zz_copy.png")
    report = _build(small_tree, tmp_path / "out")
    assert report.duplicates == [("4/zz_copy.png", src.relative_to(small_tree).as_posix())]
    assert report.total == 240


def _encode(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_conversion_rule_for_rgba_16bit_palette_and_small_images():
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    rgba.putpixel((10, 10), (0, 0, 0, 255))
    d = decode(_encode(rgba), "rgba.png")
    assert d.image.mode == "L" and d.image.getpixel((0, 0)) == 255 and d.image.getpixel((10, 10)) == 0
    assert not d.canonical
    deep = Image.fromarray(np.array([[65535, 257 * 100]] * 2, dtype=np.uint16))
    d = decode(_encode(deep), "deep.png")
    assert d.image.getpixel((149, 149)) == 255 and d.image.getpixel((150, 149)) == 100  # centred on canvas
    pal = Image.new("P", (300, 300))
    pal.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    assert decode(_encode(pal), "pal.png").image.getpixel((5, 5)) == round(0.299 * 255)  # ITU-R 601-2 luma
    small = Image.new("L", (20, 40), 7)
    d = decode(_encode(small), "small.png")
    assert (d.width, d.height) == (20, 40) and d.image.size == (300, 300)
    assert d.image.getpixel((140, 130)) == 7 and d.image.getpixel((139, 130)) == 255  # pasted unscaled


def test_converted_images_are_embedded_as_8bit_canvas(small_tree: Path, tmp_path: Path):
    target = _first_png(small_tree, 1)
    Image.open(target).convert("RGBA").save(target)
    out = tmp_path / "out"
    _build(small_tree, out)
    from datasets import load_dataset

    ds = load_dataset(str(out))
    rel = target.relative_to(small_tree).as_posix()
    row = next(r for s in ds for r in ds[s] if r["file"] == rel)
    assert row["image"].mode == "L" and row["image"].size == (300, 300)


def test_image_larger_than_canvas(small_tree: Path, tmp_path: Path):
    big = small_tree / "0" / "big.png"
    Image.new("L", (301, 120), 255).save(big)
    with pytest.raises(BadInputError, match=r"big\.png: image is 301x120, larger than the 300x300 canvas"):
        _build(small_tree, tmp_path / "out")


def test_existing_output_is_kept_on_failure(small_tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    _build(small_tree, out)
    before = (out / "manifest.csv").read_bytes()
    with pytest.raises(BadInputError, match="already exists"):
        _build(small_tree, out)
    _truncate(_first_png(small_tree, 2))
    with pytest.raises(BadInputError):
        _build(small_tree, out, overwrite=True)
    assert (out / "manifest.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_grouped_needs_groups_and_enough_of_them(small_tree: Path, tmp_path: Path):
    (small_tree / "metadata.csv").unlink()
    with pytest.raises(DatasetError, match="needs a group per file"):
        build_dataset(BuildConfig(raw=small_tree, out=tmp_path / "o", split="grouped", progress=False))
    assert build_dataset(BuildConfig(raw=small_tree, out=tmp_path / "o", progress=False)).policy == "stratified"


def test_bad_ratios_and_empty_split(small_tree: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="summing to 1"):
        _build(small_tree, tmp_path / "o", ratios=(0.8, 0.3, 0.1))
    with pytest.raises(DatasetError, match="would be empty"):
        _build(small_tree, tmp_path / "o", ratios=(0.98, 0.01, 0.01))
