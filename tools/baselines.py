"""The paper's 8 baselines trained by one recipe on real chromosomes, with fixed splits: `make baselines`.

    python tools/baselines.py --input view --budget 12 --out work/baselines_view      # 8 × 12 min on a CPU
    python tools/baselines.py --input 224 --out work/baselines_224                    # on a GPU, epochs by the paper

1. the release imported with separation (`import-tseng --separate`, reused when WORK/raw_full exists),
   minus the embedded sample's cases (`--exclude-cells`);
2. the dataset split by the default classifier's `split_cases.csv` (its unseen test cases are the test split,
   so the shipped model is scored beside the baselines on the same cases);
3. `chromosomenet benchmark` over the 8 (``RECIPES``: the paper's one-cycle, batch 32, label smoothing 0.1 and
   early stopping; from scratch, since no ImageNet weights are reachable offline, so a higher peak lr), each
   run checkpointed and reused: a killed script run again goes on where it stopped;
4. OUT/README.md: the paper's Tables 1–4 and InferenceTime for the runs, case-bootstrap 95 % intervals, and
   the shipped view model on the same test split. `--input view` reads each chromosome as the shipped model
   does (the canonical view, `chromosomenet_view_<name>`); `--input 224` as the paper (the 300×300 canvas at
   224×224). `--budget` gives each model the same minutes of training on this machine (`--time-budget`).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import chromosomenet  # noqa: F401  (registers the architectures with timm)
from chromosomenet.apps.cli import main as cli
from chromosomenet.evaluation.benchmark import BenchmarkConfig, run_benchmark
from chromosomenet.evaluation.evaluate import EvalConfig, evaluate
from chromosomenet.fsutil import atomic_write_text
from chromosomenet.markdown import pct
from chromosomenet.markdown import table as md_table
from chromosomenet.models import shipped
from chromosomenet.models.viewnet import PAPER_BACKBONES

ROOT = Path(__file__).resolve().parents[1]
# The recipe as data: the paper's where it gives one (one-cycle, batch 32, label smoothing 0.1, max 500 epochs,
# early stopping after 5 epochs without a lower validation loss); from scratch, a peak lr for training from
# random weights instead of the paper's 1e-4 for ImageNet ones.
RECIPES = {
    "view": dict(img_size=224, init="none", batch_size=32, lr=2e-3, weight_decay=0.05, pct_start=0.2,
                 label_smoothing=0.1, max_epochs=500, patience=5, workers=2, eval_batch_size=256),
    "224": dict(img_size=224, init="none", batch_size=32, lr=2e-3, weight_decay=0.05, pct_start=0.2,
                label_smoothing=0.1, max_epochs=500, patience=5, workers=8, eval_batch_size=256),
}


def models_for(inp: str) -> tuple[str, ...]:
    return tuple(f"chromosomenet_view_{b}" if inp == "view" else b for b in PAPER_BACKBONES)


def _run(cmd: list[str]) -> None:
    subprocess.run([sys.executable, *cmd], check=True)


def _verb(argv: list[str]) -> None:
    """A `chromosomenet` verb in this process; its one-line error (already printed) stops the script."""
    if cli(argv) != 0:
        raise SystemExit(f"tools/baselines.py: `chromosomenet {argv[0]}` failed (its error is above)")


def dataset(a: argparse.Namespace) -> Path:
    """WORK/dataset_<split name>: the import minus the excluded cases, split as ``--split-cases`` says."""
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    raw = Path(a.raw) if a.raw else work / "raw_full"
    if not (raw / "metadata.csv").exists():
        _verb(["import-tseng", a.release, str(raw), "--separate", "--overwrite"])
    tag = Path(a.split_cases).parent.name or "split"
    kept, split = work / f"raw_without_sample_{tag}", work / f"raw_split_{tag}"
    out = work / f"dataset_{tag}"
    if not (out / "manifest.csv").exists():
        for d in (kept, split):
            shutil.rmtree(d, ignore_errors=True)
        cells = a.exclude_cells or str(work / "no_cells.txt")
        if not a.exclude_cells:
            Path(cells).write_text("")
        _run([str(ROOT / "tools/without_sample_cases.py"), str(raw), str(kept), cells])
        _run([str(ROOT / "tools/common_test_cases.py"), str(kept), str(split), a.split_cases, a.split_cases])
        _verb(["build-dataset", str(split), str(out), "--split", "from-metadata", "--on-error", "skip",
               "--overwrite"])  # as make train: the few crops the release labels twice are skipped, listed
    return out


def side_by_side(report: Path, data: Path, models: tuple[str, ...]) -> str:
    """The best baseline and the shipped view model on the same test split, with case-bootstrap intervals."""
    shipped_eval = report / "eval" / "shipped"
    if not (shipped_eval / "metrics.json").exists():
        evaluate(EvalConfig(model=shipped.default_spec(), data=str(data), out=shipped_eval, timing_samples=100,
                            throughput_seconds=1.0, progress=False))
    rows = []
    for name, folder in [(m, report / "eval" / m) for m in models] + [(f"shipped: {shipped.DEFAULT}", shipped_eval)]:
        m = json.loads((folder / "metrics.json").read_text())
        lo, hi = m["metrics"].get("accuracy_ci95") or (None, None)
        rows.append([name, f"{pct(m['metrics']['accuracy'])} %", f"{pct(lo)}–{pct(hi)} %",
                     f"{m['inference_time']['seconds_per_1000']:.2f}", f"{m['throughput']['images_per_s']:,.0f}"])
    best = max(rows[:-1], key=lambda r: float(r[1].split()[0]))
    return ("\n## The best baseline beside the shipped view model (same test split, same cases)\n\n"
            + md_table(["model", "test accuracy", "95 % CI (bootstrap over cases)", "InferenceTime (s / 1,000)",
                        "throughput (img/s)"], rows)
            + f"\n\nBest baseline: {best[0]} ({best[1]}).\n")


def finished_table(report: Path, models: tuple[str, ...]) -> str:
    """Table 2 and 4 in short for the models whose evaluation is finished (a run still going leaves the others
    out): what bench/RESULTS.md quotes while the whole benchmark has not ended yet."""
    rows = []
    for m in models:
        folder, run = report / "eval" / m, report / "runs" / m / "train_report.json"
        if not (folder / "metrics.json").exists() or not run.exists():
            continue
        e, t = json.loads((folder / "metrics.json").read_text()), json.loads(run.read_text())
        k, facts = e["metrics"], t["facts"]
        lo, hi = k["accuracy_ci95"] or (None, None)
        per_class = sorted(100 * v for v in k["per_class_accuracy"].values() if v is not None)
        rows.append([m, f"{pct(k['accuracy'])} ({pct(lo)}–{pct(hi)})", pct(k["f1"]), f"{per_class[len(per_class) // 2]:.2f}",
                     f"{e['complexity']['params_m']:.2f}", f"{facts['epochs_run']}" + (f" ({b / 60:g} min)" if (b := (t.get("plan") or {}).get("budget_s")) else ""),
                     f"{e['inference_time']['seconds_per_1000']:.2f}", f"{e['throughput']['images_per_s']:,.0f}"])
    return md_table(["model", "test accuracy % (95 % CI over cases)", "macro F1 %", "median class accuracy %",
                     "params M", "epochs (budget)", "InferenceTime s / 1,000", "img/s"], rows)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", default=str(ROOT.parent / "shared/data/tseng2023"))
    ap.add_argument("--work", default=str(ROOT / "work"), help="import and dataset (reused)")
    ap.add_argument("--raw", help="an imported raw tree to use instead of importing --release")
    ap.add_argument("--out", required=True, help="the report folder (runs inside are reused: resumable)")
    ap.add_argument("--input", choices=tuple(RECIPES), default="view")
    ap.add_argument("--budget", type=float, help="minutes of training per model on this machine (equal budgets)")
    ap.add_argument("--epochs", type=int, help="cap the epochs (smoke runs)")
    ap.add_argument("--img-size", type=int, help="with --input 224: another input size (smoke runs)")
    ap.add_argument("--split-cases", default=str(shipped.models_dir() / shipped.DEFAULT / "split_cases.csv"))
    ap.add_argument("--exclude-cells", default=str(ROOT / "tools/sample_cells.txt"),
                    help="image stems whose cases never enter ('' for none)")
    ap.add_argument("--models", help="comma-separated subset of the 8 (default: all)")
    ap.add_argument("--timing-samples", type=int, default=1000)
    ap.add_argument("--workers", type=int, help="DataLoader processes (default: the recipe's)")
    ap.add_argument("--finished", action="store_true", help="only print the table of the models finished so far")
    a = ap.parse_args(argv)
    if a.finished:
        print(finished_table(Path(a.out), tuple(a.models.split(",")) if a.models else models_for(a.input)))
        return Path(a.out)
    data = dataset(a)
    recipe = dict(RECIPES[a.input], time_budget=a.budget, epochs=a.epochs)
    if a.img_size:
        recipe["img_size"] = a.img_size
    if a.workers is not None:
        recipe["workers"] = a.workers
    models = tuple(a.models.split(",")) if a.models else models_for(a.input)
    readme = run_benchmark(BenchmarkConfig(data=str(data), out=Path(a.out), models=models, recipe=recipe,
                                           timing_samples=a.timing_samples, progress=sys.stderr.isatty()))
    text = readme.read_text() + side_by_side(Path(a.out), data, models) + (
        f"\nEach model: `{a.input}` input, {'%g minutes of training on this machine' % a.budget if a.budget else 'epochs by early stopping'}"
        f", from scratch ({'; '.join(f'{k} {v}' for k, v in recipe.items() if v is not None)}).\n")
    atomic_write_text(readme, text)
    with open(Path(a.out) / "tables" / "table2_metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            print(f"{r['model']}: accuracy {r['accuracy']} %, InferenceTime {r['inference_time_s_per_1000']} s / 1,000")
    print(f"report: {readme}")
    return readme


if __name__ == "__main__":
    main()
