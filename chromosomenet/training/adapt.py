"""Adapt a trained classifier to a new laboratory from a few of its labelled cells, in minutes on a CPU.

    chromosomenet karyotype --metaphase day1/ --out day1_calls/    # a technologist corrects the calls …
    chromosomenet adapt day1_calls/ my_lab_model/                  # … and the model learns from them
    chromosomenet adapt my_lab_cells/ my_lab_model/                # per-cell class folders (import-cells' layout)
    chromosomenet adapt my_lab_ds/ my_lab_model/                   # a dataset built by build-dataset

What it learns from (:func:`lab_dataset`): ``karyotype``'s output after correction (the VOC boxes named by their
calls, ``calls/*.csv`` or a cell's ``call.csv`` with labels fixed: :mod:`..importers.corrected`), per-cell class
folders, or a built dataset (used as it is). The first two are imported and built beside the model folder
(``OUT-data/``) with whole cases held out for validation (``val_share`` of the cells, at least one).

The same training loop as ``train``, started from the model's own weights with a short, gentle schedule: every
layer moves (a new lab's thinner chromosomes and finer bands are in the early filters as much as in the head),
each cell read at the reference scale and greys as prediction reads it, early stopping on the lab's validation
cells, and **rehearsal**: as many chromosomes of whole Tseng training cells (the pack shipped in the package,
or any built dataset) join the lab's own, so the adapted model does not forget the lab it was trained on; on
those it is also pulled toward the source model's own answers (``distill``, :mod:`.distill`), which kept 0.3
more points of unseen Tseng cases for 0.3 of the new lab's (bench/RESULTS.md). The result is a model repo like
any other (config, weights, card with an "Adaptation" section, the source model's cell-level costs), for every
verb's ``--run`` / ``--model``.
"""
from __future__ import annotations

import csv
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.build import BuildConfig, build_dataset
from ..errors import BadInputError
from ..fsutil import atomic_write_csv, atomic_write_text
from ..importers.cells import import_cells
from ..importers.corrected import find, import_corrected
from ..models import shipped
from ..samples import rehearsal_dir
from .calibrate import CalibrateConfig, calibrate
from .classifier import TrainConfig, TrainResult, train

SHIPPED = "shipped"  # --rehearse: the pack inside the package
MIN_CALIBRATION = 200  # validation chromosomes a temperature is fitted on; fewer keep the source model's


@dataclass(frozen=True)
class AdaptConfig:
    data: tuple[str, ...] | str   # what the lab has: karyotype outputs, VOC files, class folders, or a built dataset
    out: Path
    model: str | None = None      # local-dir:PATH or a model folder; default: the shipped default classifier
    images: str | None = None     # where the corrected karyotypes' images are, when their files do not say
    rehearse: str = SHIPPED       # shipped | none | a built dataset (its train split)
    rehearse_ratio: float = 1.0   # rehearsal chromosomes per chromosome of the lab's
    distill: float = 1.0          # weight of the source model's own answers on the rehearsal rows (distill.py)
    val_share: float = 0.2        # of the lab's cells (whole cases) to stop on, when adapt builds the dataset
    epochs: int = 15
    lr: float = 3e-4              # a tenth of from-scratch training's peak: the weights are already good
    batch_size: int = 32
    patience: int = 5
    seed: int = 0
    progress: bool = True


def model_folder(spec: str) -> Path:
    """The folder of a ``local-dir:`` spec or a path, holding config.json and model.safetensors."""
    folder = shipped.local_folder(spec)
    if spec.startswith("hf-hub:"):  # fetched once into huggingface_hub's cache (offline: the cached copy)
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(spec.split(":", 1)[1]))
        except Exception as e:  # offline without a cached copy, unknown repo, no network
            raise BadInputError(spec, f"could not be fetched ({type(e).__name__})",
                                "download it once with network access, or pass a local model folder") from None
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise BadInputError(spec, "is not a model folder (config.json + model.safetensors)",
                            "name a trained classifier: local-dir:PATH, hf-hub:ORG/NAME or a run folder")
    return folder


def mark_validation(tree: Path, share: float, seed: int) -> tuple[int, int]:
    """Fill a raw tree's ``split`` column: whole cases (seeded) to validation until ``share`` of the cells (at
    least one) are there, the rest train; one case of several cells is split by cells. (train, validation) cells."""
    with (tree / "metadata.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    cells: dict[str, list[str]] = {}
    for r in rows:
        if r["cell_id"] not in cells.setdefault(r["case_id"], []):
            cells[r["case_id"]].append(r["cell_id"])
    n = sum(map(len, cells.values()))
    if n < 2:
        raise BadInputError(tree, f"holds {n} labelled cell", "give at least 2: one to learn from, one to stop on")
    groups = [[c] for cs in cells.values() for c in cs] if len(cells) == 1 else list(cells.values())
    random.Random(seed).shuffle(groups)
    val: set[str] = set()
    for g in groups:
        if len(val) >= max(1, round(share * n)):
            break
        if len(val) + len(g) < n:  # never every cell
            val |= set(g)
    if not val:  # the first case holds all cells but one: split by cells
        val = {sorted(c for cs in cells.values() for c in cs)[-1]}
    for r in rows:
        r["split"] = "validation" if r["cell_id"] in val else "train"
    atomic_write_csv(tree / "metadata.csv", list(rows[0]), rows)
    return n - len(val), len(val)


def lab_dataset(cfg: AdaptConfig) -> tuple[str, dict]:
    """(a built dataset of the lab's cells, what it was made from)."""
    paths = [Path(p) for p in ((cfg.data,) if isinstance(cfg.data, str) else cfg.data)]
    if len(paths) == 1 and (paths[0] / "manifest.csv").is_file():
        return str(paths[0]), {"kind": "a built dataset", "sources": [str(paths[0])]}
    work = Path(cfg.out).parent / f"{Path(cfg.out).name}-data"
    xmls, tables = find(paths)
    if xmls or tables:
        report = import_corrected(paths, work / "raw", images=cfg.images, overwrite=True)
        made = {"kind": "corrected karyotypes", "corrections": report.corrections, "left_out": report.left_out}
    elif len(paths) == 1:
        import_cells(paths[0], work / "raw", overwrite=True, progress=cfg.progress)
        made = {"kind": "per-cell class folders"}
    else:
        raise BadInputError(paths[1], "adapt reads one folder of class folders at a time",
                            "give one folder of cell folders, or karyotype's corrected outputs")
    n_train, n_val = mark_validation(work / "raw", cfg.val_share, cfg.seed)
    build_dataset(BuildConfig(raw=work / "raw", out=work / "dataset", split="from-metadata", ratios=(0.8, 0.2, 0.0),
                              overwrite=True, progress=False))
    return str(work / "dataset"), {**made, "sources": [str(p) for p in paths], "train_cells": n_train,
                                   "validation_cells": n_val}


def adapt(cfg: AdaptConfig) -> TrainResult:
    spec = cfg.model or shipped.default_spec()
    folder = model_folder(spec)
    arch = json.loads((folder / "config.json").read_text()).get("architecture")
    if not arch:
        raise BadInputError(folder / "config.json", "names no architecture", "adapt a model exported by this suite")
    if cfg.rehearse not in (SHIPPED, "none") and not Path(cfg.rehearse).is_dir():
        raise BadInputError(cfg.rehearse, "is not a built dataset", "give --rehearse shipped, none or a built folder")
    started = time.perf_counter()
    data, made = lab_dataset(cfg)
    rehearse = None if cfg.rehearse == "none" else str(rehearsal_dir() if cfg.rehearse == SHIPPED else cfg.rehearse)
    distill = cfg.distill if rehearse else 0.0  # the pull acts on rehearsal rows only
    from ..data.loading import load_splits

    lab = load_splits(data, need=("train", "validation"))
    n_lab, n_val = len(lab["train"]), len(lab["validation"])
    result = train(TrainConfig(model=arch, data=data, out=Path(cfg.out), init=str(folder), lr=cfg.lr,
                               epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                               pct_start=0.1, seed=cfg.seed, workers=0, bn_stats_images=2048,
                               rehearse=rehearse, rehearse_rows=max(1, round(cfg.rehearse_ratio * n_lab)),
                               distill=distill,
                               progress=cfg.progress))
    if not result.finished:
        return result
    costs = folder / shipped.COSTS
    if costs.is_file():  # the cell-level prior is the karyotype's, not the lab's
        shutil.copyfile(costs, Path(cfg.out) / shipped.COSTS)
    calibration = None
    if (folder / shipped.CALIBRATION).is_file():  # a calibrated source: the adapted model's own temperature
        if n_val >= MIN_CALIBRATION:
            calibration = calibrate(CalibrateConfig(model=str(cfg.out), data=data, progress=False))["temperature"]
        else:
            shutil.copyfile(folder / shipped.CALIBRATION, Path(cfg.out) / shipped.CALIBRATION)
            calibration = f"{shipped.temperature_beside(str(folder)):.4f} (the source's: fewer than {MIN_CALIBRATION} to fit on)"
    facts = {"source_model": spec, **made, "lab_chromosomes": n_lab,
             "rehearsal": "none" if rehearse is None else ("the shipped pack of Tseng training cells"
                                                           if cfg.rehearse == SHIPPED else rehearse),
             "rehearsal_ratio": cfg.rehearse_ratio if rehearse else 0, "distill": distill,
             "epochs_run": result.epochs_run,
             "best_epoch": result.best_epoch, "temperature": calibration, "minutes": round((time.perf_counter() - started) / 60, 2)}
    atomic_write_text(Path(cfg.out) / "adapt.json", json.dumps(facts, indent=2) + "\n")
    _card(Path(cfg.out) / "README.md", facts)
    return result


def _card(card: Path, facts: dict) -> None:
    """The model card says what the model was adapted on, from what, and with what rehearsal."""
    lines = ["", "## Adaptation", "",
             f"Adapted from `{facts['source_model']}` with `chromosomenet adapt` on {facts['kind']}: "
             + ", ".join(f"`{s}`" for s in facts["sources"]) + ".", "",
             "| fact | value |", "|---|---|",
             f"| the lab's training chromosomes | {facts['lab_chromosomes']} |"]
    for key, what in (("train_cells", "cells learnt from"), ("validation_cells", "cells it stopped on"),
                      ("corrections", "calls a person corrected"), ("left_out", "objects marked as no chromosome")):
        if key in facts:
            lines.append(f"| {what} | {facts[key]} |")
    lines += [f"| rehearsal | {facts['rehearsal']}"
              + (f", {facts['rehearsal_ratio']:g} chromosome per chromosome of the lab's" if facts["rehearsal_ratio"] else "")
              + (f"; pulled toward the source's own answers on them (distill {facts['distill']:g})"
                 if facts["distill"] else "") + " |",
              f"| epochs / best | {facts['epochs_run']} / {facts['best_epoch']} |",
              f"| temperature (on the lab's validation cells) | {facts['temperature'] or 'none'} |",
              f"| minutes on this machine | {facts['minutes']} |", "",
              "An adapted model is for its lab: score it on that lab's held-out cases before use.", ""]
    card.write_text(card.read_text() + "\n".join(lines))
