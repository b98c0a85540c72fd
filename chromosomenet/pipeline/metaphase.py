"""Bring your own metaphase: a bare metaphase image → karyogram, one stage after another.

    image ──detect──▶ boxes ──separate──▶ canvases ──predict──▶ probabilities ──count──▶ ──assign──▶ call ──render──▶
          (or --boxes: a VOC file)  karyogram + the metaphase with every box labelled by its call

From the detector, every candidate from the count stage's floor (score 0.2) is separated and read, and
:mod:`.count` settles the doubtful ones (score 0.2–0.8) with the cell's classes: a third copy of a class
from a weak box is a second box on a chromosome, a class one short takes the weak box that fills it.

Boxes come from the detector (:mod:`.detect`) or from a Pascal-VOC file: ``detect``'s own output after
a person corrected it in a VOC tool, or a release's annotation. The boxes of one metaphase are then
isolated and separated together exactly as ``import-tseng --separate`` cut the shipped classifier's
training crops; the chromosomes are classified and assigned as one cell (``karyotype``).

    OUT/cells.csv                  one row per metaphase: cell (the image's stem), n, predicted_iscn, …,
                                   count_review (the count depends on a doubtful box; the message names it)
    OUT/cases.csv                  given one folder of case folders: one row per case (:mod:`.cases`), each
                                   case's files below in OUT/<case>/
    OUT/karyograms/<stem>.png      the karyogram
    OUT/calls/<stem>.csv|json      one row per box (<stem>_<k>, k its object index in the VOC file: the
                                   detector numbers its boxes in reading order): call, confidence, review flag
    OUT/metaphases/<stem>.png      the metaphase with each box labelled by its call (flagged in red, the count's
                                   doubts in orange: ``k:call?``, and ``?a`` for a left-out box it may need)
    OUT/boxes/<stem>.xml           the boxes as Pascal VOC named by their calls (correct them, re-run with --boxes)
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import labels
from ..data import voc
from ..data.images import CANVAS
from ..data.uploads import MAX_FILES, Upload, UploadError, read_upload
from ..errors import BadInputError
from ..fsutil import atomic_write_csv, atomic_write_text
from ..models import shipped
from .assign import CellCall, KaryotypeCosts, assign, flag, iscn, write_call
from .cases import CASE_COLUMNS, case_folders, case_rows
from .cells import DEFAULT_THRESHOLD, saved_costs
from .batch import BatchReport, Item, Table, collect, run_batch
from .count import CountChoice, choose_count
from .detect import (Detections, Detector, NoChromosomesError, draw_boxes, load_detector,
                     read_metaphase, reading_order, voc_source)
from .isolate import metaphase_threshold, place_on_canvas
from .predict import Predictor, load_classifier, predict_cell
from .render import render_karyogram
from .review import forced_review
from .separate import isolate_boxes

MAX_XML_BYTES = 2 * 1024 * 1024
CALL_RGB, FLAG_RGB = (0, 110, 230), (220, 30, 30)
COLUMNS = ("cell", "n", "predicted_iscn", "annotated_iscn", "flagged", "plausible", "count_review", "boxes_from",
           "cell_scale", "message", "notes")
DOUBT_RGB = (235, 140, 0)


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


def label_picture(gray: np.ndarray, boxes, call: CellCall, path: Path, doubt=None, extra=()) -> Path:
    """The render stage's metaphase: box k captioned ``k:call``, flagged boxes in red; the count's doubts
    in orange (``k:call?``), with the left-out ones the count may need as ``?a``, ``?b``…"""
    flags = call.flags or (False,) * len(boxes)
    doubt = doubt if doubt is not None else (False,) * len(boxes)
    texts = [f"{k}:{n}?" if d else f"{k}:{n}" for k, (n, d) in enumerate(zip(call.names, doubt))]
    colors = [DOUBT_RGB if d else FLAG_RGB if f else CALL_RGB for f, d in zip(flags, doubt)]
    return draw_boxes(gray, list(boxes) + list(extra), texts + [f"?{chr(97 + i)}" for i in range(len(extra))], path,
                      colors + [DOUBT_RGB] * len(extra))


def count_doubts(n: int, doubt, extra) -> str:
    """What the count depends on, in words: '46 or 47: object 12 may not be one whole chromosome; ?a may be
    one more'; empty when the count is final."""
    unsure = [k for k, d in enumerate(doubt) if d]
    if not unsure and not len(extra):
        return ""
    lo, hi = n - len(unsure), n + len(extra)
    span = f"{lo} or {hi}" if hi - lo == 1 else f"{lo} to {hi}"
    parts = [f"object {k} may not be one whole chromosome (a part, two as one, or not one)" for k in unsure]
    parts += [f"?{chr(97 + i)} may be one more chromosome" for i in range(len(extra))]
    return f"count {span}, not final: " + "; ".join(parts)


@dataclass
class MetaphaseConfig:
    images: tuple[str, ...]
    out: Path
    classifier: str | None = None     # default: the shipped default classifier
    detector: str | None = None       # default: the shipped default detector (unused with ``boxes``)
    boxes: str | None = None          # a folder of <stem>.xml Pascal-VOC files (or one .xml for one image)
    costs: str | None = None          # default: karyotype_costs.json beside the classifier
    auto_scale: bool = True
    verify: bool = False              # the detector's verifier decides which candidates are chromosomes (opt-in)
    cell_scale: bool = True           # read the metaphase's chromosomes at the reference scale and greys
    count: bool = True                # the count stage chooses the doubtful candidates with the cell (not with --verify)
    mode: str = "append"              # an earlier run's rows in OUT: append | resume | overwrite (:mod:`.batch`)


@dataclass
class Pipeline:
    """The loaded stages: classifier (+ its tuned costs and review threshold) and, if needed, a detector."""
    predictor: Predictor
    costs: KaryotypeCosts
    threshold: float
    detector: Detector | None = None
    facts: dict = field(default_factory=dict)
    cell_scale: bool = True
    count: CountChoice | None = CountChoice()  # the count stage's operating point; None: the detector's threshold alone


def load_pipeline(cfg: MetaphaseConfig) -> Pipeline:
    spec = cfg.classifier or shipped.default_spec()
    model, mcfg = load_classifier(spec)
    costs_path = cfg.costs or (str(c) if (c := shipped.costs_beside(spec)) else None)
    costs, threshold, tuned = saved_costs(costs_path) if costs_path else (KaryotypeCosts(), DEFAULT_THRESHOLD, "defaults")
    detector = None if cfg.boxes else load_detector(cfg.detector, auto_scale=cfg.auto_scale, verify=cfg.verify)
    by_cell = cfg.count and not cfg.boxes and not cfg.verify  # given boxes are counted as given; a verifier chooses
    return Pipeline(Predictor(model, mcfg), costs, threshold, detector,
                    {"classifier": spec, "detector": detector.spec if detector else None, "costs": tuned,
                     "count": "cell" if by_cell else "threshold"},
                    cfg.cell_scale, CountChoice() if by_cell else None)


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


def _count(pipe: Pipeline, gray: np.ndarray, every: Detections) -> tuple[Detections, np.ndarray, tuple]:
    """The count stage (:mod:`.count`): every candidate from ``lo`` up separated and read as one cell, the
    chromosomes chosen with the cell's classes. A candidate the cell overruled (counted below the detector's
    threshold, or left out above it) or one near the threshold is a doubt. Returns the counted detections,
    the left-out doubts' boxes and the counted ones' (canvases, quality, probabilities, cell scale)."""
    cand = every.where(every.scores >= pipe.count.lo)
    canvases, quality = canvases_for(gray, cand.int_boxes())
    probs, scale = predict_cell(pipe.predictor, canvases, cell_scale=pipe.cell_scale)
    take = choose_count(probs, cand.scores, pipe.costs, pipe.count)
    doubt = cand.doubt | (take != (cand.scores >= cand.threshold))  # the detector's own doubts, or overruled
    found = replace(cand, doubt=doubt).where(take)
    idx = np.flatnonzero(take)
    return found, cand.boxes[~take & doubt], ([canvases[i] for i in idx], [quality[i] for i in idx], probs[idx], scale)


def karyotype_one(pipe: Pipeline, gray: np.ndarray, name: str, out: Path, boxes_voc: str | Path | None = None,
                  source: Path | None = None) -> MetaphaseResult:
    """Detect (or read) the boxes of one metaphase, separate, classify, assign, draw and write (``source``,
    the image file, gives the VOC file its folder and depth)."""
    stem, (h, w) = Path(name).stem, gray.shape
    notes: tuple[str, ...] = ()
    doubt, extra, read = None, np.zeros((0, 4)), None
    if boxes_voc:  # in the file's order: box k is object k, as the importer numbers its crops
        boxes, truth = voc_boxes(read_upload(_boxes_file(str(boxes_voc), stem)), w, h)
        scores = None
    else:
        every = pipe.detector(gray, name=name)
        found, extra = every.kept, every.left_out_doubts
        # the prior assumes one whole metaphase: a photo that is not one (a count no cell has) is left as it is
        if (pipe.count is not None and pipe.detector.verifier is None
                and pipe.costs.min_plausible <= len(found) <= pipe.costs.max_plausible):
            found, extra, read = _count(pipe, gray, every)
        notes, order = found.notes, reading_order(found.boxes)
        boxes, scores = [found.int_boxes()[i] for i in order], [float(found.scores[i]) for i in order]
        doubt = [bool(found.doubt[i]) for i in order] if found.doubt is not None else None
        truth = [None] * len(boxes)
        if read is not None:  # the count stage read every candidate already: its reading, in reading order
            read = ([read[0][i] for i in order], [read[1][i] for i in order], read[2][order], read[3])
    if not boxes:
        raise NoChromosomesError(name, "no chromosomes found", "give a G-banded metaphase image (or its VOC boxes)")
    if read is None:
        canvases, quality = canvases_for(gray, boxes)
        probs, scale = predict_cell(pipe.predictor, canvases, cell_scale=pipe.cell_scale)
    else:
        canvases, quality, probs, scale = read
    call = flag(assign(probs, pipe.costs), pipe.threshold, forced_review(quality))
    ids = [f"{stem}_{k:02d}" for k in range(len(boxes))]
    for sub in ("karyograms", "calls", "metaphases", "boxes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    karyogram = render_karyogram(canvases, call, out / "karyograms" / f"{stem}.png",
                                 title=f"metaphase {stem}: {call.iscn or 'no karyotype called'}")
    calls_csv, _ = write_call(call, ids, out / "calls", stem, source)
    picture = label_picture(gray, boxes, call, out / "metaphases" / f"{stem}.png", doubt, extra)
    doubts = count_doubts(len(boxes), doubt or (), extra)
    atomic_write_text(out / "boxes" / f"{stem}.xml", voc.to_xml(name, w, h, boxes, scores, list(call.names),
                                                                        **voc_source(source)))
    annotated = iscn(np.bincount(truth, minlength=labels.NUM_CLASSES)) if all(t is not None for t in truth) else ""
    row = {"cell": stem, "n": len(boxes), "predicted_iscn": call.iscn, "annotated_iscn": annotated,
           "flagged": int(sum(call.flags)), "plausible": call.plausible, "count_review": bool(doubts) or (not boxes_voc and not call.plausible),
           "boxes_from": "VOC" if boxes_voc else "detector", "cell_scale": round(scale.factor, 3),
           "message": "; ".join(m for m in (doubts, call.message) if m), "notes": "; ".join(notes)}
    return MetaphaseResult(row, call, probs, list(boxes), ids, [labels.NAMES[t] if t is not None else None for t in truth],
                           Path(karyogram), picture, calls_csv, out / "boxes" / f"{stem}.xml")


def karyotype_metaphases(cfg: MetaphaseConfig, pipe: Pipeline | None = None, echo=None,
                         progress: bool = False) -> BatchReport:
    """Every image of ``cfg.images`` through the pipeline, to the end whatever one file is (:mod:`.batch`:
    a bad one is refused in one line, ``cfg.mode`` says what an earlier run's rows in OUT become);
    OUT/cells.csv holds a row per metaphase. One folder of case folders (:func:`.cases.case_folders`)
    puts each case's outputs in OUT/<case>/ and writes OUT/cases.csv, a row per case."""
    out = Path(cfg.out)
    cases = case_folders(cfg.images)
    items, refused = [], []
    for case, paths in ({c: [d] for c, d in cases.items()} if cases else {"": list(cfg.images)}).items():
        found, bad = collect(paths, out / case if case else out, case)
        items += found
        refused += bad
    table = Table(out / "cells.csv", ("case",) + COLUMNS if cases else COLUMNS, ("case", "cell") if cases else ("cell",))
    pipe = pipe or load_pipeline(cfg)

    def step(it: Item) -> dict:
        gray, name = read_metaphase(it.path)
        row = karyotype_one(pipe, gray, name, it.out, cfg.boxes, source=it.path).row
        return {"case": it.case, **row} if cases else row

    def by_case(rows: list[dict]) -> None:
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["case"], []).append(r)
        atomic_write_csv(out / "cases.csv", CASE_COLUMNS, case_rows(groups))

    return run_batch(items, step, table, cfg.mode, refused, on_rows=by_case if cases else None, echo=echo,
                     progress=progress)
