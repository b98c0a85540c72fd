"""The Gradio app (``python space/app.py``, ``chromosomenet serve``): one chromosome, or a whole cell.

* **One chromosome** — an image → the top-5 classes, the 300×300 canvas the model saw, a Grad-CAM
  overlay (:mod:`.cam`).
* **Whole cell** — the chromosome images of one cell (files or one zip), or a bare metaphase image
  (the detector finds the chromosomes; Pascal-VOC boxes optional, the Tseng release format) →
  karyogram, the metaphase with every box labelled by its call, ISCN count string, per-chromosome
  table with review flags, downloads (PNG, CSV, JSON).
* **A case** — the bare metaphase images of one patient → each karyotyped, and the case's karyotype
  as a lab reports it (its cells with a final count; a clone makes a mosaic).

The work is done by plain functions in :mod:`.engine` (``classify_chromosome``, ``karyotype_files``,
``karyotype_metaphase``, ``karyotype_case``) that raise :class:`~chromosomenet.errors.ChromosomeNetError` with one
sentence; the page turns that into an error message and keeps serving. Uploads go through
:mod:`.uploads` (caps, header checks, safe zip extraction); weights load via
:func:`~chromosomenet.pipeline.predict.load_classifier` (safetensors only, never pickles).
"""
from __future__ import annotations

import atexit
import csv
import functools
import logging
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from .. import labels
from ..data.images import CANVAS
from ..data.uploads import MAX_FILE_BYTES, MAX_FILES, UploadError
from ..errors import ChromosomeNetError
from ..models import shipped
from ..pipeline.assign import iscn
from ..samples import sample_cases_dir, sample_dir, sample_metaphases_dir
from .corrections import corrected_zip
from .engine import (MAX_CASE_METAPHASES, REQUEST_SECONDS, CellResult, Engine, classify_chromosome, karyotype_case,
                     karyotype_files, karyotype_metaphase)

log = logging.getLogger(__name__)
ENV_MODEL = "CHROMOSOMENET_MODEL"
ENV_DETECTOR = "CHROMOSOMENET_DETECTOR"
# Sized for 2 cores: one request works at a time (torch uses both cores for it; two at once only share them),
# at most QUEUE_SIZE wait (the next is told the queue is full), and a case stops past REQUEST_SECONDS.
# Uploads: ≤ MAX_FILE_BYTES each, refused by the server before they reach a handler.
CONCURRENCY, QUEUE_SIZE = 1, 16
HOW_TO_GET_A_MODEL = (f"**No model loaded.** The shipped model (`models/{shipped.DEFAULT}`) is not in this checkout: "
                      "start the app with `--model local-dir:PATH` (a finished `chromosomenet train` run folder) "
                      f"or `--model hf-hub:ORG/NAME`, set `{ENV_MODEL}`, or train one with `make train`.")


def default_model_spec() -> str | None:
    """``$CHROMOSOMENET_MODEL``, else the shipped default model, else None."""
    if os.environ.get(ENV_MODEL):
        return os.environ[ENV_MODEL]
    folder = shipped.default_model()
    return f"local-dir:{folder}" if folder is not None else None



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
    images = sample_metaphases_dir()  # the sample's own metaphase images and their VOC boxes
    for stem in ("1051261", "103181"):
        if (images / f"{stem}.jpg").exists():
            shutil.copyfile(images / f"{stem}.jpg", work / f"{stem}.jpg")
            metaphases.append(([str(work / f"{stem}.jpg"), None], f"metaphase {stem}, bare image"))
    if (images / "1051261.xml").exists():
        shutil.copyfile(images / "1051261.xml", work / "1051261.xml")
        metaphases.append(([str(work / "1051261.jpg"), str(work / "1051261.xml")], "metaphase 1051261 + its VOC boxes"))
    return singles, cells, metaphases


def build_app(model_spec: str | None, detector_spec: str | None = None) -> "gr.Blocks":
    """The Blocks app for ``model_spec`` (None: the default model; no model → the page says how to get one)
    and ``detector_spec`` (None: ``$CHROMOSOMENET_DETECTOR``, else the shipped detector, loaded at first use)."""
    import gradio as gr
    import pandas as pd

    spec = model_spec or default_model_spec()
    engine, problem = None, HOW_TO_GET_A_MODEL
    if spec:
        try:
            engine = Engine(spec, detector_spec or os.environ.get(ENV_DETECTOR))
        except ChromosomeNetError as e:
            problem = f"**The model could not be loaded:** {e}\n\n{HOW_TO_GET_A_MODEL}"
    work = Path(tempfile.mkdtemp(prefix="chromosomenet-space-"))  # examples + per-request outputs
    atexit.register(shutil.rmtree, work, True)
    singles, cells, metaphases = _examples(work)
    case_example = [str(shutil.copy(p, work)) for p in sorted(sample_cases_dir().glob("110102/*.jpg"))]

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
                + (f" {r.message or r.call.message}" if r.message or r.call.message else ""))
        files = [str(r.karyogram), str(r.csv), str(r.json)] + ([str(r.picture)] if r.picture else [])
        return (str(r.karyogram), str(r.picture) if r.picture else None, r.call.iscn or "no karyotype called", note,
                df, files, r)

    @guarded
    def on_cell(paths):
        return cell_outputs(karyotype_files(engine, paths, fresh_dir()))

    @guarded
    def on_metaphase(image, xml):
        return cell_outputs(karyotype_metaphase(engine, image, xml, fresh_dir()))

    @guarded
    def on_corrected(result, table):
        rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table or [])
        return str(corrected_zip(result, rows, fresh_dir()))

    @guarded
    def on_case(paths):
        r = karyotype_case(engine, paths, fresh_dir(), deadline=time.monotonic() + REQUEST_SECONDS)
        c = r.case
        text = (f"**{c['predicted_iscn'] or 'no karyotype called'}** from {c['final']} of {c['metaphases']} metaphases "
                f"with a final count (counts seen: {c['counts']})" + ("; **review**" if c["review"] else "")
                + (f". {c['message']}" if c["message"] else ""))
        cols = ["cell", "n", "predicted_iscn", "count_review", "flagged", "message"]
        return text, pd.DataFrame([{k: row[k] for k in cols} for row in r.cells]), r.pictures

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
                    gr.Markdown("Read at its own pixels and greys, the training lab's: size is a cue, and a "
                                "chromosome without its cell cannot be brought to the reference scale and greys. From "
                                "another microscope, use the Whole cell tab: each cell is read at one scale there.")
                    c_btn = gr.Button("Classify", variant="primary", elem_id="classify")
                c_label = gr.Label(num_top_classes=5, label="Top-5 classes", elem_id="top5")
            with gr.Row():
                c_canvas = gr.Image(label="As the model saw it (its canonical view, or the 300×300 canvas)", type="pil", format="png")
                c_cam = gr.Image(label="Grad-CAM of the top class", type="pil", format="png")
            c_btn.click(on_chromosome, c_in, [c_label, c_canvas, c_cam], api_name="classify", concurrency_id="work")
            gr.Examples([[p] for p, _ in singles], c_in, [c_label, c_canvas, c_cam], on_chromosome,
                        run_on_click=True, cache_examples=False, example_labels=[t for _, t in singles],
                        label="Chromosomes from the embedded sample (one click each)")
        with gr.Tab("Whole cell"):
            k_iscn = gr.Textbox(label="ISCN (numerical findings only)", elem_id="iscn", render=False)
            k_note = gr.Markdown(render=False)
            k_png = gr.Image(label="Karyogram", type="filepath", elem_id="karyogram", render=False)
            k_boxes = gr.Image(label="The metaphase: each box numbered with its call (red: review)", type="filepath",
                               elem_id="metaphase-boxes", render=False)
            k_table = gr.Dataframe(label="Chromosomes (review = confidence below the threshold, or a merged box of a "
                                         "metaphase). Correct a call in the label column (1 … 22, X, Y; - for no "
                                         "chromosome), then download the corrected cell", interactive=True,
                                   elem_id="calls-table", render=False)
            k_files = gr.File(label="Downloads: karyogram PNG, CSV, JSON", file_count="multiple", render=False)
            k_state = gr.State()  # this user's last cell: what a corrected download is written from
            outs = [k_png, k_boxes, k_iscn, k_note, k_table, k_files, k_state]
            with gr.Row():
                with gr.Column():
                    k_in = gr.File(label=f"The chromosome images of one cell, or one .zip (≤ {MAX_FILES} images)",
                                   file_count="multiple", file_types=["image", ".zip"], elem_id="cell-upload")
                    k_btn = gr.Button("Karyotype the images", variant="primary", elem_id="karyotype")
                    gr.Examples([[[p]] for p, _ in cells], k_in, outs, on_cell, run_on_click=True,
                                cache_examples=False, example_labels=[t for _, t in cells],
                                label="Whole cells from the embedded sample (zip)")
                with gr.Column():
                    m_img = gr.File(label="…or a bare metaphase image: the detector finds the chromosomes",
                                    file_types=["image"], elem_id="metaphase-upload")
                    m_xml = gr.File(label="optional: its Pascal-VOC boxes (.xml), used instead of the detector's",
                                    file_types=[".xml"], elem_id="voc-upload")
                    m_btn = gr.Button("Karyotype the metaphase", elem_id="karyotype-metaphase")
                    if metaphases:
                        gr.Examples([m for m, _ in metaphases], [m_img, m_xml], outs, on_metaphase,
                                    run_on_click=True, cache_examples=False, example_labels=[t for _, t in metaphases],
                                    label="Metaphases of the embedded sample (Tseng release)")
            with gr.Row():
                k_png.render()
                k_boxes.render()
            for c in (k_iscn, k_note, k_table):
                c.render()
            with gr.Row():
                k_fix = gr.Button("Download the corrected cell (what `chromosomenet adapt` learns from)",
                                  elem_id="download-corrected")
                k_fixed = gr.File(label="The corrected cell: a metaphase and its VOC boxes, or class folders (zip)",
                                  elem_id="corrected-file")
            k_files.render()
            k_fix.click(on_corrected, [k_state, k_table], k_fixed, api_name="corrected_cell", concurrency_id="work")
            k_btn.click(on_cell, k_in, outs, api_name="karyotype", concurrency_id="work")
            m_btn.click(on_metaphase, [m_img, m_xml], outs, api_name="karyotype_metaphase", concurrency_id="work")
        with gr.Tab("A case"):
            gr.Markdown("The bare metaphase images of one patient: each is karyotyped, then the case is called from "
                        "the metaphases whose count is final, as a lab reports it (a clone of two cells with the same "
                        "gain, or three with the same loss, is a mosaic).")
            s_in = gr.File(label=f"The metaphase images of one case (≤ {MAX_CASE_METAPHASES})", file_count="multiple",
                           file_types=["image"], elem_id="case-upload")
            s_btn = gr.Button("Karyotype the case", variant="primary", elem_id="karyotype-case")
            s_out = [gr.Markdown(elem_id="case-call"), gr.Dataframe(label="Metaphases"),
                     gr.Gallery(label="Karyograms", columns=3)]
            if case_example:
                gr.Examples([[case_example]], s_in, s_out, on_case, run_on_click=True, cache_examples=False,
                            example_labels=["case 110102 of the embedded sample (6 metaphases)"])
            s_btn.click(on_case, s_in, s_out, api_name="karyotype_case", concurrency_id="work")
        gr.Markdown(f"Uploads: ≤ {MAX_FILE_BYTES // 2**20} MB per file, ≤ {MAX_FILES} images per cell; zips are "
                    f"checked before extraction. One request at a time, {QUEUE_SIZE} waiting at most; a case stops "
                    f"after {REQUEST_SECONDS} s. Karyotype prior: "
                    + (f"{engine.costs_from}; review threshold {engine.threshold:.4g}" if engine else "no model")
                    + ". Data: Tseng et al., Sci. Data 2023 (CC BY 4.0).")
    demo.chromosomenet_work = work  # for launch's allowed_paths and tests
    return demo


def launch(model: str | None = None, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True,
           quiet: bool = False, detector: str | None = None) -> "gr.Blocks":
    """Serve the app on ``host:port`` (loopback by default); ``block=False`` returns once it is up."""
    demo = build_app(model, detector)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_BYTES, prevent_thread_lock=not block,
                allowed_paths=[str(demo.chromosomenet_work)], ssr_mode=False, quiet=quiet, footer_links=["api"])
    return demo
