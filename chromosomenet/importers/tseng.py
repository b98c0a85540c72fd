"""Import the Tseng et al. 2023 release (G-band metaphase JPEGs + Pascal-VOC boxes) into the
ChromosomeNet paper's raw layout.

Source: Tseng J.-J. et al., "An Open Dataset of Annotated Metaphase Cell Images for Chromosome
Identification", Scientific Data 10, 104 (2023), doi:10.1038/s41597-023-02003-7 (cite it).

Input: the release as laid out on disk (``data/release.py``).

Output (``OUT``)::

    0/ … 23/<stem>_<k:02d>.png   one chromosome per file, k = object index in the XML;
                                 300×300 grey, white background, isolated, unscaled, centred
    metadata.csv                 one row per PNG (see ``COLUMNS``), sorted by ``file``; its
                                 ``split`` column is the release's (``--split from-metadata``)

Case ids come from the image stems (``data.release.case_id_of``).
"""
from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .. import labels
from ..data import voc
from ..data.release import Cell, Problem, case_id_of, release_cells
from ..data.voc import Box
from ..errors import BadInputError
from ..fsutil import staged_dir
from ..pipeline.isolate import metaphase_threshold, place_on_canvas
from ..pipeline.separate import isolate_boxes
from .tree import finish_tree

PNG_LEVEL = 3  # zlib level: half the encode time of the default 6 for 15 % bigger files (measured)

COLUMNS = ("file", "label", "name", "case_id", "cell_id", "source_image", "xmin", "ymin", "xmax",
           "ymax", "scale", "quality", "chromosome_count", "karyotype_note", "karyotype_type", "split")
FLAGS = ("separated", "overlap", "merged", "low_fill", "empty", "scaled")

# Written into OUT so every dataset built from it carries the source, license and citation.
ATTRIBUTION = """\
# Source data

License: cc-by-4.0

Chromosome instances cut by `chromosomenet import-tseng` from the G-banded metaphase images and
24-class box annotations of Tseng J.-J., Lu C.-H., Li J.-Z., Lai H.-Y., Chen M.-H., Cheng F.-Y.,
Kuo C.-E., "An Open Dataset of Annotated Metaphase Cell Images for Chromosome Identification",
*Scientific Data* 10, 104 (2023), doi:10.1038/s41597-023-02003-7 (amniotic fluid cells, Taichung
Veterans General Hospital), released as open data under the Creative Commons Attribution 4.0
license (CC BY 4.0). Changes: each boxed chromosome was isolated from overlapping neighbours
(global Otsu threshold, the box's component{how}) and placed unscaled on a white 300x300 canvas;
`quality` flags instances {flags}or fill little of their box.

```bibtex
@article{tseng2023open,
  title   = {An Open Dataset of Annotated Metaphase Cell Images for Chromosome Identification},
  author  = {Tseng, Jenn-Jhy and Lu, Chien-Hsing and Li, Jun-Zhou and Lai, Hui-Yu and
             Chen, Min-Hu and Cheng, Fu-Yuan and Kuo, Chih-En},
  journal = {Scientific Data},
  volume  = {10},
  pages   = {104},
  year    = {2023},
  doi     = {10.1038/s41597-023-02003-7}
}
```
"""

SEPARATED = ("; touching and crossing chromosomes split by a box-marker watershed",
             "cut from a neighbour (`separated`), sharing a crossing (`overlap`), still carrying\n"
             "part of a neighbour (`merged`) ")
NOT_SEPARATED = ("", "that still touch a neighbour (`merged`) ")


@dataclass
class ImportReport:
    out: str
    n_images: int = 0
    n_instances: int = 0
    per_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(labels.NAMES, 0))
    n_scaled: int = 0
    quality: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("ok",) + FLAGS, 0))
    skipped: list[tuple[str, str]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # metaphases per release split ("" = in neither list)
    seconds: float = 0.0
    workers: int = 1

    def summary(self) -> str:
        rate = self.n_instances / self.seconds if self.seconds else 0.0
        lines = [f"imported {self.n_images} metaphases → {self.n_instances} chromosomes into {self.out} "
                 f"({self.seconds:.1f} s, {self.workers} workers, {rate:.0f} instances/s)",
                 "quality: " + ", ".join(f"{k} {v}" for k, v in self.quality.items()),
                 "per class: " + " ".join(f"{k}:{v}" for k, v in self.per_class.items())]
        if self.splits:
            lines.append("release split (metaphases): " + ", ".join(f"{k or 'in neither train.txt nor test.txt'} {v}"
                                                                   for k, v in sorted(self.splits.items())))
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}, first: {self.skipped[0][0]}: {self.skipped[0][1]}")
        return "\n".join(lines)


class _Problem(Exception):
    """A bad metaphase or object inside a worker; carries a picklable Problem."""

    def __init__(self, path: Path, problem: str, fix: str):
        super().__init__((str(path), problem, fix))
        self.problem: Problem = (str(path), problem, fix)


def _parse_voc(xml: Path) -> list[tuple[int, str, Box | None]]:
    """(index, class name, box or None when malformed) per VOC object."""
    try:
        return voc.objects(ET.parse(xml).getroot())
    except ET.ParseError as err:
        raise _Problem(xml, f"unparseable XML ({err})", "re-export or remove the annotation") from None


def _load_gray(jpg: Path) -> np.ndarray:
    try:
        with Image.open(jpg) as im:
            im.load()  # decode now so a truncated file fails here, not mid-crop
            return np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _Problem(jpg, f"image cannot be decoded ({err})", "replace the file with a complete JPEG") from None


def _validate(xml: Path, k: int, name: str, box: Box | None, w: int, h: int) -> tuple[int, Box]:
    """Class id and the box clipped to the image (overhang ≤ BOX_JITTER px is annotation jitter)."""
    try:
        label = labels.id_of_denver_label(name)
    except KeyError:
        raise _Problem(xml, f"object {k} has unknown class name {name!r}",
                       "use A1 … G22, X or Y, or delete that object") from None
    if box is None:
        raise _Problem(xml, f"object {k} ({name}) has no valid bndbox", "fix or delete that object")
    clipped = voc.clip(box, w, h)
    if clipped is None:
        raise _Problem(xml, f"object {k} ({name}) box {box} lies outside the {w}×{h} image or is empty",
                       "fix the box coordinates or delete that object")
    return label, clipped


def _row(cell: Cell, k: int, label: int, box: Box, scale: float, flags: Sequence[str]) -> dict[str, str]:
    return {"file": f"{label}/{cell.stem}_{k:02d}.png", "label": str(label), "name": labels.NAMES[label],
            "case_id": case_id_of(cell.stem), "cell_id": cell.stem, "source_image": cell.source_image,
            "xmin": str(box[0]), "ymin": str(box[1]), "xmax": str(box[2]), "ymax": str(box[3]),
            "scale": repr(float(f"{scale:.6g}")), "quality": ";".join(flags) or "ok",
            "chromosome_count": cell.karyotype[0], "karyotype_note": cell.karyotype[1],
            "karyotype_type": cell.karyotype[2], "split": cell.split}


def _process(cell: Cell, out: Path, canvas: int, stop_early: bool,
             separate: bool) -> tuple[list[dict[str, str]], list[Problem]]:
    """Write one metaphase's PNGs under ``out``; return its metadata rows and problems."""
    try:
        objects = _parse_voc(cell.xml)
        gray = _load_gray(cell.jpg)
    except _Problem as err:
        return [], [err.problem]
    h, w = gray.shape
    valid: list[tuple[int, int, Box, Box]] = []  # (object index, label, box as annotated, clipped)
    problems: list[Problem] = []
    for k, name, box in objects:
        try:
            label, clipped = _validate(cell.xml, k, name, box, w, h)
        except _Problem as err:
            problems.append(err.problem)
            if stop_early:
                break
            continue
        valid.append((k, label, box, clipped))
    cut = cut_boxes(gray, [(k, label, clipped) for k, label, _, clipped in valid], cell.stem, out, canvas, separate)
    return [_row(cell, k, label, box, scale, flags) for (k, label, box, _), (_, scale, flags) in zip(valid, cut)], problems


def cut_boxes(gray: np.ndarray, objects: Sequence[tuple[int, int, Box]], stem: str, out: Path, canvas: int = 300,
              separate: bool = True) -> list[tuple[str, float, tuple[str, ...]]]:
    """Each (object index, class id, box) of a metaphase separated from its neighbours and placed on a canvas,
    written as ``out/<class>/<stem>_<k:02d>.png``; (file, scale, quality flags) per object. The one way every
    importer of metaphase boxes cuts its chromosomes (``import-tseng``, ``adapt`` on corrected karyotypes)."""
    done = []
    thr = metaphase_threshold(gray)
    for (k, label, _), iso in zip(objects, isolate_boxes(gray, thr, [o[2] for o in objects], separate)):
        img, scale = place_on_canvas(iso.crop, canvas)
        file = f"{label}/{stem}_{k:02d}.png"
        img.save(out / file, format="PNG", compress_level=PNG_LEVEL)
        done.append((file, scale, iso.flags + (("scaled",) if scale < 1 else ())))
    return done


def _run(cells: list[Cell], out: Path, canvas: int, stop_early: bool, separate: bool, workers: int,
         progress: bool) -> Iterator[tuple[list[dict[str, str]], list[Problem]]]:
    """Results per metaphase in input order, whatever the worker count (→ deterministic output)."""
    bar = tqdm(total=len(cells), disable=not progress, unit="img", desc="import tseng")
    args = ([out] * len(cells), [canvas] * len(cells), [stop_early] * len(cells), [separate] * len(cells))
    try:
        if workers == 1:
            results: Iterable = map(_process, cells, *args)
            yield from _tick(results, bar)
        else:
            ex = ProcessPoolExecutor(max_workers=workers)
            try:
                yield from _tick(ex.map(_process, cells, *args), bar)
            finally:  # on a failure, don't start queued metaphases; wait for running ones
                ex.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def _tick(results: Iterable, bar: tqdm) -> Iterator:
    for r in results:
        bar.update()
        yield r


def import_tseng(src: str | Path, out: str | Path, *, workers: int | None = None,
                 cells: Sequence[str] | None = None, canvas: int = 300, overwrite: bool = False,
                 on_error: str = "fail", separate: bool = True, progress: bool = True) -> ImportReport:
    """Convert the Tseng release at ``src`` into the paper's raw layout at ``out`` (atomically).

    ``cells`` limits the import to those stems. ``on_error="fail"`` raises
    :class:`BadInputError` on the first bad file; ``"skip"`` skips the bad metaphase (or just the
    bad object) and lists it in ``ImportReport.skipped``. ``separate`` (the default) splits touching and
    crossing chromosomes (:mod:`.separate`: the import every shipped model was trained on; False isolates
    each box on its own, as the older ResNet-18 was trained). ``workers`` processes (default: all
    cores; 1 = in-process) give byte-identical output.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    if canvas < 1:
        raise ValueError(f"canvas must be a positive size, not {canvas}")
    src, out = Path(src), Path(out)
    start = time.perf_counter()
    todo, problems = release_cells(src, cells)
    fail = on_error == "fail"
    if problems and fail:
        raise BadInputError(*problems[0])
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    report = ImportReport(out=str(out), workers=workers)
    rows: list[dict[str, str]] = []
    with staged_dir(out, overwrite) as tmp:
        for i in range(labels.NUM_CLASSES):
            (tmp / str(i)).mkdir()
        with closing(_run(todo, tmp, canvas, fail, separate, workers, progress)) as results:  # stop workers first
            for cell_rows, cell_problems in results:
                if cell_problems and fail:
                    raise BadInputError(*cell_problems[0])
                problems += cell_problems
                rows += cell_rows
                report.n_images += bool(cell_rows)
        how, flags = SEPARATED if separate else NOT_SEPARATED
        finish_tree(tmp, rows, COLUMNS, ATTRIBUTION.replace("{how}", how).replace("{flags}", flags))
    flags = Counter(f for r in rows for f in r["quality"].split(";"))
    report.quality.update({k: flags.get(k, 0) for k in report.quality})
    report.per_class.update(Counter(r["name"] for r in rows))
    if any(c.split for c in todo):
        report.splits = dict(Counter(c.split for c in todo))
    report.n_instances, report.n_scaled = len(rows), flags.get("scaled", 0)
    report.skipped = [(p, f"{why}; {fix}") for p, why, fix in problems]
    report.seconds = time.perf_counter() - start
    return report
