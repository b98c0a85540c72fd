"""Space latency on this CPU: one chromosome, and one 46-chromosome cell; median of N.

    python bench/bench_space.py [--model SPEC] [--repeats 20] [--threads N]

Two paths per request, both after warm-up:
  * function — what the handler does: read + decode + predict (+ Grad-CAM) or (+ assignment with
    confidences, karyogram PNG, CSV/JSON) — :func:`classify_chromosome`, :func:`karyotype_files`;
  * HTTP — the running app called through ``gradio_client`` on 127.0.0.1: upload, queue, handler,
    output files served back (what a person waits for, minus the browser's drawing).

Without ``--model`` it uses the main job's run (``out/report/runs/tf_efficientnet_lite0``, 128 px);
when that has not been trained it times an untrained ``tf_efficientnet_lite0`` exported at 128 px
(same architecture and input size: latency does not depend on the weights' values).
"""
from __future__ import annotations

import argparse
import platform
import socket
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import timm
import torch

import chromosomenet
from chromosomenet.apps.engine import Engine, classify_chromosome, karyotype_files
from chromosomenet.apps.serve import default_model_spec, launch
from chromosomenet.models import hub

CELL = "103181"  # a normal 46,XY cell of the embedded sample: 46 images


def untrained_lite0(folder: Path, img_size: int = 128) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    model = timm.create_model("tf_efficientnet_lite0", num_classes=24)
    hub.save(folder, model, hub.export_cfg(model, img_size, 3, model.pretrained_cfg["mean"], model.pretrained_cfg["std"]))
    return f"local-dir:{folder}"


def median_ms(fn, repeats: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="default: the main job's run, else an untrained Lite0 at 128 px")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-space-"))
    spec = a.model or default_model_spec()
    note = ""
    if spec is None:
        spec, note = untrained_lite0(work / "lite0"), " (untrained weights: the main job's run is not there)"
    engine = Engine(spec)
    files = sorted(chromosomenet.sample_dir().glob(f"*/{CELL}_*.png"))
    assert len(files) == 46, f"cell {CELL} should have 46 images, found {len(files)}"
    one = files[0]
    zpath = work / f"cell_{CELL}.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in files:
            z.write(f, f.name)

    rows = []
    rows.append(("one chromosome (decode, predict, Grad-CAM)", "function",
                 *median_ms(lambda: classify_chromosome(engine, one), a.repeats)))
    n = 0

    def cell():
        nonlocal n
        n += 1
        karyotype_files(engine, files, work / f"cell{n}")

    rows.append(("46-chromosome cell (decode, predict, assign, karyogram, CSV/JSON)", "function",
                 *median_ms(cell, max(3, a.repeats // 2))))

    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch(spec, port=port, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        rows.append(("one chromosome", "HTTP (gradio_client)", *median_ms(
            lambda: client.predict(handle_file(str(one)), api_name="/classify"), a.repeats)))
        rows.append(("46-chromosome cell, one zip upload", "HTTP (gradio_client)", *median_ms(
            lambda: client.predict([handle_file(str(zpath))], api_name="/karyotype"), max(3, a.repeats // 2))))
    finally:
        demo.close()

    c, s_, _ = engine.cfg["input_size"]
    print(f"model {spec}{note}: {engine.cfg.get('architecture')}, {s_}x{s_} px, {c} ch; "
          f"CPU {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {a.repeats} (cells: {max(3, a.repeats // 2)}) after warm-up\n")
    print("| request | path | median ms | best ms |\n|---|---|---|---|")
    for what, path, med, best in rows:
        print(f"| {what} | {path} | {med:.0f} | {best:.0f} |")


if __name__ == "__main__":
    main()
