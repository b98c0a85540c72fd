"""Run a suite (train → evaluate each model) and write a report shaped like the paper's section 5.

    REPORT_DIR/README.md           tables 1-4 and 6, figures 4-5, run facts
    REPORT_DIR/tables/*.csv        the same tables as CSV
    REPORT_DIR/figures/*.png
    REPORT_DIR/runs/<model>/       training runs (timm model repos); finished ones are reused
    REPORT_DIR/eval/<model>/       predictions.parquet, metrics.json, figures
"""
from __future__ import annotations

import csv
import io
import json
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .. import __version__, labels
from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..markdown import pct
from ..markdown import table as md_table
from ..metrics.classification import quartiles
from ..metrics.figures import boxplot_by_class_png, boxplot_by_model_png
from ..models.classic import PRIOR_METHODS
from ..models.registry import BASELINES, PAPER_BASELINES
from ..pipeline.cells import KaryotypeConfig, karyotype_split
from ..training.classifier import TrainConfig, run_identity, train
from .evaluate import EvalConfig, evaluate

SUITES = {"paper": tuple(PAPER_BASELINES) + tuple(PRIOR_METHODS)}
TABLE2 = (("precision", "precision"), ("accuracy", "accuracy"), ("f1", "F1"), ("sensitivity", "sensitivity"),
          ("specificity", "specificity"))


@dataclass(frozen=True)
class BenchmarkConfig:
    data: str
    out: Path
    suite: str = "paper"
    models: tuple[str, ...] | None = None
    recipe: dict = field(default_factory=dict)   # TrainConfig keyword arguments
    timing_samples: int = 1000
    throughput_seconds: float = 2.0
    progress: bool = True


def _run_model(name: str, cfg: BenchmarkConfig) -> dict:
    """Train (or reuse / resume) and evaluate one model; returns its metrics.json content."""
    run_dir, eval_dir = cfg.out / "runs" / name, cfg.out / "eval" / name
    train_cfg = TrainConfig(model=name, data=cfg.data, out=run_dir, progress=cfg.progress, **cfg.recipe)
    done = run_dir / "train_report.json"
    if done.exists() and (run_dir / "model.safetensors").exists():
        wanted = json.loads(json.dumps(run_identity(train_cfg)))  # as stored: JSON types
        if json.loads(done.read_text())["identity"] != wanted:
            raise BadInputError(run_dir, "was trained on other data or with another recipe",
                                "give the benchmark a new --out, or delete this run to retrain it")
    else:  # never started, or killed: (re)start; a checkpoint resumes where it stopped
        train(replace(train_cfg, resume=(run_dir / "checkpoint" / "state.json").exists()))
    metrics_file = eval_dir / "metrics.json"
    if not metrics_file.exists() or metrics_file.stat().st_mtime < (run_dir / "model.safetensors").stat().st_mtime:
        evaluate(EvalConfig(model=f"local-dir:{run_dir}", data=cfg.data, out=eval_dir,
                            timing_samples=cfg.timing_samples, throughput_seconds=cfg.throughput_seconds,
                            progress=cfg.progress))
    return json.loads(metrics_file.read_text())


def _run_cells(name: str, cfg: BenchmarkConfig) -> dict | None:
    """Cell-level summary of one model (tuned on validation, scored on test), when cells are known."""
    from datasets import load_dataset_builder

    features = load_dataset_builder(cfg.data).info.features or {}
    if "cell_id" not in features:
        return None
    run_dir, out = cfg.out / "runs" / name, cfg.out / "cells" / name
    summary = out / "summary.json"
    if not summary.exists() or summary.stat().st_mtime < (run_dir / "model.safetensors").stat().st_mtime:
        karyotype_split(KaryotypeConfig(run=f"local-dir:{run_dir}", out=out, data=cfg.data,
                                        workers=cfg.recipe.get("workers", 2), progress=cfg.progress))
    return json.loads(summary.read_text())


def _cell_section(cells: dict[str, dict]) -> str:
    if not cells:
        return "## Cell level\n\nThe dataset has no `cell_id` column: no cell-level karyotyping.\n"
    rows = [[m, s["cells"], f"{pct(s['instance_accuracy_before'])} → {pct(s['instance_accuracy_after'])}",
             f"{pct(s['iscn_exact_normal'])} ({s['normal_cells']})", f"{pct(s['iscn_exact_numerical'])} ({s['numerical_cells']})",
             "–" if s["false_aneuploidy_per_100_normal"] is None else f"{s['false_aneuploidy_per_100_normal']:.1f}",
             pct(s["fraction_flagged"]), pct(s["accuracy_unflagged"])] for m, s in cells.items()]
    header = ["model", "cells", "instance acc. % before → after", "ISCN exact %, normal (n)",
              "ISCN exact %, numerical (n)", "false calls / 100 normal", "flagged %", "unflagged acc. %"]
    return ("## Cell level (constrained assignment, numerical ISCN)\n\nCosts and review threshold tuned on "
            "validation; details in `cells/<model>/`.\n\n" + md_table(header, rows) + "\n")


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _or_dash(v) -> str:
    return "–" if v is None else str(v)


def _bold_best(rows: list[list], cols: list[int], lower_better: set[int] = frozenset()) -> list[list]:
    """Mark the best value per column in bold (ties all marked), as the paper does."""
    out = [list(r) for r in rows]
    if len(rows) < 2:
        return out  # nothing to compare with
    for c in cols:
        values = [float(r[c]) for r in rows if r[c] not in ("–", None)]
        if not values:
            continue
        best = min(values) if c in lower_better else max(values)
        for r in out:
            if r[c] not in ("–", None) and float(r[c]) == best:
                r[c] = f"**{r[c]}**"
    return out


def _tables(results: dict[str, dict], img_size: int) -> tuple[str, dict[str, tuple[list, list]]]:
    """Markdown sections and CSV tables (name → (header, rows)) for tables 1-4 and 6."""
    csvs: dict[str, tuple[list, list]] = {}
    t1 = [[m, f"{r['complexity']['params_m']:.3f}", f"{r['complexity']['gmacs']:.3f}",
           _or_dash(BASELINES[m].paper_params_m if m in BASELINES else None),
           _or_dash(BASELINES[m].paper_flops_g if m in BASELINES else None)] for m, r in results.items()]
    csvs["table1_complexity"] = (["model", "params_m", f"gmacs_at_{img_size}", "paper_params_m",
                                  "paper_gflops_at_224"], t1)
    t2 = [[m] + [pct(r["metrics"][k]) for k, _ in TABLE2]
          + [f"{r['inference_time']['seconds_per_1000']:.2f}"] for m, r in results.items()]
    csvs["table2_metrics"] = (["model"] + [h for _, h in TABLE2] + ["inference_time_s_per_1000"], t2)
    per_class = {m: r["metrics"]["per_class_accuracy"] for m, r in results.items()}
    best = {c: max((v[c] for v in per_class.values() if v[c] is not None), default=None) for c in labels.NAMES}
    t3 = [[m] + [pct(pc[c]) for c in labels.NAMES]
          + [sum(1 for c in labels.NAMES if pc[c] is not None and pc[c] == best[c])] for m, pc in per_class.items()]
    csvs["table3_per_class"] = (["model"] + list(labels.NAMES) + ["max"], t3)
    t4 = []
    for m, pc in per_class.items():
        q = quartiles([100 * v for v in pc.values() if v is not None])
        t4.append([m] + [f"{q[k]:.2f}" for k in ("min", "q1", "median", "q3", "max", "iqr")])
    csvs["table4_quartiles"] = (["model", "min", "q1", "median", "q3", "max", "iqr"], t4)
    t6 = [[m, PRIOR_METHODS[m]["label"], PRIOR_METHODS[m]["reported_acc"], PRIOR_METHODS[m]["chromosomenet_acc"],
           pct(results[m]["metrics"]["accuracy"])]
          for m in results if m in PRIOR_METHODS]
    csvs["table6_prior_methods"] = (["model", "method", "reported_accuracy", "paper_rerun_accuracy",
                                     "our_accuracy"], t6)
    md = f"""## Table 1: complexity

Measured: params (24 classes) and multiply-adds at {img_size}×{img_size}, counted as fvcore does; paper: Table 1 at 224×224.

{md_table(csvs["table1_complexity"][0], t1)}

## Table 2: test metrics (%) and InferenceTime

Macro averages over the classes in the truth or the predictions (scikit-learn's label set); specificity is TN/(TN+FP) (the paper prints TN/(TP+TN), a typo;
`eval/<model>/metrics.json` has both). InferenceTime: seconds to predict 1,000 decoded images one at a time.
Best per column in bold.

{md_table(csvs["table2_metrics"][0], _bold_best(t2, [1, 2, 3, 4, 5, 6], {6}))}

## Table 3: per-class accuracy (%)

"max": classes where that model is best (ties count for every tied model).

{md_table(csvs["table3_per_class"][0], _bold_best(t3, list(range(1, 25))))}

![Fig. 4](figures/fig4_per_class_boxplot.png)

## Table 4: quartiles of per-class accuracy

min/max exclude Tukey outliers (beyond 1.5·IQR from the quartiles).

{md_table(csvs["table4_quartiles"][0], t4)}

![Fig. 5](figures/fig5_per_model_boxplot.png)

## Table 6: prior methods re-run on this split

{md_table(csvs["table6_prior_methods"][0], t6) if t6 else "None of the prior methods was in this run (add them to --models, e.g. chromosomenet_cirnet)."}
"""
    return md, csvs


def _facts(cfg: BenchmarkConfig, results: dict) -> str:
    first = next(iter(results.values()))
    d = first["data"]
    recipe = ", ".join(f"{k} {v}" for k, v in cfg.recipe.items() if k != "augment")
    return f"""## Run facts

- dataset `{d['dataset_id']}`: split policy **{d['split_policy']}**, manifest sha256 `{d['manifest_sha256']}`,
  {d['n_train']} train / {d['n_val']} validation / {d['n_test']} test images
- recipe: {recipe}
- hardware: {first['device']} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)
- versions: chromosomenet {__version__}, torch {torch.__version__}, python {platform.python_version()}
- per-model details: `runs/<model>/train_report.json`, `eval/<model>/metrics.json`
"""


def run_benchmark(cfg: BenchmarkConfig) -> Path:
    """Train and evaluate every model of the suite (reusing finished ones), then write the report."""
    models = cfg.models or SUITES[cfg.suite]
    cfg.out.mkdir(parents=True, exist_ok=True)
    results = {m: _run_model(m, cfg) for m in models}
    cells = {m: c for m in models if (c := _run_cells(m, cfg)) is not None}
    img_size = cfg.recipe.get("img_size", 224)
    md, csvs = _tables(results, img_size)
    (cfg.out / "tables").mkdir(exist_ok=True)
    (cfg.out / "figures").mkdir(exist_ok=True)
    for name, (header, rows) in csvs.items():
        _csv(cfg.out / "tables" / f"{name}.csv", header, rows)
    per_class = {m: r["metrics"]["per_class_accuracy"] for m, r in results.items()}
    boxplot_by_class_png(per_class, cfg.out / "figures" / "fig4_per_class_boxplot.png")
    boxplot_by_model_png(per_class, cfg.out / "figures" / "fig5_per_model_boxplot.png")
    text = (f"# ChromosomeNet benchmark: {', '.join(models)}\n\nTest split of `{cfg.data}`; each model trained "
            f"by `chromosomenet train` and scored by `chromosomenet evaluate`.\n\n{md}\n{_cell_section(cells)}\n"
            f"{_facts(cfg, results)}")
    atomic_write_text(cfg.out / "README.md", text)
    return cfg.out / "README.md"
