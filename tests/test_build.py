"""Build → Parquet + card → load_dataset round trip, determinism, split policies, info, push."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from conftest import read_csv
from datasets import load_dataset
from huggingface_hub import DatasetCard, HfApi

import chromosomenet
from chromosomenet import NAMES
from chromosomenet.apps.cli import main
from chromosomenet.data.build import MANIFEST_COLUMNS, BuildConfig, build_dataset
from chromosomenet.data.publish import dataset_summary, push_dataset
from chromosomenet.data.splits import SPLITS

ROOT = Path(__file__).resolve().parents[1]


def test_load_dataset_round_trip(sample_build: Path):
    ds = load_dataset(str(sample_build))
    assert list(ds) == list(SPLITS)
    assert ds["train"].features["label"].names == list(NAMES)
    manifest = read_csv(sample_build / "manifest.csv")
    assert list(manifest[0]) == list(MANIFEST_COLUMNS)
    assert {s: ds[s].num_rows for s in SPLITS} == dict(Counter(r["split"] for r in manifest))
    by_file = {r["file"]: r for r in manifest}
    for row in ds["test"].select(range(5)):
        assert row["image"].size == (300, 300) and row["image"].mode == "L"
        assert str(row["label"]) == by_file[row["file"]]["label"]
        assert row["group"] == by_file[row["file"]]["group"] == row["case_id"]
    # all 24 classes reach train; the card's YAML names them in the paper's order
    assert set(ds["train"]["label"]) == set(range(24))
    card = DatasetCard.load(sample_build / "README.md").data.to_dict()
    names = next(f for f in card["dataset_info"]["features"] if f["name"] == "label")["dtype"]["class_label"]["names"]
    assert list(names.values()) == list(NAMES)
    assert {c["split"] for c in card["configs"][0]["data_files"]} == set(SPLITS)
    assert card["license"] == "cc-by-4.0"


def test_parquet_embeds_bytes_that_match_the_source(sample_build: Path):
    shard = next((sample_build / "data").glob("validation-00000-of-*.parquet"))
    table = pq.read_table(shard).to_pylist()
    assert table, "empty shard"
    first = table[0]
    assert first["image"]["bytes"] == (chromosomenet.sample_dir() / first["file"]).read_bytes()
    assert not Path(first["image"]["path"]).is_absolute()


def test_card_body_has_counts_policy_and_attribution(sample_build: Path):
    text = (sample_build / "README.md").read_text()
    for needle in ("## Splits", "**grouped** by `case_id`", "## Images per class and split", "| Y | G | 23 |", "### Source data",
                   "Tseng", "10.1038/s41597-023-02003-7", "load_dataset(", "## Citation"):
        assert needle in text, needle


def test_manifest_is_deterministic_and_seed_dependent(sample_build: Path, tmp_path: Path):
    again = tmp_path / "again"
    build_dataset(BuildConfig(raw=chromosomenet.sample_dir(), out=again, progress=False, workers=2))
    assert (again / "manifest.csv").read_bytes() == (sample_build / "manifest.csv").read_bytes()
    other = tmp_path / "seed1"
    build_dataset(BuildConfig(raw=chromosomenet.sample_dir(), out=other, seed=1, progress=False))
    assert (other / "manifest.csv").read_bytes() != (sample_build / "manifest.csv").read_bytes()


def test_grouped_split_keeps_each_case_in_one_split(sample_build: Path):
    rows = read_csv(sample_build / "manifest.csv")
    splits_of = {}
    for r in rows:
        splits_of.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert {s for ss in splits_of.values() for s in ss} == set(SPLITS)
    assert json.loads((sample_build / "build_report.json").read_text())["policy"] == "grouped"


def test_stratified_split_within_one_instance_per_class(tmp_path: Path):
    out = tmp_path / "strat"
    report = build_dataset(BuildConfig(raw=chromosomenet.sample_dir(), out=out, split="stratified",
                                       progress=False))
    assert report.policy == "stratified"
    per_class = Counter(int(r["label"]) for r in read_csv(out / "manifest.csv"))
    for split, ratio in zip(SPLITS, (0.8, 0.1, 0.1)):
        for c in range(24):
            assert abs(report.counts[split][c] - per_class[c] * ratio) <= 1, (split, c)


def test_name_layout_gives_same_labels(small_tree: Path, tmp_path: Path):
    for i, name in enumerate(NAMES):
        (small_tree / str(i)).rename(small_tree / f"tmp{i}")
    for i, name in enumerate(NAMES):
        (small_tree / f"tmp{i}").rename(small_tree / name)
    meta = (small_tree / "metadata.csv").read_text().splitlines()
    renamed = [meta[0]] + [NAMES[int(ln.split("/", 1)[0])] + "/" + ln.split("/", 1)[1] for ln in meta[1:]]
    (small_tree / "metadata.csv").write_text("\n".join(renamed) + "\n")
    out = tmp_path / "names"
    build_dataset(BuildConfig(raw=small_tree, out=out, split="stratified", progress=False))
    for r in read_csv(out / "manifest.csv"):
        assert NAMES[int(r["label"])] == r["file"].split("/")[0]
        assert r["group"]  # metadata followed the files


def test_info_cli_prints_summary(sample_build: Path, capsys):
    assert main(["info", str(sample_build)]) == 0
    out = capsys.readouterr().out
    assert "classes        24: 1 2 3" in out and "X Y" in out
    assert "split policy   grouped" in out
    assert f"manifest       sha256 {json.loads((sample_build / 'build_report.json').read_text())['manifest_sha256']}" in out
    n_test = sum(r["split"] == "test" for r in read_csv(sample_build / "manifest.csv"))
    assert f"test {n_test}" in out
    assert dataset_summary(sample_build) in out


def test_push_dataset_uploads_the_folder(sample_build: Path, monkeypatch):
    # Network boundary mocked: HfApi's two Hub calls are replaced; nothing leaves the machine.
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)) or "https://hub/commit/1")
    assert push_dataset(sample_build, "org/chromosomenet-sample") == "https://hub/commit/1"
    assert calls[0] == ("create", "org/chromosomenet-sample", {"repo_type": "dataset", "private": False, "exist_ok": True})
    upload = calls[1][1]
    assert upload["folder_path"] == str(sample_build) and upload["repo_type"] == "dataset"


def test_push_refuses_a_folder_that_is_not_a_build(tmp_path: Path, capsys):
    assert main(["push-dataset", str(tmp_path), "org/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err and "build-dataset" in err


def test_dataset_script_runs_standalone(small_tree: Path, tmp_path: Path):
    out = tmp_path / "script_out"
    proc = subprocess.run([sys.executable, str(ROOT / "dataset_script" / "chromosomenet.py"), str(small_tree),
                           str(out), "--split", "stratified", "--workers", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "split policy stratified" in proc.stdout
    assert load_dataset(str(out))["train"].features["label"].names == list(NAMES)


def test_outputs_are_readable_by_others(sample_build: Path):
    # temp files/folders start owner-only; published datasets must not stay that way
    assert sample_build.stat().st_mode & 0o005 == 0o005
    assert (sample_build / "README.md").stat().st_mode & 0o004
    assert (sample_build / "manifest.csv").stat().st_mode & 0o004


def _relabel_folders(tree: Path, name_of) -> None:
    """Rename class folders i → name_of(i) and rewrite metadata.csv's paths to match."""
    for i in range(24):
        (tree / str(i)).rename(tree / f"tmp{i}")
    for i in range(24):
        (tree / f"tmp{i}").rename(tree / name_of(i))
    meta = (tree / "metadata.csv").read_text().splitlines()
    (tree / "metadata.csv").write_text("\n".join(
        [meta[0]] + [name_of(int(ln.split("/", 1)[0])) + "/" + ln.split("/", 1)[1] for ln in meta[1:]]) + "\n")


def test_one_based_folders_1_to_24_are_read_and_said_so(small_tree: Path, tmp_path: Path):
    _relabel_folders(small_tree, lambda i: str(i + 1))  # 23 = X, 24 = Y, as some public sets ship them
    report = build_dataset(BuildConfig(raw=small_tree, out=tmp_path / "ds", split="stratified", progress=False))
    assert report.notes == ["class folders 1..24 read as one-based class numbers (23 = X, 24 = Y)"]
    for r in read_csv(tmp_path / "ds" / "manifest.csv"):
        assert int(r["label"]) == int(r["file"].split("/")[0]) - 1
    assert "one-based" in (tmp_path / "ds" / "README.md").read_text()
    assert json.loads((tmp_path / "ds" / "build_report.json").read_text())["notes"] == report.notes


def test_one_based_folders_mixed_with_another_layout_are_refused(small_tree: Path, tmp_path: Path, capsys):
    _relabel_folders(small_tree, lambda i: str(i + 1))
    (small_tree / "24").rename(small_tree / "Y")
    (small_tree / "1").rename(small_tree / "24")  # 24 beside X/Y-less names and a Y folder
    assert main(["build-dataset", str(small_tree), str(tmp_path / "ds")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mixes one-based folders (1..24) with Y" in err[0] and str(small_tree) in err[0]
    assert not (tmp_path / "ds").exists()


def test_auto_split_warns_when_a_group_like_column_is_not_used(small_tree: Path, tmp_path: Path, capsys):
    meta = (small_tree / "metadata.csv").read_text().replace("case_id", "patient", 1)
    (small_tree / "metadata.csv").write_text(meta)
    out = tmp_path / "ds"
    assert main(["build-dataset", str(small_tree), str(out)]) == 0
    err = capsys.readouterr().err
    assert "'patient' that looks like a group" in err and "--group-by patient" in err
    report = json.loads((out / "build_report.json").read_text())
    assert report["policy"] == "stratified" and len(report["warnings"]) == 1
    assert "--group-by patient" in (out / "README.md").read_text()
    # with the column named, the split is grouped and nothing is said
    assert main(["build-dataset", str(small_tree), str(tmp_path / "g"), "--group-by", "patient"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "g" / "build_report.json").read_text())["policy"] == "grouped"
