"""`chromosomenet demo`: the main job — a trained model on a dataset it never saw, end to end.

    evaluate (every chromosome) → karyotype (every cell, with the costs shipped beside the model)
    → OUT/README.md: accuracy and the paper's metrics, per-class accuracy, the ISCN count string
      of each cell beside its annotation, and every karyogram

    OUT/eval/   predictions.parquet, metrics.json, confusion.png, per_class.png
    OUT/cells/  cells.csv, summary.json, karyograms/<cell>.png, calls/
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .cells import KaryotypeConfig, karyotype_split
from .data.loading import ALL
from .evaluate import EvalConfig, evaluate
from .fsutil import atomic_write_text
from .markdown import pct
from .markdown import table as md_table
from .models import shipped


@dataclass(frozen=True)
class DemoConfig:
    model: str                      # a model folder (local-dir:) or hf-hub: id
    data: str
    out: Path
    split: str = ALL                # the shipped model never saw the embedded sample: score all of it
    costs: str | None = None        # default: the model folder's karyotype_costs.json
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
    ])
    per_class = md_table(["class"] + list(m["per_class_accuracy"]),
                         [["accuracy %"] + [pct(v) for v in m["per_class_accuracy"].values()]])
    cell_rows = [[c["cell"], c["case"], c["type"], c["n"], f"`{c['predicted_iscn']}`", f"`{c['true_iscn']}`",
                  "yes" if c["match"] == "True" else "**no**", f"{100 * float(c['accuracy_before']):.1f}",
                  f"{100 * float(c['accuracy_after']):.1f}", c["flagged"]] for c in cells]
    cell_table = md_table(["cell", "case", "type", "n", "called", "annotated", "match", "acc. % before",
                           "acc. % after", "flagged"], cell_rows)
    pictures = "\n\n".join(f"### {c['cell']}: {c['predicted_iscn']}\n\n![karyogram of {c['cell']}](cells/karyograms/{c['cell']}.png)"
                           for c in cells)
    text = f"""# chromosomenet demo: `{cfg.model}` on `{cfg.data}` ({cfg.split})

{headline}

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
