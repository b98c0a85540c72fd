"""`--split from-metadata`: a release's own split, read from metadata.csv's `split` column."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import read_csv

from chromosomenet.apps.cli import main
from chromosomenet.data.build import BuildConfig, build_dataset


def _write_split(tree: Path, split_of) -> dict[str, str]:
    """Set the `split` column to ``split_of(row)`` (None: drop it) in metadata.csv; return file → value."""
    rows = read_csv(tree / "metadata.csv")
    for r in rows:
        r["split"] = split_of(r)
        if r["split"] is None:
            del r["split"]
    with open(tree / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return {r["file"]: r.get("split") for r in rows}


def _cases_by_size(tree: Path) -> list[str]:
    return [c for c, _ in Counter(r["case_id"] for r in read_csv(tree / "metadata.csv")).most_common()]


def _build(tree: Path, out: Path, capsys) -> tuple[dict, str, list[dict[str, str]], str]:
    """(build_report.json, card text, manifest rows, stderr) of a CLI build with --split from-metadata."""
    assert main(["build-dataset", str(tree), str(out), "--split", "from-metadata"]) == 0
    err = capsys.readouterr().err
    return (json.loads((out / "build_report.json").read_text()), (out / "README.md").read_text(),
            read_csv(out / "manifest.csv"), err)


def test_splits_follow_the_column_and_val_is_validation(small_tree: Path, tmp_path: Path, capsys):
    cases = _cases_by_size(small_tree)
    spellings = {"test": ("test", " TEST "), "validation": ("val", "Validation"), "train": ("train", "Train ")}
    expected = {}

    def split_of(r):
        s = "test" if r["case_id"] == cases[0] else "validation" if r["case_id"] == cases[1] else "train"
        expected[r["file"]] = s
        return spellings[s][len(expected) % 2]

    written = _write_split(small_tree, split_of)
    assert "val" in written.values() and " TEST " in written.values()
    report, card, manifest, err = _build(small_tree, tmp_path / "ds", capsys)
    assert {r["file"]: r["split"] for r in manifest} == expected
    assert report["policy"] == "from-metadata" and report["warnings"] == [] and report["notes"] == []
    assert "warning" not in err
    assert "**from the source's metadata**" in card and "`split` column of the raw tree's `metadata.csv`" in card


def test_missing_validation_is_carved_from_train_by_group(small_tree: Path, tmp_path: Path, capsys):
    test_cases = set(_cases_by_size(small_tree)[:2])
    written = _write_split(small_tree, lambda r: "test" if r["case_id"] in test_cases else "train")
    report, card, manifest, err = _build(small_tree, tmp_path / "ds", capsys)
    by_split: dict[str, set[str]] = {}
    for r in manifest:
        by_split.setdefault(r["split"], set()).add(r["group"])
    # test exactly as shipped; validation only from train, in whole cases
    assert {r["file"] for r in manifest if r["split"] == "test"} == {f for f, s in written.items() if s == "test"}
    assert by_split["validation"] and not by_split["validation"] & by_split["train"]
    assert by_split["test"] == test_cases
    n_val = sum(r["split"] == "validation" for r in manifest)
    n_train = sum(s == "train" for s in written.values())
    share = round(100 * len(by_split["validation"]) / (len(by_split["validation"]) + len(by_split["train"])))
    note = (f"validation carved from train by case_id ({share}% of train's groups, {n_val} of {n_train} images); "
            f"metadata.csv's split names no validation files")
    assert report["notes"] == [note] and report["warnings"] == [] and "warning" not in err
    assert f"Note: {note}." in card


def test_a_case_in_train_and_test_is_warned_about(small_tree: Path, tmp_path: Path, capsys):
    cases = _cases_by_size(small_tree)
    leaky, seen = cases[2], []

    def split_of(r):
        if r["case_id"] == leaky:
            seen.append(r["file"])
            return "test" if len(seen) == 1 else "train"  # one image of this case in test, the rest in train
        return "test" if r["case_id"] == cases[0] else "val" if r["case_id"] == cases[1] else "train"

    _write_split(small_tree, split_of)
    report, card, manifest, err = _build(small_tree, tmp_path / "ds", capsys)
    warning = (f"1 group(s) (case_id) have images in more than one split (first: {leaky} train+test): "
               f"metadata.csv's split leaks case_id across splits; use --split grouped for a leakage-free split")
    assert report["warnings"] == [warning]
    assert f"**Warning:** {warning}" in card and f"warning: {warning}" in err
    assert {r["split"] for r in manifest if r["group"] == leaky} == {"train", "test"}


def test_without_groups_validation_is_carved_per_instance_and_leakage_unchecked(small_tree: Path, tmp_path: Path):
    _write_split(small_tree, lambda r: "test" if r["file"].endswith("0.png") else "train")
    meta = (small_tree / "metadata.csv").read_text().replace("case_id", "case_ref", 1)
    (small_tree / "metadata.csv").write_text(meta)
    report = build_dataset(BuildConfig(raw=small_tree, out=tmp_path / "ds", split="from-metadata", progress=False))
    assert len(report.notes) == 2
    assert report.notes[0].startswith("validation carved from train per instance, stratified by class (")
    assert report.notes[1].startswith("leakage across splits could not be checked: metadata.csv has no 'case_id'")
    # validation share 0.1 / (0.8 + 0.1) of each class's train, to the instance
    for train, val in zip(report.counts["train"], report.counts["validation"]):
        assert val == round((train + val) / 9)
    assert sum(report.counts["validation"]) > 0


@pytest.mark.parametrize("bad, says", [
    (None, "metadata.csv: has no 'split' column"),
    ("dev", "metadata.csv: the 'split' of {file} is 'dev', not train, validation (val) or test"),
    ("  ", "metadata.csv: the 'split' of {file} is empty"),
])
def test_missing_column_or_bad_value_is_one_clear_line(small_tree: Path, tmp_path: Path, capsys, bad, says):
    files = sorted(r["file"] for r in read_csv(small_tree / "metadata.csv"))
    victim = files[len(files) // 2]
    _write_split(small_tree, lambda r: bad if bad is None or r["file"] == victim else "train")
    out = tmp_path / "ds"
    assert main(["build-dataset", str(small_tree), str(out), "--split", "from-metadata"]) != 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("scan:")]  # tqdm
    assert len(err) == 1 and err[0].startswith("chromosomenet build-dataset: error: "), err
    assert str(small_tree / says.format(file=victim)) in err[0]
    assert "fill the split column" in err[0] and "--split grouped" in err[0]
    assert not out.exists()
