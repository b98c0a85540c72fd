"""Import per-cell class-folder trees (what karyotyping software exports) into the paper's raw layout.

Input (``SRC``)::

    <cell>/<class>/<image>     one folder per cell, one per class inside it, one chromosome per image

Class folders are read by name, case-insensitively: ``clase1`` … ``clase24`` (the Pki-3 set), ``1`` …
``24``, ``chr1`` … ``chr24``, ``chrX``, ``chrY``, ``X``, ``Y``. Numbers are one-based chromosome numbers;
23 is X and 24 is Y (there is no chromosome 23 to confuse them with). Any other class folder (Pki-3 has
one ``clase25``) is reported by name and skipped, with its images; an empty class folder is reported
(a cell may have lost a chromosome) and is not an error.

The cell folder's name, less an image suffix (Pki-3 names its cell folders ``<case>.<cell>.tiff``), is the
``cell_id``; its part before the first ``.`` is the ``case_id`` (no dot: the cell is its own case, said in
the report). Each crop is decoded by the rule of :mod:`..images` (any mode → 8-bit grey) and pasted
**unscaled** at the centre of a white canvas, scaled down only when it does not fit (``scale`` < 1 and the
``scaled`` quality flag record it).

Output (``OUT``, written atomically): ``0/`` … ``23/<cell>_<image stem>.png`` and ``metadata.csv`` (file,
label, name, case_id, cell_id, source_image, scale, quality), plus ``ATTRIBUTION.md`` naming ``SRC``.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .. import labels
from ..data.images import IMAGE_SUFFIXES, decode_gray, png_bytes
from ..errors import BadInputError
from ..fsutil import staged_dir
from ..pipeline.isolate import place_on_canvas
from .tree import finish_tree

COLUMNS = ("file", "label", "name", "case_id", "cell_id", "source_image", "scale", "quality")
_CLASS = re.compile(r"^(?:clase|chr|class)?\s*([0-9]{1,2}|x|y)$", re.IGNORECASE)


def class_of_folder(name: str) -> int | None:
    """The class id (0..23) a class folder's name stands for, or None."""
    m = _CLASS.match(name.strip())
    if not m:
        return None
    v = m.group(1).upper()
    if v in ("X", "Y"):
        return labels.id_of(v)
    n = int(v)
    return n - 1 if 1 <= n <= labels.NUM_CLASSES else None  # 23 → X, 24 → Y


def cell_and_case(folder: str) -> tuple[str, str]:
    """(cell_id, case_id) of a cell folder's name: ``97002023.12.tiff`` → (``97002023.12``, ``97002023``)."""
    cell = folder
    for suffix in IMAGE_SUFFIXES:
        if cell.lower().endswith(suffix) and len(cell) > len(suffix):
            cell = cell[: -len(suffix)]
            break
    return cell, cell.split(".", 1)[0]


@dataclass
class CellsReport:
    out: str
    cells: int = 0
    instances: int = 0
    scaled: int = 0
    per_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(labels.NAMES, 0))
    unknown_class_folders: list[str] = field(default_factory=list)   # skipped, with their images
    empty_class_folders: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)      # (file, why) with on_error="skip"
    cells_without_case: int = 0

    def summary(self) -> str:
        lines = [f"imported {self.cells} cells → {self.instances} chromosomes into {self.out} "
                 f"({self.scaled} scaled down to fit the canvas)",
                 "per class: " + " ".join(f"{k}:{v}" for k, v in self.per_class.items())]
        if self.unknown_class_folders:
            lines.append(f"skipped {len(self.unknown_class_folders)} folder(s) that name no class of the 24: "
                         + ", ".join(self.unknown_class_folders[:5]))
        if self.empty_class_folders:
            lines.append(f"{len(self.empty_class_folders)} empty class folder(s), e.g. {self.empty_class_folders[0]}")
        if self.cells_without_case:
            lines.append(f"{self.cells_without_case} cell folder name(s) without a '.': each such cell is its own case")
        for path, why in self.skipped:
            lines.append(f"skipped {path}: {why}")
        return "\n".join(lines)


def import_cells(src: str | Path, out: str | Path, *, canvas: int = 300, overwrite: bool = False,
                 on_error: str = "fail", progress: bool = True) -> CellsReport:
    """Convert the per-cell tree at ``src`` into the paper's raw layout at ``out`` (atomically: a failed run
    leaves nothing and never touches an existing ``out``). ``on_error="skip"`` lists bad images instead."""
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    src = Path(src)
    if not src.is_dir():
        raise BadInputError(src, "source folder does not exist", "pass the folder that holds one folder per cell")
    cell_dirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cell_dirs:
        raise BadInputError(src, "holds no cell folders", "pass SRC with SRC/<cell>/<class>/<image>")
    report, rows = CellsReport(out=str(out)), []
    with staged_dir(out, overwrite) as tmp:
        for i in range(labels.NUM_CLASSES):
            (tmp / str(i)).mkdir()
        for cell_dir in tqdm(cell_dirs, desc="import cells", unit="cell", disable=not progress):
            cell, case = cell_and_case(cell_dir.name)
            report.cells_without_case += "." not in cell
            found = False
            for class_dir in sorted(p for p in cell_dir.iterdir() if p.is_dir()):
                label = class_of_folder(class_dir.name)
                rel = class_dir.relative_to(src).as_posix()
                if label is None:
                    report.unknown_class_folders.append(rel)
                    continue
                images = sorted(f for f in class_dir.iterdir() if f.is_file() and not f.name.startswith("."))
                if not images:
                    report.empty_class_folders.append(rel)
                for f in images:
                    row = _one(f, src, tmp, cell, case, label, canvas, on_error, report)
                    if row:
                        rows.append(row)
                        found = True
            report.cells += found
        if not rows:
            raise BadInputError(src, "holds no chromosome images in class folders",
                                "pass SRC/<cell>/<class>/<image> with classes named clase1…clase24, 1…24, chr1…chrY, X, Y")
        finish_tree(tmp, rows, COLUMNS, f"# Source data\n\nChromosome images imported by "
                    f"`chromosomenet import-cells` from `{src.name}/` (one folder per cell, one per class), "
                    "each pasted unscaled on a white canvas. Licence and citation: as the source states; "
                    "fill them in here before publishing a dataset built from this tree.\n")
    report.instances = len(rows)
    report.scaled = sum("scaled" in r["quality"] for r in rows)
    report.per_class.update(Counter(r["name"] for r in rows))
    return report


def _one(f: Path, src: Path, tmp: Path, cell: str, case: str, label: int, canvas: int, on_error: str,
         report: CellsReport) -> dict | None:
    if f.suffix.lower() not in IMAGE_SUFFIXES:
        problem, fix = "is not an image file", f"remove it, or give {', '.join(sorted(IMAGE_SUFFIXES))} files"
    else:
        try:
            gray = decode_gray(f.read_bytes(), str(f))
            problem = None
        except BadInputError as e:
            problem, fix = e.problem, e.fix
    if problem:
        if on_error == "fail":
            raise BadInputError(f, problem, fix + " (or pass --on-error skip)")
        report.skipped.append((f.relative_to(src).as_posix(), problem))
        return None
    image, scale = place_on_canvas(gray, canvas)
    rel = f"{label}/{cell}_{f.stem}.png"
    if (tmp / rel).exists():  # the same stem twice in one class folder (a.png and a.tif): keep both
        rel = f"{label}/{cell}_{f.name}.png"
    (tmp / rel).write_bytes(png_bytes(image))
    return {"file": rel, "label": str(label), "name": labels.NAMES[label], "case_id": case, "cell_id": cell,
            "source_image": f.relative_to(src).as_posix(), "scale": repr(round(scale, 6)),
            "quality": "scaled" if scale < 1 else "ok"}
