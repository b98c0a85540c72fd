"""The model verbs: ``models``, ``train``, ``benchmark``, ``evaluate``, ``score``, ``push-model``
(argument parsing only)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .cli_args import add_cell_scale_flag, add_push_parser, add_recipe_args, add_train_args, recipe_kwargs


def _models(a: argparse.Namespace) -> None:
    from ..models.registry import models_main
    from ..models.shipped import listing

    print(listing() + "\n\n" + models_main(a.img_size, a.in_chans))


def _train(a: argparse.Namespace) -> None:
    from ..training.classifier import TrainConfig, train

    cfg = TrainConfig(model=a.model, data=a.data, out=Path(a.out), resume=a.resume, stop_after=a.stop_after,
                      **recipe_kwargs(a))
    r = train(cfg)
    state = "finished" if r.finished else f"stopped after epoch {r.epochs_run} (continue with --resume)"
    acc = f"; test accuracy {100 * r.test_metrics['accuracy']:.2f}%" if r.test_metrics else ""
    print(f"{r.run_dir}: {state}; best epoch {r.best_epoch} (val loss {r.best_val_loss:.4f}){acc}")


def _benchmark(a: argparse.Namespace) -> None:
    from ..evaluation.benchmark import BenchmarkConfig, run_benchmark

    cfg = BenchmarkConfig(data=a.data, out=Path(a.out), suite=a.suite,
                          models=tuple(a.models.split(",")) if a.models else None, recipe=recipe_kwargs(a),
                          timing_samples=a.timing_samples)
    print(f"report: {run_benchmark(cfg)}")


def _evaluate(a: argparse.Namespace) -> None:
    from ..evaluation.evaluate import EvalConfig, evaluate, format_metrics
    from ..models.shipped import default_spec

    cfg = EvalConfig(model=a.model or default_spec(), data=a.data, out=Path(a.out), split=a.split,
                     batch_size=a.batch_size, workers=a.workers, timing=not a.no_timing,
                     timing_samples=a.timing_samples, precision=a.precision, backend=a.backend,
                     cell_scale=not a.no_cell_scale)
    metrics = evaluate(cfg)
    print(format_metrics(metrics))
    print(f"wrote {a.out}/predictions.parquet, metrics.json, confusion.png, per_class.png")


def _calibrate(a: argparse.Namespace) -> None:
    from ..training.calibrate import CalibrateConfig, calibrate
    from ..models.shipped import default_spec

    f = calibrate(CalibrateConfig(model=a.model or default_spec(), data=a.data, split=a.split))
    print(f"temperature {f['temperature']:.4f} on {f['fitted_on']}: ECE {100 * f['ece_before']:.2f} % → "
          f"{100 * f['ece_after']:.2f} %, NLL {f['nll_before']:.4f} → {f['nll_after']:.4f}; wrote calibration.json "
          "beside the model (tune its review threshold again: karyotype --run MODEL --data DATASET --keep-costs COSTS)")


def _score(a: argparse.Namespace) -> None:
    from ..evaluation.evaluate import format_metrics, score

    print(format_metrics(score(a.predictions, a.data, a.split, Path(a.out))))
    print(f"wrote {a.out}/predictions.parquet, metrics.json, confusion.png, per_class.png")


def _push_model(a: argparse.Namespace) -> None:
    from ..models.hub import push_model

    print(push_model(a.run_dir, a.repo_id, private=a.private))


def add_model_parsers(sub) -> None:
    p = sub.add_parser("models", help="the shipped models, and the paper's baselines: params, GMACs, paper accuracy")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--in-chans", type=int, choices=(1, 3), default=3)
    p.set_defaults(func=_models)

    p = sub.add_parser("train", help="fine-tune a baseline (also: accelerate launch train_accelerate.py ...)")
    add_train_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--stop-after", type=int, help="end this invocation after N epochs (resume later)")
    p.set_defaults(func=_train)

    p = sub.add_parser("benchmark", help="train + evaluate a suite; report mirroring the paper's tables 1-6")
    p.add_argument("--suite", choices=("paper",), default="paper",
                   help="paper: the 8 baselines and the 6 prior methods of Table 6")
    p.add_argument("--models", help="comma-separated subset (default: the whole suite)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="report folder (runs are reused: resumable)")
    p.add_argument("--timing-samples", type=int, default=1000)
    add_recipe_args(p)
    p.set_defaults(func=_benchmark)

    p = sub.add_parser("calibrate", help="fit the temperature that makes a model's confidences mean what they say "
                                         "(on validation cells); written beside the model, read by every path")
    p.add_argument("model", nargs="?", help="a local model folder (default: the shipped default classifier)")
    p.add_argument("--data", required=True, help="a built dataset")
    p.add_argument("--split", default="validation", help="the cells to fit on (never the ones you report)")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("evaluate", help="score a run / timm model on a split: predictions, metrics, figures")
    p.add_argument("model", nargs="?", help="run folder, local-dir:PATH, hf-hub:ORG/NAME or a timm name "
                                            "(default: the shipped default classifier)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="folder for predictions.parquet, metrics.json, figures")
    p.add_argument("--batch-size", type=int, help="default: 128 on a GPU, 16 on a CPU")
    p.add_argument("--workers", type=int, help="decode processes (default: up to 8 on a GPU, 0 on a CPU)")
    p.add_argument("--no-timing", action="store_true", help="skip InferenceTime, throughput and FLOPs")
    p.add_argument("--timing-samples", type=int, default=1000, help="InferenceTime sample count (paper: 1000)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 on GPU, fp32 on CPU")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="onnx: MODEL is a .onnx file from `export-onnx`, run by onnxruntime")
    add_cell_scale_flag(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("score", help="score an external predictions CSV with the same metrics and report")
    p.add_argument("predictions", help="CSV: id (the dataset's file), predicted (1..22, X, Y), optional p_1..p_Y")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_score)

    add_push_parser(sub, "push-model", "run_dir", "upload a finished run folder to the Hugging Face Hub", _push_model)
