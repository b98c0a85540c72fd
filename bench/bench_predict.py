"""The predict path, canvases → probabilities, on torch and on onnxruntime, same model, same canvases.

    python bench/bench_predict.py [--model local-dir:models/chromosomenet-view-resnet10t-half] [--batch 256]

Exports the model (``chromosomenet export-onnx``, checked against torch) into a temporary folder, then
times both backends on the embedded sample's 1,014 canvases (uint8 in, probabilities out; both turns of
the view, as the model ships, and one turn), after a warm-up, best of three passes. The reference is
torch's own Predictor (BatchNorm folded, fp32): the table gives each backend's ratio to it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from chromosomenet.export import OnnxPredictor, export_onnx, sample_canvases
from chromosomenet.models import shipped
from chromosomenet.predict import Predictor, load_classifier


def rate(fn, x: torch.Tensor, batch: int) -> float:
    """Canvases per second over the whole set, best of three passes after one warm-up pass."""
    fn(x[:batch])
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(x[i:i + batch])
        best = max(best, len(x) / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=shipped.default_spec())
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    x = torch.from_numpy(sample_canvases())
    rows = []
    for tta in (True, False):
        model, cfg = load_classifier(a.model)
        model.tta = tta
        torch_rate = rate(Predictor(model, cfg, device=torch.device("cpu")), x, a.batch)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            facts = export_onnx(a.model, path, one_turn=not tta)
            onnx_rate = rate(OnnxPredictor(path), x, a.batch)
        turns = "both turns" if tta else "one turn"
        rows.append((f"torch Predictor, {turns} (reference)", torch_rate, 1.0, "–"))
        rows.append((f"onnxruntime, {turns}", onnx_rate, onnx_rate / torch_rate,
                     f"{facts['max_abs_logit_diff_within']:.1e} ({1014 - round(facts['share_over_tolerance'] * 1014)} "
                     f"of 1014 ≤ 1e-4; largest {facts['max_abs_logit_diff']:.1e})"))
    print(f"Predict path on {len(x)} sample canvases, batch {a.batch}, {torch.get_num_threads()} threads "
          f"(`{a.model}`)\n")
    print("| backend | canvases/s | ratio | largest logit difference to torch |\n|---|---|---|---|")
    for name, r, ratio, diff in rows:
        print(f"| {name} | {r:,.0f} | {ratio:.2f}× | {diff} |")


if __name__ == "__main__":
    main()
