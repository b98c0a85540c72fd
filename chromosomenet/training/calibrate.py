"""Fit a classifier's temperature on validation cells and write it beside the model (``calibration.json``).

    chromosomenet calibrate [MODEL] --data DATASET [--split validation]

Every path that loads the model then reads calibrated probabilities (:class:`..pipeline.predict.Predictor`,
the ONNX export): the reported confidences mean what they say; no call changes (the argmax is the same). The
review threshold and karyotype costs were tuned on probabilities: tune them again with the calibration in place
(``karyotype --run MODEL --data DATASET``, as ``make train`` does), since a threshold on the old confidences
flags fewer chromosomes on the new ones. The cells are read as every path reads them (reference scale and
greys, together), with the model's uncalibrated probabilities.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.loading import load_splits
from ..data.transforms import cell_scales
from ..errors import BadInputError
from ..fsutil import atomic_write_text
from ..metrics.calibration import fit_temperature, with_temperature
from ..metrics.classification import ece, nll
from ..models import shipped
from ..pipeline.predict import Predictor, load_classifier, predict

SECTION = "\n## Calibration\n"


@dataclass(frozen=True)
class CalibrateConfig:
    model: str
    data: str
    split: str = "validation"
    batch_size: int = 64
    workers: int = 0
    progress: bool = True


def calibrate(cfg: CalibrateConfig) -> dict:
    folder = shipped.local_folder(cfg.model)
    if not (folder / "config.json").is_file():
        raise BadInputError(cfg.model, "is not a local model folder", "calibrate a folder: local-dir:PATH or a run folder")
    split = load_splits(cfg.data, need=(cfg.split,))[cfg.split]
    model, mcfg = load_classifier(cfg.model)
    predictor = Predictor(model, {**mcfg, "temperature": 1.0})  # fitted on the model's own probabilities
    probs = predict(predictor, split, cfg.batch_size, cfg.workers, cfg.progress, cell_scales(split))
    y = np.asarray(split["label"])
    t = fit_temperature(y, probs)
    calibrated = with_temperature(probs, t)
    facts = {"temperature": round(t, 6), "fitted_on": f"{cfg.data} ({cfg.split}, {len(y)} chromosomes)",
             "ece_before": round(ece(y, probs), 6), "ece_after": round(ece(y, calibrated), 6),
             "nll_before": round(nll(y, probs), 6), "nll_after": round(nll(y, calibrated), 6)}
    atomic_write_text(folder / shipped.CALIBRATION, json.dumps(facts, indent=2) + "\n")
    write_card_section(folder / "README.md", facts)
    return facts


def write_card_section(card: Path, f: dict) -> None:
    """The card's Calibration section (replaced when it is there)."""
    if not card.is_file():
        return
    text = card.read_text()
    section = (f"{SECTION}\nProbabilities are divided in log space by a temperature fitted on validation "
               f"(`calibration.json`, `chromosomenet calibrate`): T = {f['temperature']:.4f}, fitted on "
               f"{f['fitted_on']}; there ECE {100 * f['ece_before']:.2f} % → {100 * f['ece_after']:.2f} %, NLL "
               f"{f['nll_before']:.4f} → {f['nll_after']:.4f}. Every path that loads the model reads calibrated "
               "probabilities; no call changes.\n")
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = head + section + tail
    else:
        marker = "\n## Usage"
        text = text.replace(marker, section + marker, 1) if marker in text else text + section
    atomic_write_text(card, text)
