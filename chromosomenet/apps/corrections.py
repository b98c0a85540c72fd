"""A cell as a technologist corrected it in the Space, in the form ``chromosomenet adapt`` reads back.

The Space's table of calls is editable: a person fixes a label (``1`` … ``22``, ``X``, ``Y``, or ``-`` for an
object that is no chromosome) and downloads one zip:

* a metaphase: the image as uploaded and ``<stem>.xml``, its boxes in Pascal VOC named by the corrected calls
  (the objects marked ``-`` left out): LabelImg's pair, which ``adapt`` reads;
* a cell of chromosome images: ``<cell>/<class>/<image>``, the per-cell class folders karyotyping software
  exports and ``import-cells`` / ``adapt`` read.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from .. import labels
from ..data import voc
from ..data.uploads import MAX_METAPHASE_PIXELS, UploadError, image_size
from ..importers.corrected import class_of_label
from .engine import CellResult, cell_of


def corrected_labels(result: CellResult, edited: list[dict]) -> list[str | None]:
    """The label of each row after a person's edits (None: no chromosome), refusing a name that is no class."""
    by_id = {str(r.get("id")): str(r.get("label") if r.get("label") is not None else "").strip() for r in edited}
    out = []
    for row in result.rows:
        name = by_id.get(str(row["id"]), row["label"])
        try:
            c = class_of_label(name)
        except KeyError:
            raise UploadError("table", f"chromosome {row['id']} is labelled {name!r}, not a chromosome class",
                              "write 1 … 22, X or Y, or - for an object that is no chromosome") from None
        out.append(None if c is None else labels.NAMES[c])
    return out


def corrected_zip(result: CellResult, edited: list[dict], out_dir: Path) -> Path:
    """One zip holding the corrected cell (module docstring); written into ``out_dir``."""
    if not result.uploads:
        raise UploadError("table", "there is no karyotyped cell to correct", "karyotype a cell or a metaphase first")
    names = corrected_labels(result, edited)
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.boxes:  # a metaphase: the image and its VOC boxes
        up = result.uploads[0]
        stem = Path(up.name).stem
        w, h = image_size(up, MAX_METAPHASE_PIXELS)
        kept = [(b, n) for b, n in zip(result.boxes, names) if n is not None]
        xml = voc.to_xml(up.name, w, h, [b for b, _ in kept], names=[n for _, n in kept])
        path = out_dir / f"{stem}_corrected.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(up.name, up.data)
            z.writestr(f"{stem}.xml", xml)
        return path
    cell = cell_of([u.name for u in result.uploads]) or "cell"
    path = out_dir / f"{cell}_corrected.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for up, name in zip(result.uploads, names):
            if name is not None:
                z.writestr(f"{cell}/{name}/{up.name}", up.data)
    return path

