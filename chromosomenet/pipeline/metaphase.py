"""Bring your own metaphase: a bare metaphase image → karyogram, one stage after another.

    image ──detect──▶ boxes ──separate──▶ canvases ──predict──▶ probabilities ──assign──▶ call ──render──▶
          (or --boxes: a VOC file)  karyogram + the metaphase with every box labelled by its call

Boxes come from the detector (:mod:`.detect`) or from a Pascal-VOC file: ``detect``'s own output after
a person corrected it in a VOC tool, or a release's annotation. The boxes of one metaphase are then
isolated and separated together exactly as ``import-tseng --separate`` cut the shipped classifier's
training crops; the chromosomes are classified and assigned as one cell (``karyotype``).

    OUT/cells.csv                  one row per metaphase: cell (the image's stem), n, predicted_iscn, …
    OUT/karyograms/<stem>.png      the karyogram
    OUT/calls/<stem>.csv|json      one row per box (<stem>_<k>, k its object index in the VOC file: the
                                   detector numbers its boxes in reading order): call, confidence, review flag
    OUT/metaphases/<stem>.png      the metaphase with each box labelled by its call (flagged in red)
    OUT/boxes/<stem>.xml           the boxes as Pascal VOC named by their calls (correct them, re-run with --boxes)
"""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import labels
from ..data import voc
from ..data.images import CANVAS
from ..data.uploads import MAX_FILES, Upload, UploadError, read_upload
from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..models import shipped
from .assign import CellCall, KaryotypeCosts, assign, flag, iscn, write_call
from .cells import DEFAULT_THRESHOLD, saved_costs
from .detect import Detector, NoChromosomesError, draw_boxes, image_files, load_detector, read_metaphase, reading_order
from .isolate import metaphase_threshold, place_on_canvas
from .predict import Predictor, load_classifier, predict_cell
from .render import render_karyogram
from .review import forced_review
from .separate import isolate_boxes

MAX_XML_BYTES = 2 * 1024 * 1024
CALL_RGB, FLAG_RGB = (0, 110, 230), (220, 30, 30)
COLUMNS = ("cell", "n", "predicted_iscn", "annotated_iscn", "flagged", "plausible", "boxes_from", "cell_scale", "message", "notes")


def parse_voc(up: Upload) -> list[tuple[int, str, tuple[int, int, int, int]]]:
    """(index, class name as annotated, box) per VOC object; no DTDs or entities (no XML bombs)."""
    if not up.name.lower().endswith(".xml"):
        raise UploadError(up.name, "is not a .xml file", "give the Pascal-VOC annotation of the metaphase")
    if len(up.data) > MAX_XML_BYTES or b"<!DOCTYPE" in up.data.upper() or b"<!ENTITY" in up.data.upper():
        raise UploadError(up.name, "is too large or declares a DTD/entities", "give a plain Pascal-VOC annotation")
    try:
        root = ET.fromstring(up.data)
    except ET.ParseError as e:
        raise UploadError(up.name, f"is not well-formed XML ({e})", "give the Pascal-VOC annotation") from None
    boxes = voc.objects(root)
    bad = next((k for k, _, box in boxes if box is None), None)
    if bad is not None:
        raise UploadError(up.name, f"object {bad} has no valid bndbox", "fix or delete that object")
    if not boxes:
        raise UploadError(up.name, "holds no <object> boxes", "give the VOC annotation with one box per chromosome")
    if len(boxes) > MAX_FILES:
        raise UploadError(up.name, f"holds {len(boxes)} boxes, over the limit of {MAX_FILES}", "give one cell")
    return boxes


def class_of(name: str) -> int | None:
    """The class id of a VOC object name (``A1`` … ``G22``, ``X``, ``Y`` or ``1`` … ``22``), else None."""
    for read in (labels.id_of_denver_label, labels.id_of):
        try:
            return read(name)
        except KeyError:
            continue
    return None


def voc_boxes(up: Upload, width: int, height: int) -> tuple[list[tuple[int, int, int, int]], list[int | None]]:
    """(boxes clipped to the image, class id per box where its name is one) from a VOC upload."""
    boxes = parse_voc(up)
    clipped = [voc.clip(b, width, height) for _, _, b in boxes]
    for (k, _, raw), box in zip(boxes, clipped):
        if box is None:
            raise UploadError(up.name, f"box {k} {raw} lies outside the {width}×{height} image",
                              "give the annotation that belongs to this image")
    return clipped, [class_of(name) for _, name, _ in boxes]


def canvases_for(gray: np.ndarray, boxes) -> tuple[list[np.ndarray], list[str]]:
    """The separate stage: each box's chromosome freed of its neighbours (all boxes together, as the
    shipped classifier's training import), unscaled on a 300×300 canvas; and its quality flags."""
    isos = isolate_boxes(gray, metaphase_threshold(gray), list(boxes), separate=True)
    return [np.asarray(place_on_canvas(iso.crop, CANVAS)[0]) for iso in isos], [";".join(i.flags) for i in isos]


def label_picture(gray: np.ndarray, boxes, call: CellCall, path: Path) -> Path:
    """The render stage's metaphase: box k captioned ``k:call``, flagged boxes in red."""
    flags = call.flags or (False,) * len(boxes)
    return draw_boxes(gray, boxes, [f"{k}:{n}" for k, n in enumerate(call.names)], path,
                      [FLAG_RGB if f else CALL_RGB for f in flags])


@dataclass
class MetaphaseConfig:
    images: tuple[str, ...]
    out: Path
    classifier: str | None = None     # default: the shipped default classifier
    detector: str | None = None       # default: the shipped default detector (unused with ``boxes``)
    boxes: str | None = None          # a folder of <stem>.xml Pascal-VOC files (or one .xml for one image)
    costs: str | None = None          # default: karyotype_costs.json beside the classifier
    auto_scale: bool = True
    cell_scale: bool = True           # read the metaphase's chromosomes at the reference scale and greys


@dataclass
class Pipeline:
    """The loaded stages: classifier (+ its tuned costs and review threshold) and, if needed, a detector."""
    predictor: Predictor
    costs: KaryotypeCosts
    threshold: float
    detector: Detector | None = None
    facts: dict = field(default_factory=dict)
    cell_scale: bool = True


def load_pipeline(cfg: MetaphaseConfig) -> Pipeline:
    spec = cfg.classifier or shipped.default_spec()
    model, mcfg = load_classifier(spec)
    costs_path = cfg.costs or (str(c) if (c := shipped.costs_beside(spec)) else None)
    costs, threshold, tuned = saved_costs(costs_path) if costs_path else (KaryotypeCosts(), DEFAULT_THRESHOLD, "defaults")
    detector = None if cfg.boxes else load_detector(cfg.detector, auto_scale=cfg.auto_scale)
    return Pipeline(Predictor(model, mcfg), costs, threshold, detector,
                    {"classifier": spec, "detector": detector.spec if detector else None, "costs": tuned},
                    cfg.cell_scale)


def _boxes_file(boxes: str, stem: str) -> Path:
    p = Path(boxes)
    f = p if p.suffix.lower() == ".xml" else p / f"{stem}.xml"
    if not f.is_file():
        raise BadInputError(f, "no Pascal-VOC boxes for this image", f"give --boxes a folder holding {stem}.xml")
    return f


@dataclass(frozen=True)
class MetaphaseResult:
    row: dict                          # the cells.csv row
    call: CellCall
    probs: np.ndarray                  # (n, 24) the classifier's probabilities, before assignment
    boxes: list[tuple[int, int, int, int]]
    ids: list[str]                     # <stem>_<k>: k the box's object index in the VOC file and its number on the pictures
    annotated: list[str | None]        # per box: its class as the VOC file names it, if it does
    karyogram: Path
    picture: Path                      # the metaphase, boxes labelled by their calls
    calls_csv: Path
    voc: Path


def karyotype_one(pipe: Pipeline, gray: np.ndarray, name: str, out: Path, boxes_voc: str | Path | None = None
                  ) -> MetaphaseResult:
    """Detect (or read) the boxes of one metaphase, separate, classify, assign, draw and write."""
    stem, (h, w) = Path(name).stem, gray.shape
    notes: tuple[str, ...] = ()
    if boxes_voc:  # in the file's order: box k is object k, as the importer numbers its crops
        boxes, truth = voc_boxes(read_upload(_boxes_file(str(boxes_voc), stem)), w, h)
        scores = None
    else:
        found = pipe.detector(gray, name=name).kept
        notes, order = found.notes, reading_order(found.boxes)
        boxes, scores = [found.int_boxes()[i] for i in order], [float(found.scores[i]) for i in order]
        truth = [None] * len(boxes)
    if not boxes:
        raise NoChromosomesError(name, "no chromosomes found", "give a G-banded metaphase image (or its VOC boxes)")
    canvases, quality = canvases_for(gray, boxes)
    probs, scale = predict_cell(pipe.predictor, canvases, cell_scale=pipe.cell_scale)
    call = flag(assign(probs, pipe.costs), pipe.threshold, forced_review(quality))
    ids = [f"{stem}_{k:02d}" for k in range(len(boxes))]
    for sub in ("karyograms", "calls", "metaphases", "boxes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    karyogram = render_karyogram(canvases, call, out / "karyograms" / f"{stem}.png",
                                 title=f"metaphase {stem}: {call.iscn or 'no karyotype called'}")
    calls_csv, _ = write_call(call, ids, out / "calls", stem)
    picture = label_picture(gray, boxes, call, out / "metaphases" / f"{stem}.png")
    atomic_write_text(out / "boxes" / f"{stem}.xml", voc.to_xml(name, w, h, boxes, scores, list(call.names)))
    annotated = iscn(np.bincount(truth, minlength=labels.NUM_CLASSES)) if all(t is not None for t in truth) else ""
    row = {"cell": stem, "n": len(boxes), "predicted_iscn": call.iscn, "annotated_iscn": annotated,
           "flagged": int(sum(call.flags)), "plausible": call.plausible,
           "boxes_from": "VOC" if boxes_voc else "detector", "cell_scale": round(scale.factor, 3),
           "message": call.message, "notes": "; ".join(notes)}
    return MetaphaseResult(row, call, probs, list(boxes), ids, [labels.NAMES[t] if t is not None else None for t in truth],
                           Path(karyogram), picture, calls_csv, out / "boxes" / f"{stem}.xml")


def karyotype_metaphases(cfg: MetaphaseConfig, pipe: Pipeline | None = None) -> list[dict]:
    """Every image of ``cfg.images`` through the pipeline; OUT/cells.csv holds a row per metaphase. An
    image without chromosomes writes nothing and is named at the end, after the others are written."""
    files = image_files(cfg.images)
    out = Path(cfg.out)
    pipe = pipe or load_pipeline(cfg)
    rows, empty = [], []
    for f in files:
        gray, name = read_metaphase(f)
        try:
            rows.append(karyotype_one(pipe, gray, name, out, cfg.boxes).row)
        except NoChromosomesError:
            empty.append(f)
    if rows:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(out / "cells.csv", buf.getvalue())
    if empty:
        raise NoChromosomesError(empty[0], "no chromosomes found" + (f" (nor in {len(empty) - 1} more image(s))"
                                                                    if len(empty) > 1 else ""),
                                 "give G-banded metaphase images; the other images' results were written")
    return rows
