"""The Gradio app (``python space/app.py``, ``chromosomenet serve``): one chromosome, or a whole cell.

* **One chromosome** — an image → the top-5 classes, the 300×300 canvas the model saw, a Grad-CAM
  overlay (:mod:`.cam`).
* **Whole cell** — the chromosome images of one cell (files or one zip), or a metaphase image with
  its Pascal-VOC boxes (the Tseng release format, isolated as ``import-tseng`` does) → karyogram,
  ISCN count string, per-chromosome table with review flags, downloads (PNG, CSV, JSON).

The work is done by plain functions (:func:`classify_chromosome`, :func:`karyotype_files`,
:func:`karyotype_metaphase`) that raise :class:`~chromosomenet.errors.ChromosomeNetError` with one
sentence; the page turns that into an error message and keeps serving. Uploads go through
:mod:`.uploads` (caps, header checks, safe zip extraction); weights load via
:func:`~chromosomenet.evaluate.load_classifier` (safetensors only, never pickles).
"""
from __future__ import annotations

import atexit
import csv
import functools
import io
import logging
import os
import shutil
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import labels, sample_dir
from .cam import grad_cam, overlay
from .cells import DEFAULT_THRESHOLD, saved_costs
from .data.images import CANVAS, decode
from .data.importers import voc
from .data.importers.isolate import metaphase_threshold, place_on_canvas
from .data.importers.separate import isolate_boxes
from .data.transforms import prepare
from .errors import BadInputError, ChromosomeNetError
from .evaluate import Predictor, load_classifier
from .models import shipped
from .models.viewnet import is_view_model
from .karyotype import CellCall, KaryotypeCosts, assign, call_table, flag, iscn, render_karyogram, write_call
from .uploads import (MAX_FILE_BYTES, MAX_FILES, MAX_METAPHASE_PIXELS, Upload, UploadError, image_size,
                      read_upload, safe_extract_images)

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_MODEL = "CHROMOSOMENET_MODEL"
MAX_XML_BYTES = 2 * 1024 * 1024
HOW_TO_GET_A_MODEL = (f"**No model loaded.** The shipped model (`models/{shipped.DEFAULT}`) is not in this checkout: "
                      "start the app with `--model local-dir:PATH` (a finished `chromosomenet train` run folder) "
                      f"or `--model hf-hub:ORG/NAME`, set `{ENV_MODEL}`, or train one with `make train`.")


def default_model_spec() -> str | None:
    """``$CHROMOSOMENET_MODEL``, else the shipped default model, else None."""
    if os.environ.get(ENV_MODEL):
        return os.environ[ENV_MODEL]
    folder = shipped.default_model()
    return f"local-dir:{folder}" if folder is not None else None


class Engine:
    """A loaded 24-class model: probabilities for canvases, Grad-CAM for one canvas."""

    def __init__(self, spec: str):
        self.spec = spec
        self.model, self.cfg = load_classifier(spec)
        if list(self.cfg.get("label_names") or ()) != list(labels.NAMES):
            raise BadInputError(spec, "the model does not name the 24 classes 1…22, X, Y in its config "
                                "(pretrained_cfg label_names)", "use a run trained by `chromosomenet train`")
        self.predictor = Predictor(self.model, self.cfg, device=torch.device("cpu"))
        self.names: tuple[str, ...] = tuple(self.cfg["label_names"])
        saved = shipped.costs_beside(spec)  # the cell-level costs tuned for this model, if it ships them
        self.costs, self.threshold, self.costs_from = (saved_costs(str(saved)) if saved else
                                                       (KaryotypeCosts(), DEFAULT_THRESHOLD, "default costs"))

    def probs(self, canvases: list[np.ndarray], batch: int = 64) -> np.ndarray:
        x = torch.from_numpy(np.stack(canvases)).unsqueeze(1)
        return torch.cat([self.predictor(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()

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


def karyotype_canvases(engine: Engine, canvases: list[np.ndarray], ids: list[str], out_dir: Path,
                       title: str) -> CellResult:
    """Assign with the engine's costs, flag below its review threshold, draw and write the call of one cell."""
    call = flag(assign(engine.probs(canvases), engine.costs), engine.threshold)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = render_karyogram(canvases, call, out_dir / "karyogram.png", title=title)
    csv_path, json_path = write_call(call, ids, out_dir, "chromosomes")
    return CellResult(call, call_table(call, ids), png, csv_path, json_path)


def _cell_name(names: list[str]) -> str:
    cells = {Path(n).stem.rsplit("_", 1)[0] for n in names if "_" in Path(n).stem}
    return f"cell {cells.pop()}" if len(cells) == 1 else f"{len(names)} images"


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
    return karyotype_canvases(engine, canvases, [Path(n).stem for n in names], out_dir, _cell_name(names))


def parse_voc(up: Upload) -> list[tuple[int, str, tuple[int, int, int, int]]]:
    """(index, class name as annotated, box) per VOC object; no DTDs or entities (no XML bombs)."""
    if not up.name.lower().endswith(".xml"):
        raise UploadError(up.name, "is not a .xml file", "upload the Pascal-VOC annotation of the metaphase")
    if len(up.data) > MAX_XML_BYTES or b"<!DOCTYPE" in up.data.upper() or b"<!ENTITY" in up.data.upper():
        raise UploadError(up.name, "is too large or declares a DTD/entities", "upload a plain Pascal-VOC annotation")
    try:
        root = ET.fromstring(up.data)
    except ET.ParseError as e:
        raise UploadError(up.name, f"is not well-formed XML ({e})", "upload the Pascal-VOC annotation") from None
    boxes = voc.objects(root)
    bad = next((k for k, _, box in boxes if box is None), None)
    if bad is not None:
        raise UploadError(up.name, f"object {bad} has no valid bndbox", "fix or delete that object")
    if not boxes:
        raise UploadError(up.name, "holds no <object> boxes", "upload the VOC annotation with one box per chromosome")
    if len(boxes) > MAX_FILES:
        raise UploadError(up.name, f"holds {len(boxes)} boxes, over the limit of {MAX_FILES}", "upload one cell")
    return boxes


def _annotated(name: str) -> str:
    try:
        return labels.NAMES[labels.id_of_denver_label(name)]
    except KeyError:
        return name


def karyotype_metaphase(engine: Engine, image_path: str | Path, xml_path: str | Path, out_dir: Path) -> CellResult:
    """One cell from a metaphase photo and its VOC boxes: each box isolated as ``import-tseng`` does."""
    if not image_path or not xml_path:
        raise UploadError("upload", "a metaphase needs both its image and its VOC .xml", "upload both files")
    img, ann = read_upload(image_path), read_upload(xml_path)
    w, h = image_size(img, MAX_METAPHASE_PIXELS)
    boxes = parse_voc(ann)
    try:
        with Image.open(io.BytesIO(img.data)) as im:
            gray = np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError):
        raise UploadError(img.name, "is truncated or damaged", "upload the complete metaphase image") from None
    clipped = [voc.clip(b, w, h) for _, _, b in boxes]
    for (k, _, raw_box), box in zip(boxes, clipped):
        if box is None:
            raise UploadError(ann.name, f"box {k} {raw_box} lies outside the {w}×{h} image",
                              "upload the annotation that belongs to this image")
    # separate=True: as the import the shipped model was trained on (touching chromosomes split)
    isos = isolate_boxes(gray, metaphase_threshold(gray), clipped, separate=True)
    canvases = [np.asarray(place_on_canvas(iso.crop, CANVAS)[0]) for iso in isos]
    ids = [f"{Path(img.name).stem}_{k:02d}" for k, _, _ in boxes]
    result = karyotype_canvases(engine, canvases, ids, out_dir, f"metaphase {Path(img.name).stem}")
    for row, (_, name, _) in zip(result.rows, boxes):
        row["annotated"] = _annotated(name)
    return result


# ---------------------------------------------------------------------------------------------------
# The page


def _examples(work: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[list[str], str]]]:
    """(chromosome png, label), (cell zip, label), ([metaphase jpg, xml], label), copied into ``work``."""
    src = sample_dir()
    with open(src / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    singles = []
    for name in ("1", "9", "18", "21", "X", "Y"):
        r = next(r for r in rows if r["name"] == name and r["quality"] == "ok")
        dst = work / Path(r["file"]).name
        shutil.copyfile(src / r["file"], dst)
        singles.append((str(dst), f"chromosome {name} ({dst.name})"))
    cells = []
    for cell in ("1051261", "103181"):
        files = sorted((r for r in rows if r["cell_id"] == cell), key=lambda r: r["file"])
        counts = np.bincount([int(r["label"]) for r in files], minlength=labels.NUM_CLASSES)
        with zipfile.ZipFile(work / f"cell_{cell}.zip", "w") as z:
            for r in files:
                z.write(src / r["file"], Path(r["file"]).name)
        cells.append((str(work / f"cell_{cell}.zip"), f"cell {cell}: {len(files)} images (annotated {iscn(counts)})"))
    metaphases = []
    fixture = REPO_ROOT / "tests/fixtures/tseng/24_chromosomes_object"
    if (fixture / "JEPG/1051261.jpg").exists():  # a repo checkout: one real metaphase of the release
        for rel in ("JEPG/1051261.jpg", "annotations/1051261.xml"):
            shutil.copyfile(fixture / rel, work / Path(rel).name)
        metaphases.append(([str(work / "1051261.jpg"), str(work / "1051261.xml")], "metaphase 1051261 + VOC boxes"))
    return singles, cells, metaphases


def build_app(model_spec: str | None) -> "gr.Blocks":
    """The Blocks app for ``model_spec`` (None: the default model; no model → the page says how to get one)."""
    import gradio as gr
    import pandas as pd

    spec = model_spec or default_model_spec()
    engine, problem = None, HOW_TO_GET_A_MODEL
    if spec:
        try:
            engine = Engine(spec)
        except ChromosomeNetError as e:
            problem = f"**The model could not be loaded:** {e}\n\n{HOW_TO_GET_A_MODEL}"
    work = Path(tempfile.mkdtemp(prefix="chromosomenet-space-"))  # examples + per-request outputs
    atexit.register(shutil.rmtree, work, True)
    singles, cells, metaphases = _examples(work)

    def fresh_dir() -> Path:
        for old in (work / "requests").glob("*") if (work / "requests").exists() else ():
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        d = work / "requests" / uuid.uuid4().hex
        d.mkdir(parents=True)
        return d

    def guarded(fn):
        @functools.wraps(fn)
        def run(*args):
            if engine is None:
                raise gr.Error(problem.replace("**", ""), print_exception=False)
            try:
                return fn(*args)
            except ChromosomeNetError as e:
                raise gr.Error(str(e), print_exception=False) from None
            except Exception:  # never a stack trace in the page; the server log keeps it
                log.exception("unexpected error in %s", fn.__name__)
                raise gr.Error("Something unexpected went wrong with this upload; please check the file and try "
                               "again (the server logged the details).", print_exception=False) from None
        return run

    @guarded
    def on_chromosome(path):
        if not path:
            raise UploadError("upload", "no image was given", "upload one chromosome image or pick an example")
        r = classify_chromosome(engine, path)
        return r.top5, r.canvas, r.heatmap

    def cell_outputs(r: CellResult):
        df = pd.DataFrame(r.rows).rename(columns={"flag": "review"})
        n_flag = int(df["review"].sum()) if len(df) else 0
        note = (f"{len(r.rows)} chromosomes; {n_flag} flagged for review (confidence < {engine.threshold:.4g}; {engine.costs_from})."
                + (f" {r.call.message}" if r.call.message else ""))
        return str(r.karyogram), r.call.iscn or "no karyotype called", note, df, [str(r.karyogram), str(r.csv),
                                                                                    str(r.json)]

    @guarded
    def on_cell(paths):
        return cell_outputs(karyotype_files(engine, paths, fresh_dir()))

    @guarded
    def on_metaphase(image, xml):
        return cell_outputs(karyotype_metaphase(engine, image, xml, fresh_dir()))

    with gr.Blocks(title="ChromosomeNet", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# ChromosomeNet: chromosome classification and karyotyping\n"
                    "G-banded chromosomes in 24 classes (1…22, X, Y), after Lin, Chen et al. 2022. "
                    "Research demo, **not a medical device**.")
        gr.Markdown(f"Model: {engine.describe()}" if engine else problem, elem_id="model-status")
        with gr.Tab("One chromosome"):
            with gr.Row():
                with gr.Column():
                    c_in = gr.File(label=f"One chromosome image (≤ {CANVAS}×{CANVAS} px; smaller ones are padded)",
                                   file_types=["image"], elem_id="chromosome-upload")
                    c_btn = gr.Button("Classify", variant="primary", elem_id="classify")
                c_label = gr.Label(num_top_classes=5, label="Top-5 classes", elem_id="top5")
            with gr.Row():
                c_canvas = gr.Image(label="As the model saw it (its canonical view, or the 300×300 canvas)", type="pil", format="png")
                c_cam = gr.Image(label="Grad-CAM of the top class", type="pil", format="png")
            c_btn.click(on_chromosome, c_in, [c_label, c_canvas, c_cam], api_name="classify")
            gr.Examples([[p] for p, _ in singles], c_in, [c_label, c_canvas, c_cam], on_chromosome,
                        run_on_click=True, cache_examples=False, example_labels=[t for _, t in singles],
                        label="Chromosomes from the embedded sample (one click each)")
        with gr.Tab("Whole cell"):
            k_iscn = gr.Textbox(label="ISCN (numerical findings only)", elem_id="iscn", render=False)
            k_note = gr.Markdown(render=False)
            k_png = gr.Image(label="Karyogram", type="filepath", elem_id="karyogram", render=False)
            k_table = gr.Dataframe(label="Chromosomes (review = confidence below the threshold)", render=False)
            k_files = gr.File(label="Downloads: karyogram PNG, CSV, JSON", file_count="multiple", render=False)
            outs = [k_png, k_iscn, k_note, k_table, k_files]
            with gr.Row():
                with gr.Column():
                    k_in = gr.File(label=f"The chromosome images of one cell, or one .zip (≤ {MAX_FILES} images)",
                                   file_count="multiple", file_types=["image", ".zip"], elem_id="cell-upload")
                    k_btn = gr.Button("Karyotype the images", variant="primary", elem_id="karyotype")
                    gr.Examples([[[p]] for p, _ in cells], k_in, outs, on_cell, run_on_click=True,
                                cache_examples=False, example_labels=[t for _, t in cells],
                                label="Whole cells from the embedded sample (zip)")
                with gr.Column():
                    m_img = gr.File(label="…or a metaphase image", file_types=["image"], elem_id="metaphase-upload")
                    m_xml = gr.File(label="with its Pascal-VOC boxes (.xml)", file_types=[".xml"], elem_id="voc-upload")
                    m_btn = gr.Button("Karyotype the metaphase", elem_id="karyotype-metaphase")
                    if metaphases:
                        gr.Examples([m for m, _ in metaphases], [m_img, m_xml], outs, on_metaphase,
                                    run_on_click=True, cache_examples=False, example_labels=[t for _, t in metaphases],
                                    label="A metaphase of the Tseng release with its boxes")
            for c in outs:
                c.render()
            k_btn.click(on_cell, k_in, outs, api_name="karyotype")
            m_btn.click(on_metaphase, [m_img, m_xml], outs, api_name="karyotype_metaphase")
        gr.Markdown(f"Uploads: ≤ {MAX_FILE_BYTES // 2**20} MB per file, ≤ {MAX_FILES} images per cell; zips are "
                    "checked before extraction. Karyotype prior: "
                    + (f"{engine.costs_from}; review threshold {engine.threshold:.4g}" if engine else "no model")
                    + ". Data: Tseng et al., Sci. Data 2023 (CC BY 4.0).")
    demo.chromosomenet_work = work  # for launch's allowed_paths and tests
    return demo


def launch(model: str | None = None, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True,
           quiet: bool = False) -> "gr.Blocks":
    """Serve the app on ``host:port`` (loopback by default); ``block=False`` returns once it is up."""
    demo = build_app(model)
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_BYTES, prevent_thread_lock=not block,
                allowed_paths=[str(demo.chromosomenet_work)], ssr_mode=False, quiet=quiet, footer_links=["api"])
    return demo
