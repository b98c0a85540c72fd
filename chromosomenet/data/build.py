"""Raw tree → manifest.csv (fixed split) → Parquet shards + dataset card, in one atomic folder.

    OUT/manifest.csv                     file, label, group, split, sha256, width, height
    OUT/data/{split}-NNNNN-of-NNNNN.parquet
    OUT/README.md                        dataset card (YAML configs + dataset_info; body)
    OUT/build_report.json                skipped files, duplicates, split policy, class balance
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import datasets

from .. import labels
from ..errors import DatasetError
from ..fsutil import atomic_write_text, staged_dir
from .builder import ChromosomeNet
from .buildinfo import BuildConfig, BuildReport
from .card import write_card
from .official import metadata_split
from .scan import ScanResult, scan_tree
from .splits import SPLITS, assign_splits

MANIFEST_COLUMNS = ("file", "label", "group", "split", "sha256", "width", "height")


def _groups(scan: ScanResult, cfg: BuildConfig) -> list[str] | None:
    """The group of each record, or None when metadata.csv has no such column.

    A stratified split records groups where known; the others need every file's group.
    """
    if cfg.group_by not in scan.metadata.types:
        return None
    groups = [scan.metadata.get(r.file)[cfg.group_by] for r in scan.records]
    missing = [r.file for r, g in zip(scan.records, groups) if g is None]
    if missing and cfg.split == "stratified":
        return [str(g) if g is not None else "" for g in groups]
    if missing:
        raise DatasetError(f"{scan.root / 'metadata.csv'}: {len(missing)} file(s) have no {cfg.group_by!r} "
                           f"(first: {missing[0]}); fill it in or use --split stratified")
    return [str(g) for g in groups]


GROUP_LIKE = ("group", "cell", "cell_id", "case", "case_id", "patient", "patient_id", "individual", "slide")


def _ungrouped_warning(scan: ScanResult, cfg: BuildConfig) -> list[str]:
    """One sentence when `auto` fell back to a per-instance split beside a column that names groups."""
    found = [c for c in scan.metadata.types if c.lower() in GROUP_LIKE and c != cfg.group_by]
    if not found:
        return []
    col = found[0]
    return [f"metadata.csv has a column {col!r} that looks like a group, but there is no {cfg.group_by!r} column: "
            f"the split is per instance (stratified), so one {col}'s images can sit in train and test; "
            f"rebuild with --group-by {col} for a leakage-free split"]


def _manifest_csv(scan: ScanResult, groups: list[str] | None, splits: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_COLUMNS)
    for i, r in enumerate(scan.records):
        w.writerow([r.file, r.label, groups[i] if groups else "", splits[i], r.sha256, r.width, r.height])
    return buf.getvalue()


def _pack_parquet(stage: Path, scan: ScanResult, cfg: BuildConfig) -> datasets.DatasetInfo:
    """Run the builder into a scratch cache, then move its shards to data/{split}-i-of-n.parquet."""
    cache = stage / ".cache"
    builder = ChromosomeNet(cache_dir=str(cache), manifest=str(stage / "manifest.csv"),
                            raw_dir=str(scan.root.resolve()), canvas=cfg.canvas,
                            metadata_types=scan.metadata.types)
    prepared = cache / "prepared"
    with _quiet_progress(cfg.progress):
        builder.download_and_prepare(output_dir=str(prepared), file_format="parquet",
                                     max_shard_size=cfg.max_shard_size)
    (stage / "data").mkdir()
    for split in builder.info.splits:
        shards = sorted(prepared.glob(f"*-{split}.parquet")) or sorted(prepared.glob(f"*-{split}-*.parquet"))
        for i, shard in enumerate(shards):
            shard.rename(stage / "data" / f"{split}-{i:05d}-of-{len(shards):05d}.parquet")
    info = builder.info
    info.download_size = sum(p.stat().st_size for p in (stage / "data").iterdir())
    shutil.rmtree(cache)
    return info


class _quiet_progress:
    """datasets' own bars on or off with ours (we show one per stage anyway)."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        self.was = datasets.is_progress_bar_enabled()
        (datasets.enable_progress_bars if self.on else datasets.disable_progress_bars)()

    def __exit__(self, *exc):
        (datasets.enable_progress_bars if self.was else datasets.disable_progress_bars)()


def build_dataset(cfg: BuildConfig) -> BuildReport:
    """Scan, split, pack and describe; the output folder appears only when all of it succeeded."""
    start = time.perf_counter()
    scan = scan_tree(cfg.raw, on_error=cfg.on_error, canvas=cfg.canvas, workers=cfg.workers,
                     progress=cfg.progress)
    groups = _groups(scan, cfg)
    policy = cfg.split if cfg.split != "auto" else ("grouped" if groups else "stratified")
    warnings = _ungrouped_warning(scan, cfg) if cfg.split == "auto" and groups is None else []
    notes = (["class folders 1..24 read as one-based class numbers (23 = X, 24 = Y)"]
             if scan.layout == "one-based" else [])
    y = [r.label for r in scan.records]
    if policy == "from-metadata":
        splits, more_notes, more_warnings = metadata_split(scan, y, groups, cfg.group_by, cfg.ratios, cfg.seed)
        notes, warnings = notes + more_notes, warnings + more_warnings
    else:
        splits = assign_splits(y, groups, policy, cfg.ratios, cfg.seed)
    manifest = _manifest_csv(scan, groups, splits)
    counts = {s: [0] * labels.NUM_CLASSES for s in SPLITS}
    for label, s in zip(y, splits):
        counts[s][label] += 1
    # a split may stay empty only where its ratio asks for none (adapt's train + validation, a rehearsal pack)
    empty = [s for s, r in zip(SPLITS, cfg.ratios) if not sum(counts[s]) and r > 0]
    if empty and policy == "from-metadata":
        raise DatasetError(f"{cfg.raw / 'metadata.csv'}: its split column names no {' or '.join(empty)} files; "
                           f"mark some, or use --split grouped")
    if empty:
        raise DatasetError(f"{cfg.raw}: split {', '.join(empty)} would be empty ({len(y)} images, ratios "
                           f"{'/'.join(f'{r:g}' for r in cfg.ratios)}); add images or change --ratios")
    n_groups = {s: len({g for g, t in zip(groups, splits) if t == s and g}) for s in SPLITS} if groups else {}
    report = BuildReport(str(cfg.out), policy, cfg.seed, tuple(cfg.ratios),
                         hashlib.sha256(manifest.encode()).hexdigest(), counts,
                         scan.skipped, scan.duplicates, n_groups, warnings, notes)
    with staged_dir(cfg.out, cfg.overwrite) as stage:
        atomic_write_text(stage / "manifest.csv", manifest)
        info = _pack_parquet(stage, scan, cfg)
        write_card(stage, info, report, scan, cfg)
        report.seconds = time.perf_counter() - start
        atomic_write_text(stage / "build_report.json", json.dumps(asdict(report), indent=2) + "\n")
    return report
