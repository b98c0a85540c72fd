"""A lab's corrected karyotypes → the paper's raw layout: what ``adapt`` learns from.

What a lab has once a technologist has checked ``karyotype``'s output (any mix, found under the given paths):

- **a metaphase**: ``boxes/<stem>.xml`` (Pascal VOC, objects named by their calls: ``1`` … ``22``, ``X``, ``Y``,
  or Tseng's ``A1`` … ``G22``) beside ``calls/<stem>.csv`` (``id,label,…``) and ``calls/<stem>.json`` (the call
  as made). Either file may carry the corrections: where they disagree, the one that differs from the call as
  made is the correction (both changed, differently: refused, naming the chromosome). The image is the one the
  VOC's ``<path>`` names, else ``<stem>.*`` in ``images`` or beside the XML;
- **VOC + image pairs** with no table (LabelImg's folder, the Space's download of a corrected cell);
- **a cell of chromosome images**: ``call.csv`` + ``call.json`` of ``karyotype --images`` (the images are the
  files the json lists, else the ids in ``images``).

A row labelled ``-`` or left empty is no chromosome and is left out. The case of a cell is its case folder
where ``karyotype --metaphase`` wrote one (``OUT/<case>/boxes``), else the cell is its own case.

Output (``OUT``, written atomically): ``0/`` … ``23/<cell>_<k:02d>.png`` and ``metadata.csv`` (file, label, name,
case_id, cell_id, source_image, scale, quality, split), plus ``ATTRIBUTION.md`` naming the sources.
"""
from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .. import labels
from ..data import voc
from ..data.images import CANVAS, IMAGE_SUFFIXES, decode_gray, png_bytes
from ..errors import BadInputError
from ..fsutil import staged_dir
from ..pipeline.isolate import place_on_canvas
from .tree import finish_tree
from .tseng import cut_boxes

COLUMNS = ("file", "label", "name", "case_id", "cell_id", "source_image", "scale", "quality", "split")
NOT_A_CHROMOSOME = ("", "-")


@dataclass
class CorrectedReport:
    out: str
    cells: int = 0
    instances: int = 0
    corrections: int = 0                                  # chromosomes whose label differs from the call as made
    left_out: int = 0                                     # rows marked as no chromosome
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"read {self.cells} corrected cells → {self.instances} chromosomes into {self.out} "
                f"({self.corrections} calls corrected, {self.left_out} objects marked as no chromosome)")


def _read_table(path: Path) -> dict[str, str]:
    """id → label of a calls table."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInputError(path, f"cannot be read as a calls table ({type(e).__name__})",
                            "give the call.csv that karyotype wrote, with its labels corrected") from None
    if not rows or not {"id", "label"} <= set(rows[0]):
        raise BadInputError(path, "has no id and label columns", "give the call.csv that karyotype wrote")
    return {r["id"].strip(): (r["label"] or "").strip() for r in rows}


def _made(json_path: Path) -> tuple[dict[str, str], dict]:
    """The call as made (id → label) and the summary, from the json beside a table (empty when absent)."""
    if not json_path.is_file():
        return {}, {}
    try:
        summary = json.loads(json_path.read_text())
        return {str(c["id"]): c["label"] for c in summary["chromosomes"]}, summary
    except (ValueError, KeyError, TypeError):
        raise BadInputError(json_path, "is not a call summary written by karyotype",
                            "restore it, or remove it to take the table as it is") from None


def class_of_label(name: str) -> int | None:
    """The class id a corrected label names (None: marked as no chromosome); KeyError for anything else."""
    return None if name.strip() in NOT_A_CHROMOSOME else labels.id_of_any(name)


def _class(name: str, where: Path, what: str) -> int | None:
    try:
        return class_of_label(name)
    except KeyError:
        raise BadInputError(where, f"{what} is labelled {name!r}, not a chromosome",
                            "use 1 … 22, X or Y (or A1 … G22), or - for no chromosome") from None


def reconcile(ids: list[str], boxes: list[str] | None, table: dict[str, str] | None, made: dict[str, str],
              where: Path) -> list[str]:
    """One label per id: the boxes' and the table's where they agree, else the one a person changed."""
    out = []
    for k, i in enumerate(ids):
        b = boxes[k] if boxes is not None else None
        t = table.get(i) if table is not None else None
        if b is None or t is None or b == t:
            out.append(t if b is None else b)
        elif made.get(i) == t:
            out.append(b)
        elif made.get(i) == b:
            out.append(t)
        else:
            raise BadInputError(where, f"chromosome {i}: the table says {t!r}, the boxes say {b!r}",
                                "correct it in one of them only (or make them agree)")
    return out


def _image_of(xml: Path, root: ET.Element, images: Path | None) -> Path:
    stem = xml.stem
    named = (root.findtext("path") or "").strip()
    places = [Path(named)] if named else []
    for folder in (images, xml.parent, xml.parent.parent):
        if folder is not None:
            places += [folder / f"{stem}{s}" for s in sorted(IMAGE_SUFFIXES)]
    for p in places:
        if p.is_file():
            return p
    raise BadInputError(xml, "its metaphase image was not found (neither its <path> nor "
                             f"{stem}.* beside it{' or in ' + str(images) if images else ''})",
                        "pass the folder of the images with --images")


def _case_of(xml: Path, stem: str) -> str:
    """A case folder of ``karyotype --metaphase`` (OUT/<case>/boxes/<stem>.xml, OUT/cases.csv), else the cell."""
    if xml.parent.name == "boxes" and (xml.parent.parent.parent / "cases.csv").is_file():
        return xml.parent.parent.name
    return stem


def _metaphase(xml: Path, images: Path | None, tmp: Path, report: CorrectedReport) -> list[dict]:
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        raise BadInputError(xml, f"cannot be read as Pascal VOC ({type(e).__name__})",
                            "give the boxes/<stem>.xml that karyotype wrote") from None
    objects = voc.objects(root)
    stem = xml.stem
    calls = xml.parent.parent / "calls" / f"{stem}.csv" if xml.parent.name == "boxes" else None
    ids = [f"{stem}_{k:02d}" for k in range(len(objects))]
    table = _read_table(calls) if calls is not None and calls.is_file() else None
    made, _ = _made(calls.with_suffix(".json")) if table is not None else ({}, {})
    if table is not None and set(table) != set(ids):  # boxes added or removed: the VOC alone holds the truth
        table = None
    names = reconcile(ids, [n for _, n, _ in objects], table, made, calls or xml)
    image = _image_of(xml, root, images)
    gray = decode_gray(image.read_bytes(), str(image))
    h, w = gray.shape
    keep = []
    for (k, _, box), i, name in zip(objects, ids, names):
        label = _class(name, xml, f"object {k}")
        if label is None:
            report.left_out += 1
            continue
        clipped = voc.clip(box, w, h) if box is not None else None
        if clipped is None:
            raise BadInputError(xml, f"object {k} has no box inside the {w}×{h} image", "fix or delete that object")
        report.corrections += made.get(i, name) != name
        keep.append((k, label, clipped))
    case = _case_of(xml, stem)
    return [_row(file, label, case, stem, image, scale, flags)
            for (k, label, _), (file, scale, flags) in zip(keep, cut_boxes(gray, keep, stem, tmp))]


def _cell(table_path: Path, images: Path | None, tmp: Path, report: CorrectedReport) -> list[dict]:
    table = _read_table(table_path)
    made, summary = _made(table_path.with_suffix(".json"))
    listed = {Path(f).name: Path(f) for f in summary.get("files", [])}
    cell = table_path.parent.name
    rows = []
    for k, (i, name) in enumerate(table.items()):
        label = _class(name, table_path, f"chromosome {i}")
        if label is None:
            report.left_out += 1
            continue
        f = listed.get(i) if i in listed and listed[i].is_file() else (images / i if images else None)
        if f is None or not f.is_file():
            raise BadInputError(table_path, f"the image of chromosome {i} was not found",
                                "pass the folder of the cell's images with --images")
        image, scale = place_on_canvas(decode_gray(f.read_bytes(), str(f)), CANVAS)
        file = f"{label}/{cell}_{k:02d}.png"
        (tmp / file).write_bytes(png_bytes(image))
        report.corrections += made.get(i, name) != name
        rows.append(_row(file, label, cell, cell, f, scale, ("scaled",) if scale < 1 else ()))
    return rows


def _row(file: str, label: int, case: str, cell: str, source: Path, scale: float, flags) -> dict:
    return {"file": file, "label": str(label), "name": labels.NAMES[label], "case_id": case, "cell_id": cell,
            "source_image": source.name, "scale": repr(round(float(scale), 6)), "quality": ";".join(flags) or "ok",
            "split": ""}


def find(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(VOC files, calls tables of chromosome-image cells) under ``paths``, in name order."""
    xmls, tables = [], []
    for p in paths:
        if p.is_file():
            (xmls if p.suffix.lower() == ".xml" else tables).append(p)
        elif p.is_dir():
            xmls += sorted(p.rglob("*.xml"))
            tables += sorted(p.rglob("call.csv"))
        else:
            raise BadInputError(p, "not found", "give karyotype's output folders, VOC files or call.csv files")
    return xmls, tables


def import_corrected(paths, out: str | Path, *, images: str | Path | None = None,
                     overwrite: bool = False) -> CorrectedReport:
    """The corrected karyotypes under ``paths`` as a raw tree at ``out`` (atomically)."""
    paths = [Path(p) for p in paths]
    images = Path(images) if images else None
    xmls, tables = find(paths)
    if not xmls and not tables:
        raise BadInputError(paths[0], "holds no corrected karyotypes (no VOC .xml, no call.csv)",
                            "give karyotype's --out folder after correcting its calls")
    report, rows = CorrectedReport(out=str(out), sources=[str(p) for p in paths]), []
    with staged_dir(out, overwrite) as tmp:
        for i in range(labels.NUM_CLASSES):
            (tmp / str(i)).mkdir()
        cells = [_metaphase(x, images, tmp, report) for x in xmls] + [_cell(t, images, tmp, report) for t in tables]
        seen: dict[str, Path] = {}
        for found, src in zip(cells, xmls + tables):
            if found and found[0]["cell_id"] in seen:
                raise BadInputError(src, f"its cell {found[0]['cell_id']!r} is also in {seen[found[0]['cell_id']]}",
                                    "give each corrected cell once")
            if found:
                seen[found[0]["cell_id"]] = src
            rows += found
        if not rows:
            raise BadInputError(paths[0], "holds no labelled chromosome", "label the chromosomes 1 … 22, X or Y")
        finish_tree(tmp, rows, COLUMNS, "# Source data\n\nCorrected karyotypes read by `chromosomenet adapt` from "
                    + ", ".join(f"`{p.name}`" for p in paths) + ". Licence and citation: the lab's own.\n")
    report.cells, report.instances = len(seen), len(rows)
    return report
