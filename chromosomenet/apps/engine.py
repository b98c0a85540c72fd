"""The work behind the Space, as plain functions: a loaded model (:class:`Engine`), one chromosome
(:func:`classify_chromosome`: top-5, the view it saw, Grad-CAM), one cell from its chromosome images or
one zip (:func:`karyotype_files`), or from a bare metaphase photo, its boxes found by the detector or
given as Pascal VOC, separated as ``import-tseng --separate`` does (:func:`karyotype_metaphase`, the
pipeline of :mod:`.metaphase`). Each raises
:class:`~chromosomenet.errors.ChromosomeNetError` with one sentence on bad input; :mod:`.serve` draws
the page around them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import labels
from ..data.images import CANVAS, decode
from ..data.transforms import prepare
from ..data.uploads import (MAX_FILES, MAX_METAPHASE_PIXELS, Upload, UploadError, image_size, read_upload,
                            safe_extract_images)
from ..errors import BadInputError
from ..models import shipped
from ..models.viewnet import is_view_model
from ..pipeline.assign import CellCall, KaryotypeCosts, assign, call_table, flag, write_call
from ..pipeline.cells import DEFAULT_THRESHOLD, saved_costs
from ..pipeline.cases import case_row
from ..pipeline.detect import Detector, load_detector, read_metaphase
from ..pipeline.metaphase import Pipeline, karyotype_one
from ..pipeline.predict import Predictor, load_classifier, predict_canvases, predict_cell
from ..pipeline.render import render_karyogram
from .cam import grad_cam, overlay

MAX_CASE_METAPHASES = 20  # a lab counts 15–20 metaphases of a case and karyotypes a few
REQUEST_SECONDS = 60  # a case (the one request that grows with its upload) stops at the next metaphase past it


class Engine:
    """A loaded 24-class model: probabilities for canvases, Grad-CAM for one canvas."""

    def __init__(self, spec: str, detector: str | None = None):
        self.spec, self.detector_spec, self._detector = spec, detector, None
        self.model, self.cfg = load_classifier(spec)
        if list(self.cfg.get("label_names") or ()) != list(labels.NAMES):
            raise BadInputError(spec, "the model does not name the 24 classes 1…22, X, Y in its config "
                                "(pretrained_cfg label_names)", "use a run trained by `chromosomenet train`")
        self.predictor = Predictor(self.model, self.cfg, device=torch.device("cpu"))
        self.names: tuple[str, ...] = tuple(self.cfg["label_names"])
        saved = shipped.costs_beside(spec)  # the cell-level costs tuned for this model, if it ships them
        self.costs, self.threshold, self.costs_from = (saved_costs(str(saved)) if saved else
                                                       (KaryotypeCosts(), DEFAULT_THRESHOLD, "default costs"))

    def detector(self) -> Detector:
        """The chromosome detector (loaded at its first bare metaphase: the named one, else the shipped one)."""
        if self._detector is None:
            self._detector = load_detector(self.detector_spec)
        return self._detector

    def probs(self, canvases: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """Each canvas as it is (a chromosome without its cell keeps the training lab's scale)."""
        return predict_canvases(self.predictor, canvases, batch)

    def cell_probs(self, canvases: list[np.ndarray]) -> np.ndarray:
        """One cell's canvases, the cell read at the reference scale and greys (:func:`.predict.predict_cell`)."""
        return predict_cell(self.predictor, canvases)[0]

    def _input(self, canvas: np.ndarray) -> torch.Tensor:
        p = self.predictor
        return prepare(torch.tensor(canvas)[None, None], p.img_size, p.mean, p.std)

    def seen(self, canvas: np.ndarray) -> np.ndarray:
        """What the model looks at (×3 for display): the canonical view for view models, else the canvas."""
        if not is_view_model(self.model):
            return canvas
        view = Image.fromarray(self.model.view(self._input(canvas))[0][0, 0].numpy(), "L")
        return np.asarray(view.resize((3 * view.width, 3 * view.height), Image.Resampling.BICUBIC))

    def cam(self, canvas: np.ndarray, class_id: int) -> np.ndarray:
        """Grad-CAM over :meth:`seen` (a view model's feature map lies on its view, not on the canvas)."""
        return grad_cam(self.model, self._input(canvas), class_id)

    def describe(self) -> str:
        c, s, _ = self.cfg["input_size"]
        return f"`{self.spec}` — {self.cfg.get('architecture', type(self.model).__name__)}, {s}×{s} px, {c} channel(s)"


# ---------------------------------------------------------------------------------------------------
# One chromosome


def chromosome_canvas(up: Upload) -> np.ndarray:
    """The uint8 300×300 canvas of one uploaded chromosome (header checked before decoding)."""
    w, h = image_size(up, MAX_METAPHASE_PIXELS)
    if w > CANVAS or h > CANVAS:
        raise UploadError(up.name, f"the image is {w}×{h} pixels, larger than the {CANVAS}×{CANVAS} canvas a "
                          "single chromosome is placed on", f"upload one chromosome on a canvas of at most {CANVAS} "
                          "px (a whole metaphase goes in the Whole cell tab, with its VOC boxes)")
    try:
        return np.asarray(decode(up.data, up.name).image)
    except UploadError:
        raise
    except BadInputError as e:
        raise UploadError(up.name, e.problem, e.fix) from None


@dataclass(frozen=True)
class ChromosomeResult:
    label: str
    top5: dict[str, float]
    canvas: Image.Image   # what the model saw (its canonical view, or the canvas before its resize)
    heatmap: Image.Image  # Grad-CAM of the top class over that image


def classify_chromosome(engine: Engine, path: str | Path) -> ChromosomeResult:
    canvas = chromosome_canvas(read_upload(path))
    p = engine.probs([canvas])[0]
    top = np.argsort(-p)[:5]
    seen = engine.seen(canvas)
    heat = overlay(seen, engine.cam(canvas, int(top[0])))
    return ChromosomeResult(engine.names[top[0]], {engine.names[i]: float(p[i]) for i in top},
                            Image.fromarray(seen, "L"), heat)


# ---------------------------------------------------------------------------------------------------
# A whole cell


@dataclass(frozen=True)
class CellResult:
    call: CellCall
    rows: list[dict]      # call_table rows (+ 'annotated' for a metaphase with named boxes)
    karyogram: Path
    csv: Path
    json: Path
    picture: Path | None = None  # a metaphase's boxes, each labelled by its call
    message: str = ""            # the count's doubts and the call's message (a metaphase's cells.csv message)
    uploads: tuple[Upload, ...] = ()  # what the call was read from: a cell's images, row by row, or one metaphase
    boxes: tuple = ()                 # image and its boxes, row by row (what :mod:`.corrections` writes back)


def karyotype_canvases(engine: Engine, canvases: list[np.ndarray], ids: list[str], out_dir: Path,
                       title: str, forced=None, uploads=()) -> CellResult:
    """Assign with the engine's costs, flag below its review threshold (or ``forced``), draw and write the call."""
    call = flag(assign(engine.cell_probs(canvases), engine.costs), engine.threshold, forced)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = render_karyogram(canvases, call, out_dir / "karyogram.png", title=title)
    csv_path, json_path = write_call(call, ids, out_dir, "chromosomes")
    return CellResult(call, call_table(call, ids), png, csv_path, json_path, uploads=tuple(uploads))


def cell_of(names: list[str]) -> str | None:
    """The cell the images' names share (``<cell>_<k>.png``), else None."""
    cells = {Path(n).stem.rsplit("_", 1)[0] for n in names if "_" in Path(n).stem}
    return cells.pop() if len(cells) == 1 else None


def _cell_name(names: list[str]) -> str:
    cell = cell_of(names)
    return f"cell {cell}" if cell else f"{len(names)} images"


def karyotype_files(engine: Engine, paths: list[str | Path], out_dir: Path) -> CellResult:
    """One cell from its chromosome images, or from one zip of them."""
    paths = list(paths or [])
    if not paths:
        raise UploadError("upload", "no files were given", "upload the chromosome images of one cell, or one zip")
    if len(paths) > MAX_FILES:
        raise UploadError("upload", f"{len(paths)} files is over the limit of {MAX_FILES}", "upload one cell's images")
    if any(str(getattr(p, "orig_name", None) or p).lower().endswith(".zip") for p in paths):
        if len(paths) != 1:
            raise UploadError("upload", "a zip came with other files", "upload either one zip or the images")
        read_upload(paths[0])  # size / emptiness checks
        paths = safe_extract_images(paths[0], out_dir / "unzipped")
    ups = [read_upload(p) for p in paths]
    canvases = [chromosome_canvas(u) for u in ups]
    names = [u.name for u in ups]
    return karyotype_canvases(engine, canvases, [Path(n).stem for n in names], out_dir, _cell_name(names), uploads=ups)


def karyotype_metaphase(engine: Engine, image_path: str | Path, xml_path: str | Path | None, out_dir: Path) -> CellResult:
    """One cell from a bare metaphase image (the detector finds the chromosomes) or from the image and its
    Pascal-VOC boxes: separated, classified and assigned by :mod:`.metaphase`, as ``karyotype --metaphase``."""
    if not image_path:
        raise UploadError("upload", "no metaphase image was given",
                          "upload a metaphase image (its Pascal-VOC boxes are optional)")
    gray, name = read_metaphase(image_path)
    pipe = Pipeline(engine.predictor, engine.costs, engine.threshold, None if xml_path else engine.detector())
    r = karyotype_one(pipe, gray, name, out_dir, xml_path)
    rows = call_table(r.call, r.ids)
    if any(r.annotated):
        for row, name in zip(rows, r.annotated):
            row["annotated"] = name or "?"
    return CellResult(r.call, rows, r.karyogram, r.calls_csv, r.calls_csv.with_suffix(".json"), r.picture,
                      r.row["message"], uploads=(read_upload(image_path),), boxes=tuple(tuple(map(int, b)) for b in r.boxes))


@dataclass(frozen=True)
class CaseResult:
    case: dict                    # the cases.csv row
    cells: list[dict]             # the cells.csv rows, one per metaphase
    pictures: list[tuple[str, str]]  # (karyogram, caption) per metaphase


def karyotype_case(engine: Engine, paths: list[str | Path], out_dir: Path, deadline: float | None = None) -> CaseResult:
    """The bare metaphase images of one patient: each karyotyped, then the case called from them (:mod:`.cases`);
    past ``deadline`` (``time.monotonic()``) it stops before the next metaphase with one sentence."""
    paths = list(paths or [])
    if not paths:
        raise UploadError("upload", "no metaphase images were given", "upload the metaphase images of one case")
    if len(paths) > MAX_CASE_METAPHASES:
        raise UploadError("upload", f"{len(paths)} images is over the limit of {MAX_CASE_METAPHASES}",
                          "upload the metaphases of one case")
    pipe = Pipeline(engine.predictor, engine.costs, engine.threshold, engine.detector())
    cells, pictures = [], []
    for k, path in enumerate(paths):
        if deadline is not None and time.monotonic() > deadline:
            raise UploadError("upload", f"the case took too long (stopped after {k} of {len(paths)} metaphases)",
                              "send fewer metaphases at a time, or karyotype the case with the command line")
        gray, name = read_metaphase(path)
        r = karyotype_one(pipe, gray, name, out_dir, None)
        cells.append(r.row)
        pictures.append((str(r.karyogram), f"{r.row['cell']}: {r.row['predicted_iscn'] or 'no karyotype'}"
                         + (" (count under review)" if r.row["count_review"] else "")))
    return CaseResult(case_row("uploaded case", cells), cells, pictures)
