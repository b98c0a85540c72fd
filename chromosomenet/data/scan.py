"""Raw tree (the paper's layout) → validated, hashed, de-duplicated records.

A raw tree has one folder per class, named by class id (``0``…``23``, the paper's layout) or by
chromosome name (``1``…``22``, ``X``, ``Y``), and optionally ``metadata.csv`` (a ``file`` column
with paths relative to the tree, plus any per-file columns, e.g. ``case_id``).
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import labels
from ..errors import BadFilesError, BadInputError, DatasetError
from .images import CANVAS, IMAGE_SUFFIXES, decode

ON_ERROR = ("fail", "skip")
_IDS = {str(i): i for i in range(labels.NUM_CLASSES)}
_NAMES = {name: i for i, name in enumerate(labels.NAMES)}
# Columns of metadata.csv that the tree itself defines (checked, not copied).
_DERIVED = ("file", "label", "name")
# Typed columns written by our importers; any other column is kept as a string. Fixed types,
# not guessed from values, so every subset of a tree gets the same schema (ids stay strings).
COLUMN_TYPES = {"xmin": "int64", "ymin": "int64", "xmax": "int64", "ymax": "int64",
                "scale": "float64", "chromosome_count": "int64"}


@dataclass(frozen=True, slots=True)
class Record:
    file: str     # posix path relative to the tree
    label: int
    sha256: str   # of the file's bytes
    width: int
    height: int


@dataclass
class Metadata:
    """metadata.csv of a raw tree, kept compact (one tuple per file, repeated values shared) so
    that memory per instance stays small at 100k+ instances."""

    types: dict[str, str] = field(default_factory=dict)   # column → arrow dtype, in file order
    rows: dict[str, tuple] = field(default_factory=dict)  # file → values in column order

    def get(self, file: str) -> dict[str, Any]:
        values = self.rows.get(file)
        return dict(zip(self.types, values)) if values else dict.fromkeys(self.types)


@dataclass
class ScanResult:
    root: Path
    layout: str                                        # "ids" (0..23), "names" (1..22, X, Y) or "one-based" (1..24)
    records: list[Record]                              # sorted by file; valid and unique
    skipped: list[tuple[str, str]] = field(default_factory=list)      # (file, why)
    duplicates: list[tuple[str, str]] = field(default_factory=list)   # (dropped, kept)
    metadata: Metadata = field(default_factory=Metadata)


class _Problems:
    """Stop at the first problem (``fail``) or record it and go on (``skip``)."""

    def __init__(self, on_error: str):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
        self.on_error, self.skipped = on_error, []

    def __call__(self, err: BadInputError) -> None:
        if self.on_error == "fail":
            raise err
        self.skipped.append((err.path, f"{err.problem}"))


_ONE_BASED = {str(i + 1): i for i in range(labels.NUM_CLASSES)}  # 1..24, 23 = X, 24 = Y (some public sets)


def _class_folders(root: Path, problems: _Problems) -> tuple[str, dict[Path, int]]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if any(d.name == "24" for d in dirs):
        # "24" exists in no other layout: folders 1..24 are one-based class numbers, if nothing else is mixed in
        others = [d.name for d in dirs if d.name not in _ONE_BASED]
        if others or any(d.name == "0" for d in dirs):
            raise BadInputError(root, f"mixes one-based folders (1..24) with {', '.join(others) or '0'}",
                                "use one layout: 0..23, 1..22 + X, Y, or 1..24 (23 = X, 24 = Y)")
        return "one-based", {d: _ONE_BASED[d.name] for d in dirs}
    by_id = {d: _IDS[d.name] for d in dirs if d.name in _IDS}
    by_name = {d: _NAMES[d.name.upper()] for d in dirs if d.name.upper() in _NAMES}
    for d in dirs:
        if d not in by_id and d not in by_name:
            problems(BadInputError(d, "unknown class folder name",
                                   "name class folders 0..23 (paper layout), 1..22, X, Y, or 1..24 (23 = X, 24 = Y)"))
    ids_only = any(d.name in ("0", "23") for d in by_id)
    names_only = any(d.name.upper() in ("X", "Y") for d in by_name)
    if ids_only and names_only:
        raise BadInputError(root, "mixes id folders (0, 23) with name folders (X, Y)",
                            "use one layout: 0..23 or 1..22, X, Y")
    if not by_id and not by_name:
        raise BadInputError(root, "no class folders found",
                            "point at a tree with folders 0..23 (or 1..22, X, Y) holding the images")
    if not ids_only and not names_only:
        raise BadInputError(root, "folders 1..22 alone do not say whether they are class ids or names",
                            "add the 0/23 or X/Y folder so the layout is unambiguous")
    return ("ids", by_id) if ids_only else ("names", by_name)


def _list_images(folders: dict[Path, int], root: Path, problems: _Problems) -> list[tuple[str, int]]:
    items = []
    for folder, label in folders.items():
        found = 0
        for p in sorted(folder.iterdir()):
            if p.name.startswith("."):
                continue  # .DS_Store and friends
            rel = p.relative_to(root).as_posix()
            if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES:
                problems(BadInputError(p, "not an image file in a class folder",
                                       f"move it out; images end in {', '.join(sorted(IMAGE_SUFFIXES))}"))
                continue
            items.append((rel, label))
            found += 1
        if not found:
            problems(BadInputError(folder, "empty class folder", "add its images or remove the folder"))
    return sorted(items)


def _inspect(job: tuple[str, str, int, int]) -> tuple:
    """Worker: read, hash and fully decode one file. Errors travel back as plain tuples."""
    root, rel, label, canvas = job
    path = os.path.join(root, rel)
    try:
        with open(path, "rb") as f:
            data = f.read()
        d = decode(data, path, canvas)
    except BadInputError as e:
        return ("error", e.path, e.problem, e.fix)
    except OSError as e:
        return ("error", path, f"cannot read file ({e.strerror})", "check permissions")
    return ("ok", Record(rel, label, hashlib.sha256(data).hexdigest(), d.width, d.height))


def read_metadata(root: Path, layout_label: dict[str, int]) -> Metadata:
    """Read ``root/metadata.csv`` (if any), check it against the tree and type its columns."""
    path = root / "metadata.csv"
    if not path.exists():
        return Metadata()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        if "file" not in header:
            raise BadInputError(path, "has no 'file' column", "add a 'file' column with paths relative to the tree")
        at_file, at_label = header.index("file"), header.index("label") if "label" in header else None
        keep = [(i, c) for i, c in enumerate(header) if c not in _DERIVED]
        meta = Metadata(types={c: COLUMN_TYPES.get(c, "string") for _, c in keep})
        cast = {"int64": int, "float64": float, "string": str}
        seen: list[dict[str, Any]] = [{} for _ in keep]  # per column: raw text → shared value
        first = None
        for row in reader:
            file = row[at_file]
            first = first or file
            label = layout_label.get(file)
            if label is None:
                continue  # a row for a file the scan skipped or that is not in the tree
            if at_label is not None and row[at_label] not in ("", str(label)):
                raise BadInputError(path, f"row for {file} says label {row[at_label]} but the file is in "
                                    f"the folder of class {label}", "fix the row or move the file")
            values = []
            for (i, c), cache in zip(keep, seen):
                text = row[i]
                if text not in cache:
                    try:
                        cache[text] = cast[meta.types[c]](text) if text != "" else None
                    except ValueError:
                        raise BadInputError(path, f"column {c!r} of {file} is {text!r}, not {meta.types[c]}",
                                            "fix the value or leave it empty") from None
                values.append(cache[text])
            meta.rows[file] = tuple(values)
    if first is not None and not meta.rows:
        raise BadInputError(path, f"names none of the images (first row: {first!r})",
                            "write paths relative to the tree, e.g. 0/cell_00.png")
    return meta


def _dedupe(records: list[Record], root: Path, problems: _Problems) -> tuple[list[Record], list[tuple[str, str]]]:
    by_hash: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_hash[r.sha256].append(r)
    keep, dups = [], []
    for group in by_hash.values():
        if len({r.label for r in group}) > 1:
            listing = ", ".join(f"{r.file} (class {labels.name_of(r.label)})" for r in group)
            problems(BadInputError(root / group[0].file, f"the same image appears under different labels: {listing}",
                                   "keep it only in its true class folder"))
            continue
        keep.append(group[0])  # records are sorted, so the first path wins: deterministic
        dups.extend((r.file, group[0].file) for r in group[1:])
    return sorted(keep, key=lambda r: r.file), dups


def scan_tree(root: str | Path, *, on_error: str = "fail", canvas: int = CANVAS,
              workers: int = 1, progress: bool = True) -> ScanResult:
    """Validate every image of a raw tree; ``on_error="skip"`` lists bad files instead of stopping."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(root, "is not a folder", "give the raw tree (class folders 0..23)")
    problems = _Problems(on_error)
    layout, folders = _class_folders(root, problems)
    items = _list_images(folders, root, problems)
    jobs = [(str(root), rel, label, canvas) for rel, label in items]
    bar = dict(total=len(jobs), desc="scan", unit="img", disable=not progress)
    records = []
    if workers > 1:
        with Pool(workers) as pool:
            results = list(tqdm(pool.imap(_inspect, jobs, chunksize=64), **bar))
    else:
        results = [_inspect(j) for j in tqdm(jobs, **bar)]
    bad = []  # "fail" still reads every image, so that one run names all the bad ones, in file order
    for res in results:
        if res[0] == "error" and on_error == "fail":
            bad.append(BadInputError(*res[1:]))
        elif res[0] == "error":
            problems(BadInputError(*res[1:]))
        else:
            records.append(res[1])
    if len(bad) == 1:
        raise bad[0]
    if bad:
        raise BadFilesError(bad, "remove or replace them, or pass --on-error skip to build without them")
    records, duplicates = _dedupe(records, root, problems)
    if not records:
        raise DatasetError(f"{root}: no usable images found; check the folder and the skipped-file list")
    metadata = read_metadata(root, {r.file: r.label for r in records})
    return ScanResult(root, layout, records, problems.skipped, duplicates, metadata)
