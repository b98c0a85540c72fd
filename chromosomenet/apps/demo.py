"""`chromosomenet demo`: the main job — a trained model on a dataset it never saw, end to end.

    evaluate (every chromosome) → karyotype (every cell, with the costs shipped beside the model)
    → with ``metaphases`` (the sample's metaphase images + VOC boxes): every metaphase karyotyped from
      the bare image (the detector finds the chromosomes) and from its annotated boxes, side by side
    → OUT/README.md: accuracy and the paper's metrics, per-class accuracy, the ISCN count string
      of each cell beside its annotation, and every karyogram

    OUT/eval/   predictions.parquet, metrics.json, confusion.png, per_class.png
    OUT/cells/  cells.csv, summary.json, karyograms/<cell>.png, calls/
    OUT/metaphases/bare/, OUT/metaphases/annotated/   as ``karyotype --metaphase`` writes them
"""
from __future__ import annotations

import csv
import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import voc
from ..data.loading import ALL
from ..evaluation.evaluate import EvalConfig, evaluate
from ..fsutil import atomic_write_text
from ..markdown import pct
from ..markdown import table as md_table
from ..metrics.detection import detection_metrics, matched_calls
from ..models import shipped
from ..pipeline.cells import KaryotypeConfig, karyotype_split
from ..pipeline.metaphase import MetaphaseConfig, class_of, karyotype_metaphases, load_pipeline


@dataclass(frozen=True)
class DemoConfig:
    model: str                      # a model folder (local-dir:) or hf-hub: id
    data: str
    out: Path
    split: str = ALL                # the shipped model never saw the embedded sample: score all of it
    costs: str | None = None        # default: the model folder's karyotype_costs.json
    metaphases: str | None = None   # a folder of metaphase images and their <stem>.xml VOC boxes
    detector: str | None = None     # default: the shipped detector
    cases: str | None = None        # a folder of case folders of metaphase images: cells.csv and cases.csv
    timing_samples: int = 200
    progress: bool = True


def run_demo(cfg: DemoConfig) -> Path:
    out = Path(cfg.out)
    m = evaluate(EvalConfig(model=cfg.model, data=cfg.data, out=out / "eval", split=cfg.split,
                            timing_samples=cfg.timing_samples, throughput_seconds=1.0, progress=cfg.progress))
    facts = json.loads((out / "eval" / "metrics.json").read_text())
    s = karyotype_split(KaryotypeConfig(run=cfg.model, out=out / "cells", data=cfg.data, split=cfg.split,
                                        costs=cfg.costs or (str(c) if (c := shipped.costs_beside(cfg.model)) else None),
                                        workers=0, progress=cfg.progress))
    with open(out / "cells" / "cells.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    ci = m.get("accuracy_ci95")
    headline = md_table(["measure", "value"], [
        ["chromosomes / cells / cases", f"{s['chromosomes']} / {s['cells']} / {len({c['case'] for c in cells})}"],
        ["instance accuracy" + (" (95 % CI over cases)" if ci else ""),
         f"{pct(m['accuracy'])} %" + (f" ({pct(ci[0])}–{pct(ci[1])})" if ci else "")],
        ["after cell-level assignment", f"{pct(s['instance_accuracy_after'])} %"],
        ["macro F1 / Cohen's kappa / top-2", f"{pct(m['f1'])} / {m['kappa']:.4f} / {pct(m['top2_accuracy'])} %"],
        [f"exact ISCN count, normal cells ({s['normal_cells']})", f"{pct(s['iscn_exact_normal'])} %"],
        [f"exact ISCN count, numerically abnormal cells ({s['numerical_cells']})", f"{pct(s['iscn_exact_numerical'])} %"],
        ["flagged for review / accuracy of the unflagged",
         f"{pct(s['fraction_flagged'])} % / {pct(s['accuracy_unflagged'])} %"],
        ["InferenceTime (s per 1,000, one at a time) / throughput",
         f"{facts['inference_time']['seconds_per_1000']:.2f} s / {facts['throughput']['images_per_s']:,.0f} img/s "
         f"({facts['device']}, {facts['torch_threads']} threads)"],
    ] + ([["cells read at the reference scale and greys" + (", together (BatchNorm by the cell's statistics, "
           "mirror average)" if facts.get("cells_read_together") else "") + ": factor p10 / p50 / p90",
           "{factor_p10:.2f} / {factor_p50:.2f} / {factor_p90:.2f} (median chromosome → {reference_length:g} px)"
           .format(**facts["cell_scale"])]] if facts.get("cell_scale") else []))
    per_class = md_table(["class"] + list(m["per_class_accuracy"]),
                         [["accuracy %"] + [pct(v) for v in m["per_class_accuracy"].values()]])
    cell_rows = [[c["cell"], c["case"], c["type"], c["n"], f"`{c['predicted_iscn']}`", f"`{c['true_iscn']}`",
                  "yes" if c["match"] == "True" else "**no**", f"{100 * float(c['accuracy_before']):.1f}",
                  f"{100 * float(c['accuracy_after']):.1f}", c["flagged"]] for c in cells]
    cell_table = md_table(["cell", "case", "type", "n", "called", "annotated", "match", "acc. % before",
                           "acc. % after", "flagged"], cell_rows)
    pictures = "\n\n".join(f"### {c['cell']}: {c['predicted_iscn']}\n\n![karyogram of {c['cell']}](cells/karyograms/{c['cell']}.png)"
                           for c in cells)
    bare = _bare_metaphases(cfg, out) if cfg.metaphases else ""
    bare += _cases(cfg, out) if cfg.cases else ""
    text = f"""# chromosomenet demo: `{cfg.model}` on `{cfg.data}` ({cfg.split})

{headline}
{bare}
Costs and review threshold: {s['tuned_on']}. ISCN strings are numerical findings (counts) only;
the annotated ones come from the release's karyotype files.

## Per-class accuracy

{per_class}

![confusion matrix](eval/confusion.png)

## Cells

{cell_table}

## Karyograms

{pictures}
"""
    atomic_write_text(out / "README.md", text)
    return out / "README.md"


def _cases(cfg: DemoConfig, out: Path) -> str:
    """Karyotype a folder of case folders from the bare images, as a lab reports a patient: the Markdown section."""
    pipe = load_pipeline(MetaphaseConfig(images=(), out=out, classifier=cfg.model, detector=cfg.detector, costs=cfg.costs))
    cells = _every(MetaphaseConfig(images=(cfg.cases,), out=out / "cases", mode="overwrite"), pipe)
    with open(out / "cases" / "cases.csv", newline="") as f:
        cases = list(csv.DictReader(f))
    truth = {p.stem: int(_read_voc(p)[0].shape[0]) for p in Path(cfg.cases).glob("*/*.xml")}
    case_table = md_table(["case", "metaphases", "final counts", "counts seen", "called", "mosaicism", "review", "message"],
                          [[c["case"], c["metaphases"], c["final"], c["counts"], f"`{c['predicted_iscn']}`" if c["predicted_iscn"] else "none called",
                            c["mosaicism"] or "–", c["review"], c["message"]] for c in cases])
    cell_table = md_table(["case", "metaphase", "annotated count", "count", "called", "count final", "message"],
                          [[c["case"], c["cell"], truth.get(c["cell"], "–"), c["n"], f"`{c['predicted_iscn']}`" if c["predicted_iscn"] else "none called",
                            "no" if c["count_review"] else "yes", c["message"]] for c in cells])
    return f"""
## A case, as a lab reports it

`chromosomenet karyotype --metaphase {cfg.cases}`: one folder per case, every metaphase from its bare
image; `cases.csv` calls each case from its cells whose count is final (a clone of two cells with the
same gain, or three with the same loss, makes a mosaic).

{case_table}

{cell_table}
"""


def _every(cfg: MetaphaseConfig, pipe) -> list[dict]:
    """Every metaphase's cells.csv row (the report's folders are redone each run); a refused sample image stops it."""
    report = karyotype_metaphases(cfg, pipe)
    report.complete("karyotyped")
    return report.done


def _read_voc(path: Path) -> tuple[np.ndarray, list[int | None]]:
    objs = voc.objects(ET.parse(path).getroot())
    return np.asarray([b for _, _, b in objs], dtype=np.float32).reshape(-1, 4), [class_of(n) for _, n, _ in objs]


def _bare_metaphases(cfg: DemoConfig, out: Path) -> str:
    """Karyotype every metaphase from its bare image and from its annotated boxes; the Markdown section."""
    base = MetaphaseConfig(images=(cfg.metaphases,), out=out / "metaphases" / "bare", classifier=cfg.model,
                           detector=cfg.detector, costs=cfg.costs, mode="overwrite")
    pipe = load_pipeline(base)
    start = time.perf_counter()
    bare = _every(base, pipe)
    seconds = (time.perf_counter() - start) / max(len(bare), 1)
    pipe.detector = None
    annotated = _every(MetaphaseConfig(images=(cfg.metaphases,), out=out / "metaphases" / "annotated",
                                       boxes=cfg.metaphases, mode="overwrite"), pipe)
    truth, found, rows, n = [], [], [], {"matched": 0, "right": 0, "true": 0, "found": 0}
    for b, a in zip(bare, annotated):
        t_boxes, t_classes = _read_voc(Path(cfg.metaphases) / f"{a['cell']}.xml")
        d_boxes, d_calls = _read_voc(out / "metaphases" / "bare" / "boxes" / f"{b['cell']}.xml")
        truth.append(t_boxes)
        found.append((d_boxes, np.ones(len(d_boxes))))
        m = matched_calls(t_boxes, t_classes, d_boxes, d_calls)
        for k in n:
            n[k] += m[k]
        calls = (a["annotated_iscn"], a["predicted_iscn"], b["predicted_iscn"])
        rows.append([b["cell"], *(f"`{v}`" if v else "none called" for v in calls),
                     "**review**" if b["count_review"] else "final",
                     f"{m['found']} / {m['true']}", m["matched"], f"{m['right']} / {m['matched']}",
                     f"![{b['cell']}](metaphases/bare/metaphases/{b['cell']}.png)"])
    det = detection_metrics(truth, found, 0.5)
    final = [(b, a) for b, a in zip(bare, annotated) if not b["count_review"]]
    exact = lambda rs: sum(r["predicted_iscn"] == a["annotated_iscn"] for r, a in zip(rs, annotated))  # noqa: E731
    summary = md_table(["measure", "from the bare images", "from the annotated boxes"], [
        ["metaphases with the exact ISCN count string", f"{exact(bare)} / {len(bare)}", f"{exact(annotated)} / {len(annotated)}"],
        ["chromosomes found / annotated", f"{n['found']} / {n['true']}", f"{n['true']} / {n['true']}"],
        ["detection recall / precision at IoU 0.5", f"{pct(det['recall50'])} / {pct(det['precision50'])} %", "–"],
        ["metaphases with the exact chromosome count", f"{pct(det['exact_count'])} %", "100 %"],
        ["metaphases whose count is final (`count_review` false): wrong count among them",
         f"{len(final)} / {len(bare)}: {sum(b['n'] != int(a['n']) for b, a in final)}", "–"],
        ["calls right, of the chromosomes matched to an annotated box",
         f"{pct(n['right'] / max(n['matched'], 1))} % ({n['right']} / {n['matched']})", "–"],
        ["seconds per metaphase (read, detect, separate, classify, assign, draw)", f"{seconds:.2f}", "–"]])
    table = md_table(["metaphase", "annotated", "called from the annotated boxes", "called from the bare image",
                      "count", "found / annotated", "matched (IoU ≥ 0.5)", "calls right of matched", "boxes found"], rows)
    return f"""
## From the bare metaphase images

The {len(bare)} metaphases these chromosomes were cut from (`{cfg.metaphases}`), karyotyped twice by
`chromosomenet karyotype --metaphase`: from the bare image (detector `{pipe.facts['detector']}` finds the
chromosomes) and from the release's annotated boxes. Both then separate, classify and assign alike.

{summary}

{table}
"""
