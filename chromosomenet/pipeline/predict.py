"""The predict stage: a loaded 24-class classifier, batched, over uint8 canvases → probabilities.

Every path that classifies chromosomes calls this module — ``evaluate`` (scores a split), the cell-level
``karyotype``, the bare-metaphase pipeline, the demo and the Space — so preprocessing, BatchNorm folding
and the precision policy are decided once, here, from the model's own config.

Where chromosomes come with their cell (a dataset's ``cell_id``, one cell's images, a metaphase), the
paths read each cell at the reference scale and greys (:mod:`.cellscale`: its median chromosome length
brought to the training lab's, its ink greys matched to the training lab's): another microscope's
magnification, a cell's condensation, another camera and stain stop moving the cues the models read.
A chromosome without a cell keeps its pixels and greys (the training lab's).

And a cell is read **together** (:meth:`Predictor.cell`): its chromosomes and their mirror images (G-bands
are transverse stripes: a mirrored chromosome is the same chromosome) go through the model as one batch,
every BatchNorm layer normalising by the cell's own statistics instead of the training set's, and each
chromosome's probabilities are the average over it and its mirror image (with a view model's own 180°
turn, ``ViewNet.tta``, all four symmetries of the view). What a lab's stain, camera and preparation shift
in the features a whole cell shares, so the cell's statistics take it out (measured: Pki-3 zero-shot
86.3 → 89.3 %, unseen Tseng cases 96.8 → 97.3 %: bench/RESULTS.md). A chromosome alone, a cell too small
to measure, or an exported (ONNX) model reads with the training set's statistics.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import labels
from ..data.cellscale import MIN_CHROMOSOMES, CellScale, RowScales, normalise_cell
from ..data.transforms import CanvasImages, norm_stats, prepare
from ..errors import BadInputError
from ..models import hub, shipped
from ..models.fold import fold_batchnorm
from ..models.viewnet import is_view_model


def load_classifier(spec: str) -> tuple[torch.nn.Module, dict]:
    """The model in eval mode and its pretrained_cfg (with ``temperature``: the calibration beside the model,
    1.0 without one); refuses models whose classes are not the 24."""
    model = hub.load(spec).eval()
    cfg = dict(model.pretrained_cfg)
    cfg["temperature"] = shipped.temperature_beside(spec)
    names = cfg.get("label_names")
    if model.num_classes != labels.NUM_CLASSES or (names is not None and list(names) != list(labels.NAMES)):
        shown = list(names)[:5] if names is not None else f"{model.num_classes} outputs"
        raise BadInputError(spec, f"its classes ({shown}…) are not the 24 ChromosomeNet classes",
                            "evaluate a model trained on a ChromosomeNet-format dataset")
    return model, cfg


class Predictor:
    """Batched inference: uint8 canvases in, probabilities out; preprocessing as the model's config says."""

    def __init__(self, model: torch.nn.Module, cfg: dict, device: torch.device | None = None,
                 precision: str = "auto", fold_bn: bool = True):
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = unfolded = model.to(self.device, memory_format=torch.channels_last).eval()
        in_chans, self.img_size, _ = cfg["input_size"]
        self.mean, self.std = norm_stats(cfg["mean"], cfg["std"], in_chans)
        self.folded = 0  # conv→BatchNorm pairs folded into one convolution (a copy; ``model`` is untouched)
        if fold_bn:
            example = torch.randn(2, in_chans, self.img_size, self.img_size, generator=torch.Generator().manual_seed(0))
            example = example.to(self.device).contiguous(memory_format=torch.channels_last)
            model, self.folded = fold_batchnorm(model, example)
        self.model, self.unfolded, self.by_cell = model, unfolded, None
        self.grey = is_view_model(model) and not any(self.mean) and all(v == 1 for v in self.std)
        # auto: bf16 on GPUs, fp32 on CPUs (bf16 there is opt-in: faster only with AVX512-BF16/AMX)
        self.bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self.temperature = float(cfg.get("temperature", 1.0))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities: ``softmax(logits / T)`` (:mod:`..metrics.calibration`; T = 1 uncalibrated)."""
        return (logits.float() / self.temperature).softmax(-1)

    def inputs(self, canvases: torch.Tensor) -> torch.Tensor:
        """uint8 canvases → the model's input, as its config says."""
        canvases = canvases.to(self.device, non_blocking=True)
        if self.grey:  # the view takes the grey [0, 1] canvas as it is: no 3-channel copy, no normalising
            return canvases.float().div(255.0)
        return prepare(canvases, self.img_size, self.mean, self.std)

    @torch.inference_mode()
    def __call__(self, canvases: torch.Tensor) -> torch.Tensor:
        x = self.inputs(canvases)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.probabilities(self.model(x))

    @torch.inference_mode()
    def cell(self, canvases: torch.Tensor) -> torch.Tensor:
        """One cell's uint8 canvases read together: with their mirror images as one batch, BatchNorm by the
        batch's statistics (the model's running statistics untouched), probabilities averaged over each
        chromosome and its mirror image."""
        if self.by_cell is None:  # a copy whose BatchNorm layers always normalise by the batch in hand
            self.by_cell = copy.deepcopy(self.unfolded)
            for m in self.by_cell.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.train()
                    m.track_running_stats = False
        x = self.inputs(canvases)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            p = self.probabilities(self.by_cell(torch.cat([x, x.flip(-1)])))
        return (p[:len(x)] + p[len(x):]) / 2


def predict(predictor, split, batch_size: int, workers: int, progress: bool, scales: RowScales | None = None,
            together: bool = True) -> np.ndarray:
    """Probabilities of every canvas of a split: ``predictor`` a :class:`Predictor` or an ``OnnxPredictor``;
    ``scales`` (from :func:`.data.transforms.cell_scales`) reads each row's canvas as its cell is read, and
    (``together``) each measured cell's rows together (:meth:`Predictor.cell`; an ``OnnxPredictor`` reads
    them one by one)."""
    data = CanvasImages(split, scales)
    cells = scales.cells() if scales is not None and together and hasattr(predictor, "cell") else []
    alone = np.setdiff1d(np.arange(len(data)), np.concatenate(cells) if cells else [])
    alone = [alone[i:i + batch_size].tolist() for i in range(0, len(alone), batch_size)]
    out = np.zeros((len(data), labels.NUM_CLASSES), dtype=np.float32)
    pin = predictor.device.type == "cuda"
    with tqdm(total=len(data), desc="predict", disable=not progress) as bar:
        for batches, read in ((cells, getattr(predictor, "cell", None)), (alone, predictor)):
            for x, _, i in DataLoader(data, batch_sampler=batches, num_workers=workers, pin_memory=pin):
                out[i.numpy()] = read(x).cpu().numpy()
                bar.update(len(i))
    return out


def predict_canvases(predictor: Predictor, canvases, batch_size: int = 64, together: bool = False) -> np.ndarray:
    """(N, 24) probabilities for a list of (300, 300) uint8 canvases, as they are; ``together``: as one cell
    (:meth:`Predictor.cell`, one batch)."""
    if not len(canvases):
        return np.zeros((0, labels.NUM_CLASSES), dtype=np.float32)
    x = torch.from_numpy(np.stack(canvases)).unsqueeze(1)
    if together:
        return predictor.cell(x).cpu().numpy()
    return torch.cat([predictor(x[i:i + batch_size]).cpu() for i in range(0, len(x), batch_size)]).numpy()


def predict_cell(predictor: Predictor, canvases, batch_size: int = 64, cell_scale: bool = True
                 ) -> tuple[np.ndarray, CellScale]:
    """(N, 24) probabilities for the canvases of **one cell**, read at the reference scale and greys and
    together (``cell_scale``; a cell too small to measure is read chromosome by chromosome), and how the
    cell was read."""
    if not cell_scale or not len(canvases):
        return predict_canvases(predictor, canvases, batch_size), CellScale(1.0, float("nan"), 0, "not scaled")
    scaled, scale = normalise_cell(canvases)
    return predict_canvases(predictor, scaled, batch_size, together=scale.measured >= MIN_CHROMOSOMES), scale
