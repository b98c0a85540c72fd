"""The verbs of a laboratory's own input and of deployment: ``train-detector``, ``train-verifier``, ``detect``, ``adapt``,
``export-onnx`` (argument parsing only; :func:`add_lab_parsers` adds them to ``chromosomenet``'s parser)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_args import add_batch_flags, batch_mode


def _train_detector(a: argparse.Namespace) -> None:
    from ..data.metaphases import DetectAugment
    from ..training.detector import DetectorTrainConfig, train_detector

    exclude = tuple(Path(a.exclude_cells).read_text().split()) if a.exclude_cells else ()
    r = train_detector(DetectorTrainConfig(
        src=a.src, out=Path(a.out), model=a.model, split_cases=a.split_cases, exclude_cells=exclude, init=a.init,
        crop=a.crop, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, epochs=a.epochs,
        time_budget=a.time_budget, seed=a.seed, precision=a.precision, limit=a.limit, resume=a.resume,
        stop_after=a.stop_after, augment=DetectAugment() if not a.no_augment else
        DetectAugment(scale_range=1.0, symmetries=False, ink=(1, 1), gamma=(1, 1), blur=0, noise=0, jpeg=0)))
    if not r["finished"]:
        print(f"{a.out}: stopped after epoch {r['epochs_run']} (continue with --resume)")
        return
    t = r["test_metrics"]
    print(f"{a.out}: finished, best epoch {r['best_epoch']}" + (
        f"; test AP50 {100 * t['ap50']:.2f}%, AP50:95 {100 * t['ap50_95']:.2f}%, recall {100 * t['recall50']:.2f}%, "
        f"exact count {100 * t['exact_count']:.1f}% of {t['images']} metaphases" if t else ""))


def _train_verifier(a: argparse.Namespace) -> None:
    from ..training.verifier import VerifierTrainConfig, train_verifier

    exclude = tuple(Path(a.exclude_cells).read_text().split()) if a.exclude_cells else ()
    r = train_verifier(VerifierTrainConfig(
        src=a.src, out=Path(a.out), detector=a.detector, exclude_cells=exclude, lr=a.lr, epochs=a.epochs,
        time_budget=a.time_budget, seed=a.seed, limit=a.limit, resume=a.resume, stop_after=a.stop_after))
    if not r["finished"]:
        print(f"{a.out}: stopped after epoch {r['epochs_run']} (continue with --resume)")
        return
    t, d = r["test_metrics"], r["test_detector_alone"]
    print(f"{a.out}: finished, best epoch {r['best_epoch']}; copy verifier.safetensors and verifier.json beside the "
          "detector" + (f"; test recall {100 * t['recall50']:.2f}%, precision {100 * t['precision50']:.2f}%, exact "
                        f"count {100 * t['exact_count']:.1f}% (the detector alone: {100 * d['exact_count']:.1f}%) of "
                        f"{t['images']} metaphases" if t else ""))


def _detect(a: argparse.Namespace) -> None:
    from ..pipeline.detect import detect_files, load_detector

    report = detect_files(a.images, a.out, load_detector(a.detector, verify=a.verify), batch_mode(a),
                          echo=lambda r: f"{r['image']}: {r['n']} chromosomes" + (f"; {r['notes']}" if r["notes"] else ""),
                          progress=True)
    print(report.complete("detected") + f"; the boxes in {a.out}/<image>.xml (Pascal VOC) and <image>.png")


def _export_onnx(a: argparse.Namespace) -> None:
    from ..models.shipped import default_spec
    from ..pipeline.onnx import export_onnx

    facts = export_onnx(a.model or default_spec(), a.out, check=not a.no_check, one_turn=a.one_turn)
    print(json.dumps(facts, indent=2))


def _adapt(a: argparse.Namespace) -> None:
    from ..training.adapt import AdaptConfig, adapt

    r = adapt(AdaptConfig(data=tuple(a.data), out=Path(a.out), model=a.model, images=a.images, rehearse=a.rehearse,
                          rehearse_ratio=a.rehearse_ratio, distill=a.distill, val_share=a.val_share, epochs=a.epochs,
                          lr=a.lr, batch_size=a.batch_size, patience=a.patience, seed=a.seed))
    acc = f"; test accuracy {100 * r.test_metrics['accuracy']:.2f}%" if r.test_metrics else ""
    print(f"{r.run_dir}: adapted in {r.epochs_run} epochs, best {r.best_epoch}{acc}; use it as local-dir:{r.run_dir}")


def add_lab_parsers(sub) -> None:
    p = sub.add_parser("train-detector", help="train a chromosome detector on a release's metaphase boxes (CPU-sized)")
    p.add_argument("src", help="the release folder (Tseng layout: 24_chromosomes_object/JEPG + annotations)")
    p.add_argument("out", help="run folder: checkpoint, log.csv, then the model repo")
    p.add_argument("--model", default="chromosomenet_detector_resnet10t_half")
    p.add_argument("--split-cases", help="group,split CSV of cases (e.g. a shipped classifier's split_cases.csv); "
                                         "unlisted cases train")
    p.add_argument("--exclude-cells", help="file of image stems whose cases never enter (the embedded sample)")
    p.add_argument("--init", default="none", help="none | a classifier folder with the same backbone")
    p.add_argument("--crop", type=int, default=384)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--epochs", type=int)
    p.add_argument("--time-budget", type=float, metavar="MINUTES", help="plan the run to end within MINUTES")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on a GPU or a CPU with AVX-512-BF16/AMX, else fp32")
    p.add_argument("--limit", type=int, help="first N metaphases per split (smoke runs)")
    p.add_argument("--no-augment", action="store_true", help="crops at the working scale only")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, help="end this invocation after N epochs (resume later)")
    p.set_defaults(func=_train_detector)

    p = sub.add_parser("train-verifier", help="train the verifier that picks each chromosome once and whole among a "
                                              "detector's candidates (minutes on a CPU)")
    p.add_argument("src", help="the release folder the detector was trained on")
    p.add_argument("out", help="run folder: checkpoint, log.csv, then verifier.safetensors + verifier.json")
    p.add_argument("--detector", default="models/chromosomenet-detector-resnet10t-half",
                   help="a trained detector folder (its split_cases.csv sets the splits)")
    p.add_argument("--exclude-cells", help="file of image stems whose cases never enter (the embedded sample)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=8, help="at most this many (a --time-budget may plan fewer)")
    p.add_argument("--time-budget", type=float, metavar="MINUTES", help="plan the run to end within MINUTES")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="first N metaphases per split (smoke runs)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, help="end this invocation after N epochs (resume later)")
    p.set_defaults(func=_train_verifier)

    p = sub.add_parser("detect", help="chromosome boxes for bare metaphase images: Pascal VOC + a picture each")
    p.add_argument("images", nargs="+", help="metaphase images or folders of them")
    p.add_argument("--out", required=True)
    p.add_argument("--detector", help="local-dir:PATH or hf-hub:ORG/NAME (default: the shipped detector)")
    p.add_argument("--verify", action="store_true", help="let the verifier beside the detector choose the boxes")
    add_batch_flags(p, "detections.csv")
    p.set_defaults(func=_detect)

    p = sub.add_parser("adapt", help="fine-tune a classifier on a few labelled cells of a new lab (minutes on a CPU)")
    p.add_argument("data", nargs="+", help="what the lab has: karyotype's --out folders after correcting the calls "
                                          "(boxes/*.xml, calls/*.csv, call.csv), VOC files named by their calls, a "
                                          "folder of per-cell class folders, or a built dataset (train, validation)")
    p.add_argument("out", help="run folder, then the adapted model repo (the lab's data is built in OUT-data/)")
    p.add_argument("--model", help="local-dir:PATH, hf-hub:ORG/NAME or a model folder (default: the shipped default)")
    p.add_argument("--images", help="the folder of the metaphase (or chromosome) images, where the corrected files "
                                    "do not say where they are")
    p.add_argument("--rehearse", default="shipped", help="shipped (32 Tseng training cells inside the package), none, "
                                                         "or a built dataset whose train split is rehearsed")
    p.add_argument("--rehearse-ratio", type=float, default=1.0, help="rehearsal chromosomes per chromosome of the lab's")
    p.add_argument("--distill", type=float, default=1.0,
                   help="weight of the source model's own answers on the rehearsal chromosomes (0: their labels only)")
    p.add_argument("--val-share", type=float, default=0.2, help="of the lab's cells (whole cases) to stop on")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=3e-4, help="peak of the one-cycle schedule")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patience", type=int, default=5, help="early stopping on validation loss")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_adapt)

    p = sub.add_parser("export-onnx", help="a classifier as one ONNX file (canonical view inside), checked "
                                           "against torch with onnxruntime")
    p.add_argument("model", nargs="?", help="local-dir:PATH or hf-hub:ORG/NAME (default: the shipped default classifier)")
    p.add_argument("out", help="OUT.onnx")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with torch on the embedded sample")
    p.add_argument("--one-turn", action="store_true",
                   help="read each view once, not also turned 180° (twice the speed, about 0.4 points less)")
    p.set_defaults(func=_export_onnx)
