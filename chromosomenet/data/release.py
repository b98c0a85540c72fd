"""The Tseng et al. 2023 release on disk: its cells (a JPEG paired with its VOC XML), their case
ids, karyotypes and the release's own split. Read by the importer and by the detector's training data.

Layout (``SRC``, as released)::

    24_chromosomes_object/JEPG/<stem>.jpg         (``JPEG`` spelling accepted too)
    24_chromosomes_object/annotations/<stem>.xml  (VOC objects named A1 … G22, X, Y)
    normal.csv, number_abnormalities.csv, structural_abnormalities.csv   (optional)
    train.txt, test.txt                        (optional) the release's split, one stem per line

Case ids (needed for case-grouped splits): a stem is the case id followed by one digit for the
cell, after dropping a trailing ``_N`` suffix: ``1050761`` → case ``105076``; ``1050213_1`` →
``1050213`` → case ``105021``. Stems that do not start with a digit (``unknow010``) have no
known case; they all go into the single case ``unknown`` so they can never straddle a split.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import BadInputError

KARYOTYPE_CSVS = (("normal.csv", "normal"), ("number_abnormalities.csv", "numerical"),
                  ("structural_abnormalities.csv", "structural"))  # later files win on overlap
# The release's own image-level split (one stem per line); it puts cells of one case on both sides,
# so `build-dataset --split from-metadata` warns about it and `grouped` stays the default.
SPLIT_FILES = (("train.txt", "train"), ("test.txt", "test"))
ROOT = "24_chromosomes_object"
IMAGE_DIRS = ("JEPG", "JPEG")  # the release spells it JEPG

Problem = tuple[str, str, str]  # (path, problem, fix): BadInputError's arguments, picklable


def case_id_of(stem: str) -> str:
    """Case id of an image stem (rule in the module docstring)."""
    base = re.sub(r"_\d+$", "", stem)
    return base[:-1] if base[:1].isdigit() and len(base) > 1 else "unknown"


@dataclass(frozen=True)
class Cell:
    stem: str
    jpg: Path
    xml: Path
    source_image: str  # posix, relative to SRC
    karyotype: tuple[str, str, str]  # chromosome_count, karyotype_note, karyotype_type
    split: str = ""  # the release's split (train / test), empty when it lists the image in neither


def _release_dirs(src: Path) -> tuple[Path, Path]:
    root = src / ROOT
    if not src.is_dir():
        raise BadInputError(src, "source folder does not exist", "pass the folder that holds the Tseng release")
    images = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if images is None or not (root / "annotations").is_dir():
        raise BadInputError(root, f"is not the Tseng release layout (needs {ROOT}/JEPG and {ROOT}/annotations)",
                            "pass the folder that contains 24_chromosomes_object")
    return images, root / "annotations"


def _read_karyotypes(src: Path) -> dict[str, tuple[str, str, str]]:
    """stem → (chromosome_count, note, type) from the release's three CSVs (those present)."""
    out: dict[str, tuple[str, str, str]] = {}
    for name, kind in KARYOTYPE_CSVS:
        path = src / name
        if not path.is_file():
            continue
        with path.open(newline="", encoding="utf-8-sig") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if line == 1 or not row or not row[0].strip():
                    continue  # header / blank line
                count = row[1].strip() if len(row) > 1 else ""
                if count and not count.isdigit():
                    raise BadInputError(path, f"line {line}: chromosome count {count!r} is not a number",
                                        "fix the row or remove the file")
                note = row[2].strip() if len(row) > 2 else ""
                out[Path(row[0].strip()).stem] = (count, note, kind)
    return out


def _read_splits(src: Path) -> dict[str, str]:
    """stem → train / test from the release's train.txt / test.txt (those present)."""
    out: dict[str, str] = {}
    for name, split in SPLIT_FILES:
        path = src / name
        if not path.is_file():
            continue
        for line, stem in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1):
            stem = Path(stem.strip()).stem
            if not stem:
                continue
            if out.get(stem, split) != split:
                raise BadInputError(path, f"line {line}: {stem} is listed in both train.txt and test.txt",
                                    "remove it from one of them")
            out[stem] = split
    return out


def release_cells(src: Path, cells: Sequence[str] | None = None) -> tuple[list[Cell], list[Problem]]:
    """Pair JPEGs with XMLs (by stem); unpaired files become problems."""
    images, annotations = _release_dirs(src)
    jpgs = {p.stem: p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")}
    xmls = {p.stem: p for p in annotations.iterdir() if p.suffix.lower() == ".xml"}
    stems = sorted(jpgs.keys() | xmls.keys())
    if cells is not None:
        wanted = {re.sub(r"\.(jpe?g|xml)$", "", c, flags=re.I) for c in cells}
        unknown = sorted(wanted - set(stems))
        if unknown:
            raise BadInputError(src, f"cells not in the release: {', '.join(unknown)}",
                                "check the stems (image names without .jpg)")
        stems = [s for s in stems if s in wanted]
    karyotypes, splits = _read_karyotypes(src), _read_splits(src)
    found, problems = [], []
    for s in stems:
        if s not in xmls:
            problems.append((str(jpgs[s]), "image has no annotation XML", f"add annotations/{s}.xml or remove it"))
        elif s not in jpgs:
            problems.append((str(xmls[s]), "annotation has no image", f"add {images.name}/{s}.jpg or remove it"))
        else:
            found.append(Cell(s, jpgs[s], xmls[s], jpgs[s].relative_to(src).as_posix(),
                               karyotypes.get(s, ("", "", "unknown")), splits.get(s, "")))
    return found, problems
