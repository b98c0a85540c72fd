"""A classifier as one ONNX file, the canonical view inside: uint8 canvases in, logits and probabilities out.

    chromosomenet export-onnx [MODEL] OUT.onnx        # checked against torch on the embedded sample
    predictor = OnnxPredictor("OUT.onnx")             # what Predictor is, on onnxruntime

The graph takes what every path of this suite takes: (B, 1, 300, 300) uint8 grey canvases (white
background), any batch size. Inside: the model's own preprocessing (a view model: /255 and the
canonical view, both turns of it; others: resize, normalise, grey to RGB), the network, a softmax. A
laboratory workstation runs it with onnxruntime alone, without PyTorch. Exported with torch's
TorchScript-based exporter (opset 17, which has GridSample); the view has a branch-free form for
tracing that computes the same numbers (:mod:`.view`).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import labels
from ..data.images import CANVAS
from ..errors import BadInputError
from ..fsutil import atomic_write_bytes
from ..samples import sample_dir
from .predict import Predictor, load_classifier

OPSET = 17
# The export check: every logit within TOLERANCE of torch's, except where the two runtimes' float rounding
# puts one pixel of a view on the other side of a grey level (the view is rounded to 8 bits, as training
# saw it): measured on the 1,014 sample canvases, 1 canvas, 2.3e-3, the same class. At most ROUNDING_SHARE
# of the canvases may do that, and every argmax must agree.
TOLERANCE = 1e-4
ROUNDING_SHARE = 0.005


class _Canvases(torch.nn.Module):
    """uint8 canvases → (logits, probabilities), with the preprocessing the Predictor applies."""

    def __init__(self, predictor: Predictor):
        super().__init__()
        self.model, self.p = predictor.model, predictor

    def forward(self, canvases: torch.Tensor):
        logits = self.model(self.p.inputs(canvases)).float()
        return logits, self.p.probabilities(logits)  # calibrated as the Predictor is


def sample_canvases(n: int | None = None) -> np.ndarray:
    """(N, 1, 300, 300) uint8: the embedded sample's canvases (real chromosomes), in file order."""
    from PIL import Image

    files = sorted(sample_dir().glob("*/*.png"))[:n]
    return np.stack([np.asarray(Image.open(f).convert("L")) for f in files])[:, None]


def export_onnx(spec: str, out: str | Path, check: bool = True, one_turn: bool = False) -> dict:
    """Write ``out`` (atomically) and, with ``check``, compare onnxruntime's logits with torch's on the
    embedded sample's 1,014 canvases; returns the facts (largest difference, agreement of the argmax).
    ``one_turn``: a view model reads its view once, not also turned 180° (twice the speed, −0.4 points)."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise BadInputError(out, "is not a .onnx path", "name the output file OUT.onnx")
    model, cfg = load_classifier(spec)
    if one_turn:
        model.tta = False
    predictor = Predictor(model, cfg, device=torch.device("cpu"), precision="fp32", fold_bn=False)
    wrapper = _Canvases(predictor).eval()
    example = torch.from_numpy(sample_canvases(4))
    tmp = out.with_name(f".{out.name}.export")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the view's shape checks, constant here
            # the TorchScript-based exporter is deprecated in favour of torch.export's, which (torch 2.14)
            # fixes the batch dimension of this graph to the example's: this one keeps it dynamic
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(wrapper, (example,), str(tmp), opset_version=OPSET, dynamo=False,
                              input_names=["canvas"], output_names=["logits", "probabilities"],
                              dynamic_axes={"canvas": {0: "batch"}, "logits": {0: "batch"},
                                            "probabilities": {0: "batch"}})
        _label(tmp, spec)
        atomic_write_bytes(out, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    facts = {"model": spec, "onnx": str(out), "opset": OPSET, "bytes": out.stat().st_size,
             "both_turns": bool(getattr(model, "tta", False))}
    if check:
        facts.update(compare(predictor, OnnxPredictor(out)))
        if facts["share_over_tolerance"] > ROUNDING_SHARE or facts["argmax_agreement"] < 1:
            raise BadInputError(out, f"differs from torch on {100 * facts['share_over_tolerance']:.1f} % of the "
                                f"sample by more than {TOLERANCE:g} in a logit (largest "
                                f"{facts['max_abs_logit_diff']:.2g}, argmax agreement {facts['argmax_agreement']:.4f})",
                                "report it with the model and the torch / onnxruntime versions")
    return facts


def _label(path: Path, spec: str) -> None:
    """Class names and provenance in the file's metadata (what a user sees in Netron or onnxruntime)."""
    import onnx

    m = onnx.load(str(path))
    for k, v in (("label_names", ",".join(labels.NAMES)), ("source", spec),
                 ("input", f"uint8 (batch, 1, {CANVAS}, {CANVAS}) grey canvas, white background")):
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


class OnnxPredictor:
    """onnxruntime in place of :class:`~chromosomenet.pipeline.predict.Predictor`: uint8 canvases → probabilities."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BadInputError(path, "needs onnxruntime", "pip install 'chromosomenet[onnx]'") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.path = Path(path)
        if not self.path.is_file():
            raise BadInputError(path, "not found", "export one first: chromosomenet export-onnx MODEL OUT.onnx")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.device = torch.device("cpu")

    def logits(self, canvases) -> np.ndarray:
        x = canvases.numpy() if isinstance(canvases, torch.Tensor) else np.asarray(canvases)
        return self.session.run(["logits"], {"canvas": x.astype(np.uint8, copy=False)})[0]

    def __call__(self, canvases) -> torch.Tensor:
        x = canvases.numpy() if isinstance(canvases, torch.Tensor) else np.asarray(canvases)
        return torch.from_numpy(self.session.run(["probabilities"], {"canvas": x.astype(np.uint8, copy=False)})[0])


def compare(predictor: Predictor, onnx: OnnxPredictor, batch: int = 128) -> dict:
    """Largest |logit| difference and argmax agreement on the embedded sample; each backend's images/s."""
    x = torch.from_numpy(sample_canvases())
    ref, got, seconds = [], [], {"torch": 0.0, "onnx": 0.0}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t0 = time.perf_counter()
            ref.append(_Canvases(predictor)(x[i:i + batch])[0].numpy())
            t1 = time.perf_counter()
            got.append(onnx.logits(x[i:i + batch]))
            seconds["torch"] += t1 - t0
            seconds["onnx"] += time.perf_counter() - t1
    ref, got = np.concatenate(ref), np.concatenate(got)
    diff = np.abs(ref - got).max(1)
    return {"canvases": len(x), "max_abs_logit_diff": float(diff.max()),
            "share_over_tolerance": float((diff > TOLERANCE).mean()),
            "max_abs_logit_diff_within": float(diff[diff <= TOLERANCE].max(initial=0.0)),
            "argmax_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
            "images_per_s": {k: len(x) / v for k, v in seconds.items()}}
