"""`chromosomenet karyotype`: cell-level calls for a dataset split, or for the images of one cell.

Dataset mode (``data``): the model predicts the tuning split (validation) and the scored split;
the karyotype costs and the review threshold are tuned on the tuning split only; then every cell
of the scored split is assigned, flagged, drawn and compared with its annotation:

    OUT/cells.csv        cell, case, type, n, predicted/true ISCN, instance accuracy before/after, flags
    OUT/summary.json     the numbers below, with costs, threshold and where they came from
    OUT/costs.json       tuned costs + threshold (reusable: ``--costs`` for --images runs)
    OUT/README.md        the summary as Markdown;  OUT/risk_coverage.png
    OUT/karyograms/<cell>.png, OUT/calls/<cell>.csv|json

Images mode (``images``): one cell's chromosome images → karyogram.png + call CSV/JSON.
ISCN strings are numerical findings only (counts), never structural.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import labels
from ..data.images import IMAGE_SUFFIXES, decode
from ..data.loading import describe, load_splits
from ..data.transforms import CanvasImages, cell_scales
from ..errors import BadInputError
from ..fsutil import atomic_write_csv, atomic_write_text
from ..markdown import pct as pct_number
from ..markdown import table as md_table
from ..metrics.figures import risk_coverage_png
from ..models import shipped
from .assign import CellCall, KaryotypeCosts, assign, flag, iscn, pick_threshold, risk_coverage, tune_costs, write_call
from .predict import Predictor, load_classifier, predict, predict_cell
from .render import render_karyogram
from .review import ALWAYS_REVIEW, forced_review, unflagged

NORMAL_ISCN = ("46,XX", "46,XY")
DEFAULT_THRESHOLD = 0.9  # images mode without tuned costs: flag anything less than 90 % sure


@dataclass(frozen=True)
class KaryotypeConfig:
    run: str
    out: Path
    data: str | None = None
    split: str = "test"
    tune_split: str = "validation"
    images: tuple[str, ...] = ()
    one_cell: bool = False
    costs: str | None = None            # costs.json of an earlier dataset run (images mode; default: the model's own)
    keep_costs: str | None = None       # with data: these costs.json's costs kept, only the review threshold tuned
    target_accuracy: float = 0.999      # of the unflagged chromosomes, when picking the threshold
    bound_level: float | None = 0.95    # the target must hold for the Clopper–Pearson bound (None: point estimate)
    always_review: tuple[str, ...] = ALWAYS_REVIEW  # quality flags that send a chromosome to a person regardless
    batch_size: int = 128
    workers: int = 2
    cell_scale: bool = True             # read each cell at the reference scale and greys (:mod:`.cellscale`)
    progress: bool = True


def _cells(split) -> dict[str, np.ndarray]:
    """Row indices per cell id, cells in sorted order (deterministic output)."""
    if "cell_id" not in split.column_names:
        raise BadInputError("dataset", "has no cell_id column, so its chromosomes cannot be grouped into cells",
                            "build it from a raw tree whose metadata.csv has cell_id (e.g. import-tseng)")
    ids = np.asarray([str(c) for c in split["cell_id"]])
    return {c: np.flatnonzero(ids == c) for c in sorted(set(ids))}


def _forced(split, always: tuple[str, ...]) -> np.ndarray:
    """Per row: does its quality flag send it to a person whatever the threshold (no column: none)."""
    if "quality" not in split.column_names or not always:
        return np.zeros(len(split), dtype=bool)
    return forced_review(split["quality"], always)


def _tune(probs: np.ndarray, y: np.ndarray, cells: dict[str, np.ndarray], target: float, level: float | None,
          forced: np.ndarray, costs: KaryotypeCosts | None = None):
    """(costs, review threshold, the tuning split's unflagged accuracy and bound at that threshold): the costs
    tuned unless given (then only the threshold is).

    The threshold is picked on the chromosomes not ``forced`` to review: those are flagged anyway."""
    costs = costs or tune_costs([(probs[i], y[i]) for i in cells.values()])
    calls = [assign(probs[i], costs) for i in cells.values()]
    correct = np.concatenate([np.asarray(c.labels) == y[i] for c, i in zip(calls, cells.values())])
    conf = np.concatenate([np.asarray(c.confidence) for c in calls])
    free = ~np.concatenate([forced[i] for i in cells.values()])
    threshold = pick_threshold(correct[free], conf[free], target, level) if free.any() else 1.0
    return costs, threshold, unflagged(correct, conf, threshold, level or 0.95, ~free)


def saved_costs(path: str) -> tuple[KaryotypeCosts, float, str]:
    """(costs, review threshold, where they were tuned) from a costs.json written by a dataset run."""
    try:
        saved = json.loads(Path(path).read_text())
        return KaryotypeCosts(**saved["costs"]), float(saved["threshold"]), f"{saved.get('tuned_on', '?')} ({Path(path).name})"
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInputError(path, f"is not a costs.json of `chromosomenet karyotype` ({type(e).__name__})",
                            "pass the costs.json a dataset run wrote, e.g. the one shipped beside the model") from None


def _rate(hits: list[bool]) -> float | None:
    return float(np.mean(hits)) if hits else None


def karyotype_split(cfg: KaryotypeConfig) -> dict:
    """Tune on the tuning split, call every cell of the scored split, write the report; return the summary."""
    splits = load_splits(cfg.data, need=(cfg.split,) if cfg.costs else (cfg.split, cfg.tune_split))
    split = splits[cfg.split]
    model, mcfg = load_classifier(cfg.run)
    predictor = Predictor(model, mcfg)
    out = Path(cfg.out)
    for sub in ("karyograms", "calls"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    tuned = None
    if cfg.costs:  # tuned elsewhere (e.g. shipped with the model): this data only gets scored
        costs, threshold, tuned_on = saved_costs(cfg.costs)
    else:
        tune_set = splits[cfg.tune_split]
        tune_scales = cell_scales(tune_set) if cfg.cell_scale else None
        costs, threshold, tuned = _tune(predict(predictor, tune_set, cfg.batch_size, cfg.workers, cfg.progress,
                                                tune_scales),
                                        np.asarray(tune_set["label"]), _cells(tune_set), cfg.target_accuracy,
                                        cfg.bound_level, _forced(tune_set, cfg.always_review),
                                        saved_costs(cfg.keep_costs)[0] if cfg.keep_costs else None)
        tuned_on = cfg.tune_split
    probs = predict(predictor, split, cfg.batch_size, cfg.workers, cfg.progress,
                    cell_scales(split) if cfg.cell_scale else None)
    y = np.asarray(split["label"])
    files = np.asarray(split["file"])
    kinds = split["karyotype_type"] if "karyotype_type" in split.column_names else ["unknown"] * len(y)
    groups = split["group"] if "group" in split.column_names else [""] * len(y)
    canvases = CanvasImages(split)
    forced, cells = _forced(split, cfg.always_review), _cells(split)
    rows, correct, conf, flagged = [], [], [], []
    for cell, idx in tqdm(cells.items(), desc="cells", disable=not cfg.progress):
        call = flag(assign(probs[idx], costs), threshold, forced[idx])
        truth = iscn(np.bincount(y[idx], minlength=labels.NUM_CLASSES))
        ok = np.asarray(call.labels) == y[idx]
        correct.append(ok)
        conf.append(np.asarray(call.confidence))
        flagged.append(np.asarray(call.flags))
        images = [canvases[int(i)][0][0].numpy() for i in idx]
        render_karyogram(images, call, out / "karyograms" / f"{cell}.png", title=f"cell {cell}; annotated {truth}")
        write_call(call, files[idx].tolist(), out / "calls", cell)
        rows.append({"cell": cell, "case": groups[idx[0]], "type": kinds[idx[0]], "n": len(idx),
                     "predicted_iscn": call.iscn, "true_iscn": truth, "match": call.iscn == truth,
                     "accuracy_before": round(float((probs[idx].argmax(1) == y[idx]).mean()), 6),
                     "accuracy_after": round(float(ok.mean()), 6), "flagged": int(np.sum(call.flags)),
                     "plausible": call.plausible, "message": call.message})
    correct_all, conf_all, flag_all = map(np.concatenate, (correct, conf, flagged))
    forced_all = np.concatenate([forced[i] for i in cells.values()])
    # Normal cells: of a normal case and annotated 46,XX / 46,XY. A normal case's spread that lost or
    # gained a chromosome shows its true count, so calling it 45,... is right, not a false call.
    normal = [r for r in rows if r["type"] == "normal" and r["true_iscn"] in NORMAL_ISCN]
    spread = [r for r in rows if r["type"] == "normal" and r["true_iscn"] not in NORMAL_ISCN]
    numerical = [r for r in rows if r["type"] == "numerical"]
    summary = {
        "cells": len(rows), "chromosomes": int(len(y)),
        "instance_accuracy_before": float((probs.argmax(1) == y).mean()),
        "instance_accuracy_after": float(correct_all.mean()),
        "iscn_exact_normal": _rate([r["match"] for r in normal]), "normal_cells": len(normal),
        "iscn_exact_numerical": _rate([r["match"] for r in numerical]), "numerical_cells": len(numerical),
        "iscn_exact_spread_loss_gain": _rate([r["match"] for r in spread]), "spread_loss_gain_cells": len(spread),
        "false_aneuploidy_per_100_normal": (100 * sum(r["predicted_iscn"] not in NORMAL_ISCN for r in normal)
                                            / len(normal)) if normal else None,
        "review_threshold": threshold, "target_accuracy": cfg.target_accuracy,
        "threshold_rule": (f"Clopper–Pearson {100 * cfg.bound_level:g} % lower bound ≥ target" if cfg.bound_level
                           else "point estimate ≥ target") if tuned else f"from {tuned_on}",
        "tuning_unflagged": tuned,
        "always_review": list(cfg.always_review), "fraction_forced": float(forced_all.mean()),
        "scored_unflagged": unflagged(correct_all, conf_all, threshold, cfg.bound_level or 0.95, forced_all),
        "fraction_flagged": float(flag_all.mean()),
        "accuracy_unflagged": float(correct_all[~flag_all].mean()) if (~flag_all).any() else None,
        "costs": asdict(costs), "tuned_on": tuned_on, "scored_split": cfg.split,
        "model": cfg.run, "data": describe(cfg.data, splits),
        "note": "ISCN strings are numerical findings (chromosome counts) only; true ISCN is from the annotation; "
                "normal cells are cells of normal cases annotated 46,XX or 46,XY",
    }
    _write_report(out, rows, summary, risk_coverage(correct_all, conf_all))
    return summary


def _write_report(out: Path, rows: list[dict], s: dict, curve: dict) -> None:
    atomic_write_csv(out / "cells.csv", rows[0], rows)
    atomic_write_text(out / "summary.json", json.dumps(s, indent=2) + "\n")
    atomic_write_text(out / "costs.json", json.dumps({"costs": s["costs"], "threshold": s["review_threshold"],
                                                      "always_review": s["always_review"], "tuned_on": s["tuned_on"],
                                                      "model": s["model"]}, indent=2) + "\n")
    risk_coverage_png(curve, out / "risk_coverage.png", s["review_threshold"])
    pct = lambda v: "–" if v is None else f"{pct_number(v)} %"  # noqa: E731
    table = md_table(["measure", "value"], [
        ["cells / chromosomes", f"{s['cells']} / {s['chromosomes']}"],
        ["instance accuracy before → after assignment",
         f"{pct(s['instance_accuracy_before'])} → {pct(s['instance_accuracy_after'])}"],
        [f"exact ISCN count match, normal cells ({s['normal_cells']})", pct(s["iscn_exact_normal"])],
        [f"exact ISCN count match, numerically abnormal cells ({s['numerical_cells']})", pct(s["iscn_exact_numerical"])],
        [f"exact ISCN count match, cells of normal cases that lost/gained one in the spread ({s['spread_loss_gain_cells']})",
         pct(s["iscn_exact_spread_loss_gain"])],
        ["false aneuploidy calls per 100 normal cells",
         "–" if s["false_aneuploidy_per_100_normal"] is None else f"{s['false_aneuploidy_per_100_normal']:.1f}"],
        [f"review threshold (tuned on {s['tuned_on']} for {100 * s['target_accuracy']:g} %)", f"{s['review_threshold']:.4f}"],
        ["flagged for review / accuracy of the unflagged", f"{pct(s['fraction_flagged'])} / {pct(s['accuracy_unflagged'])}"],
        [f"of them always, by quality ({', '.join(s['always_review']) or 'none'})", pct(s["fraction_forced"])],
        ["threshold rule", s["threshold_rule"]],
        *([[f"unflagged on {s['tuned_on']}: accuracy / {100 * t['level']:g} % lower bound ({t['n']} chromosomes)",
            f"{pct(t['accuracy'])} / {pct(t['lower_bound'])}"]] if (t := s["tuning_unflagged"]) else []),
        [f"unflagged on {s['scored_split']}: accuracy / {100 * s['scored_unflagged']['level']:g} % lower bound "
         f"({s['scored_unflagged']['n']} chromosomes)",
         f"{pct(s['scored_unflagged']['accuracy'])} / {pct(s['scored_unflagged']['lower_bound'])}"
         + ("" if s["scored_unflagged"]["accuracy"] is None else
            (" — target held" if s["scored_unflagged"]["accuracy"] >= s["target_accuracy"] else " — target missed"))],
    ])
    atomic_write_text(out / "README.md", f"# Cell-level karyotyping: `{s['model']}` on {s['scored_split']}\n\n"
                      f"{table}\n\n{s['note']}. Costs: `costs.json`; per cell: `cells.csv`, `karyograms/`, "
                      f"`calls/`.\n\n![risk-coverage](risk_coverage.png)\n")


def _image_files(paths: tuple[str, ...]) -> tuple[list[Path], str | None]:
    """The images of one cell, and the cell's name when a folder says it: a folder of images, or a folder of
    class folders (``<cell>/<class>/<image>``, as karyotyping software exports a sorted cell: the images are
    read, the software's classes are not)."""
    files: list[Path] = []
    cell = None
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.iterdir() if not f.name.startswith("."))
            if not any(f.is_file() for f in inside) and any(f.is_dir() for f in inside):
                inside, cell = sorted(f for d in inside if d.is_dir() for f in d.iterdir()
                                      if not f.name.startswith(".")), p.name
            files += [f for f in inside if f.is_file()]
        elif p.is_file():
            files.append(p)
        else:
            raise BadInputError(p, "not found", "give image files or a folder of one cell's images")
    if not files:
        raise BadInputError(paths[0] if paths else "--images", "holds no image files",
                            "give a cell's chromosome images, its folder, or its folder of class folders")
    for f in files:
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            raise BadInputError(f, "is not an image file", f"give {', '.join(sorted(IMAGE_SUFFIXES))} files only")
    return files, cell


def _one_cell(files: list[Path], one_cell: bool) -> str:
    """The cell id shared by the file names (<cell>_<k>.png), or refuse mixed / unnamed cells."""
    cells = {f.stem.rsplit("_", 1)[0] for f in files if "_" in f.stem and f.stem.rsplit("_", 1)[1].isdigit()}
    if one_cell:
        return cells.pop() if len(cells) == 1 else "cell"
    if len(cells) > 1:
        raise BadInputError(files[0].parent, f"the images come from {len(cells)} cells ({', '.join(sorted(cells)[:4])}…)",
                            "pass the images of one cell, or --one-cell to treat them as one")
    if not cells or any("_" not in f.stem for f in files):
        raise BadInputError(files[0].parent, "the file names do not say which cell the images belong to",
                            "name them <cell>_<k>.png, or pass --one-cell to treat them as one cell")
    return cells.pop()


def karyotype_images(cfg: KaryotypeConfig) -> CellCall:
    """Karyotype one cell from its chromosome images (each a canvas, or smaller and padded)."""
    files, cell = _image_files(cfg.images)
    cell = cell or _one_cell(files, cfg.one_cell)
    canvases = [np.asarray(decode(f.read_bytes(), str(f)).image) for f in files]
    model, mcfg = load_classifier(cfg.run)
    predictor = Predictor(model, mcfg)
    probs, _ = predict_cell(predictor, canvases, cfg.batch_size, cfg.cell_scale)
    costs, threshold = KaryotypeCosts(), DEFAULT_THRESHOLD
    tuned = cfg.costs or shipped.costs_beside(cfg.run)  # the costs tuned for this model, where it ships them
    if tuned:
        costs, threshold, _ = saved_costs(str(tuned))
    call = flag(assign(probs, costs), threshold)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    render_karyogram(canvases, call, out / "karyogram.png", title=f"cell {cell}")
    write_call(call, [f.name for f in files], out, "call", files)
    return call
