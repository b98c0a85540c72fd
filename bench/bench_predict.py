"""The predict path, canvases → probabilities, on torch (fp32, bf16) and on onnxruntime, same model, same canvases.

    python bench/bench_predict.py [--model local-dir:models/chromosomenet-view-resnet10t-half] [--batches 16 32 64]

Exports the model (``chromosomenet export-onnx``, checked against torch) into a temporary folder, then
times each backend on the embedded sample's 1,014 canvases (uint8 in, probabilities out; both turns of
the view, as the model ships, and one turn), after a warm-up, best of three passes at the best of
``--batches`` (on 2 cores small batches win: the activations stay in cache). The reference is torch's own
Predictor (BatchNorm folded, fp32): the table gives each backend's ratio to it, its accuracy on the
sample's labels and how many argmaxes differ from the reference. bf16 is fast only on CPUs with
AVX512-BF16 or AMX (``--precision bf16`` of ``evaluate``); elsewhere it is slower than fp32.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from chromosomenet import sample_dir
from chromosomenet.models import shipped
from chromosomenet.pipeline.onnx import OnnxPredictor, export_onnx, sample_canvases
from chromosomenet.pipeline.predict import Predictor, load_classifier


def rate(fn, x: torch.Tensor, batch: int) -> float:
    """Canvases per second over the whole set at one batch size, best of three passes after a warm-up."""
    fn(x[:batch])
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(x[i:i + batch])
        best = max(best, len(x) / (time.perf_counter() - t0))
    return best


def measure(fn, x: torch.Tensor, batches) -> tuple[float, int, torch.Tensor]:
    """(best canvases/s, its batch size, the argmax of every canvas)."""
    best = max((rate(fn, x, b), b) for b in batches)
    top = torch.cat([fn(x[i:i + 64]).argmax(-1) for i in range(0, len(x), 64)])
    return best[0], best[1], top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=shipped.default_spec())
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64])
    a = ap.parse_args()
    x = torch.from_numpy(sample_canvases())
    truth = torch.tensor([int(f.parent.name) for f in sorted(sample_dir().glob("*/*.png"))])
    rows = []
    for tta in (True, False):
        turns = "both turns" if tta else "one turn"
        ref = None
        for name, precision in ((f"torch Predictor fp32, {turns} (reference)", "fp32"),
                                (f"torch Predictor bf16, {turns}", "bf16")):
            model, cfg = load_classifier(a.model)
            model.tta = tta
            r, b, top = measure(Predictor(model, cfg, device=torch.device("cpu"), precision=precision), x, a.batches)
            ref = (r, top) if ref is None else ref
            rows.append((name, r, b, r / ref[0], top, ref[1], "–"))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            facts = export_onnx(a.model, path, one_turn=not tta)
            r, b, top = measure(OnnxPredictor(path), x, a.batches)
        diff = (f"{facts['max_abs_logit_diff_within']:.1e} ({1014 - round(facts['share_over_tolerance'] * 1014)} "
                f"of 1014 ≤ 1e-4; largest {facts['max_abs_logit_diff']:.1e})")
        rows.append((f"onnxruntime, {turns}", r, b, r / ref[0], top, ref[1], diff))
    print(f"Predict path on {len(x)} sample canvases, {torch.get_num_threads()} threads, best of batch "
          f"{'/'.join(map(str, a.batches))} (`{a.model}`)\n")
    print("| backend | canvases/s | batch | ratio | accuracy on the sample | argmax ≠ fp32 | largest logit difference "
          "to torch |\n|---|---|---|---|---|---|---|")
    for name, r, b, ratio, top, ref_top, diff in rows:
        print(f"| {name} | {r:,.0f} | {b} | {ratio:.2f}× | {100 * (top == truth).float().mean():.2f} % | "
              f"{int((top != ref_top).sum())} | {diff} |")


if __name__ == "__main__":
    main()
