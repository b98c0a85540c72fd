"""Adapt a trained classifier to a new laboratory from a few of its labelled cells, in minutes on a CPU.

    chromosomenet import-cells LAB_CELLS/ raw/          # per-cell class folders, as karyotyping software exports
    chromosomenet build-dataset raw/ ds/                 # grouped by case: a few cells to learn, others to check
    chromosomenet adapt ds/ adapted/ [--model local-dir:…] [--epochs 15]

The same training loop as ``train`` (:mod:`.train`), started from the model's own weights with a short,
gentle schedule: every layer moves (a new lab's thinner chromosomes and finer bands are in the early
filters as much as in the head), each cell read at the reference scale and greys as prediction reads it, early
stopping on the new lab's validation cells. The result is a model repo like any other (config, weights,
card, the source model's cell-level costs copied beside it), for ``karyotype``, ``evaluate``, ``serve``.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError
from ..models import shipped
from .classifier import TrainConfig, TrainResult, train


@dataclass(frozen=True)
class AdaptConfig:
    data: str                  # a built dataset of the new lab (train: cells to learn from; validation: to stop)
    out: Path
    model: str | None = None   # local-dir:PATH or a model folder; default: the shipped default classifier
    epochs: int = 15
    lr: float = 3e-4           # a tenth of from-scratch training's peak: the weights are already good
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


def adapt(cfg: AdaptConfig) -> TrainResult:
    spec = cfg.model or shipped.default_spec()
    folder = model_folder(spec)
    arch = json.loads((folder / "config.json").read_text()).get("architecture")
    if not arch:
        raise BadInputError(folder / "config.json", "names no architecture", "adapt a model exported by this suite")
    result = train(TrainConfig(model=arch, data=cfg.data, out=Path(cfg.out), init=str(folder), lr=cfg.lr,
                               epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                               pct_start=0.1, seed=cfg.seed, workers=0, bn_stats_images=2048,
                               progress=cfg.progress))
    costs = folder / shipped.COSTS
    if result.finished and costs.is_file():  # the cell-level prior is the karyotype's, not the lab's
        shutil.copyfile(costs, Path(cfg.out) / shipped.COSTS)
    return result
