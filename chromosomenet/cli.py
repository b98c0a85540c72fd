"""`chromosomenet <verb>`: thin argument parsing over the library; errors become one stderr line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cli_lab import add_lab_parsers
from .errors import BadInputError, ChromosomeNetError


def _import_tseng(a: argparse.Namespace) -> None:
    from .data.importers.tseng import import_tseng

    cells = None
    if a.cells:
        spec = Path(a.cells)
        cells = spec.read_text().split() if spec.is_file() else a.cells.split(",")
    report = import_tseng(a.src, a.out, workers=a.workers, cells=cells, canvas=a.canvas,
                          overwrite=a.overwrite, on_error=a.on_error, separate=a.separate)
    print(report.summary())


def _import_cells(a: argparse.Namespace) -> None:
    from .data.importers.cells import import_cells

    print(import_cells(a.src, a.out, canvas=a.canvas, overwrite=a.overwrite, on_error=a.on_error).summary())


def _build_dataset(a: argparse.Namespace) -> None:
    from .data.build import BuildConfig, build_dataset

    cfg = BuildConfig(raw=Path(a.raw), out=Path(a.out), split=a.split, ratios=tuple(a.ratios), seed=a.seed,
                      group_by=a.group_by, on_error=a.on_error, canvas=a.canvas, workers=a.workers,
                      max_shard_size=a.max_shard_size, license=a.license, overwrite=a.overwrite)
    report = build_dataset(cfg)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(report.summary())


def _info(a: argparse.Namespace) -> None:
    from .data.publish import dataset_summary

    print(dataset_summary(a.dataset))


def _push_dataset(a: argparse.Namespace) -> None:
    from .data.publish import push_dataset

    print(push_dataset(a.dataset, a.repo_id, private=a.private))


def _train(a: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    cfg = TrainConfig(model=a.model, data=a.data, out=Path(a.out), resume=a.resume, stop_after=a.stop_after,
                      **recipe_kwargs(a))
    r = train(cfg)
    state = "finished" if r.finished else f"stopped after epoch {r.epochs_run} (continue with --resume)"
    acc = f"; test accuracy {100 * r.test_metrics['accuracy']:.2f}%" if r.test_metrics else ""
    print(f"{r.run_dir}: {state}; best epoch {r.best_epoch} (val loss {r.best_val_loss:.4f}){acc}")


def _models(a: argparse.Namespace) -> None:
    from .models.registry import models_main
    from .models.shipped import listing

    print(listing() + "\n\n" + models_main(a.img_size, a.in_chans))


def _push_model(a: argparse.Namespace) -> None:
    from .models.hub import push_model

    print(push_model(a.run_dir, a.repo_id, private=a.private))


def _benchmark(a: argparse.Namespace) -> None:
    from .benchmark import BenchmarkConfig, run_benchmark

    cfg = BenchmarkConfig(data=a.data, out=Path(a.out), suite=a.suite,
                          models=tuple(a.models.split(",")) if a.models else None, recipe=recipe_kwargs(a),
                          timing_samples=a.timing_samples)
    print(f"report: {run_benchmark(cfg)}")


def _demo(a: argparse.Namespace) -> None:
    from .demo import DemoConfig, run_demo
    from .models.shipped import default_spec

    model = a.model or default_spec()
    readme = run_demo(DemoConfig(model=model, data=a.data, out=Path(a.out), split=a.split, costs=a.costs,
                                 metaphases=a.metaphases, detector=a.detector))
    print(f"report: {readme}")


def _karyotype(a: argparse.Namespace) -> None:
    from .cells import KaryotypeConfig, karyotype_images, karyotype_split
    from .models.shipped import default_spec

    if a.metaphase:
        from .metaphase import MetaphaseConfig, karyotype_metaphases

        rows = karyotype_metaphases(MetaphaseConfig(images=tuple(a.metaphase), out=Path(a.out), classifier=a.run,
                                                    detector=a.detector, boxes=a.boxes, costs=a.costs,
                                                    cell_scale=not a.no_cell_scale))
        for r in rows:
            print(f"{r['cell']}: {r['predicted_iscn'] or 'no karyotype called'} ({r['n']} chromosomes from the "
                  f"{r['boxes_from']}, {r['flagged']} flagged)" + (f"; {r['message']}" if r["message"] else "")
                  + (f"; {r['notes']}" if r["notes"] else ""))
        print(f"wrote {a.out}/cells.csv, karyograms/, metaphases/, calls/, boxes/")
        return
    if a.boxes or a.detector:
        raise BadInputError("--boxes/--detector", "go with --metaphase", "pass the metaphase images with --metaphase")
    a.run = a.run or default_spec()
    cfg = KaryotypeConfig(run=a.run, out=Path(a.out), data=a.data, split=a.split, images=tuple(a.images or ()),
                          one_cell=a.one_cell, costs=a.costs, target_accuracy=a.target_accuracy, workers=a.workers,
                          bound_level=a.bound_level or None, cell_scale=not a.no_cell_scale,
                          **({} if a.always_review is None else
                             {"always_review": tuple(f for f in a.always_review.split(",") if f)}))
    if a.data:
        s = karyotype_split(cfg)
        print(f"{s['cells']} cells: instance accuracy {100 * s['instance_accuracy_before']:.2f}% → "
              f"{100 * s['instance_accuracy_after']:.2f}% after assignment; report {a.out}/README.md")
    else:
        call = karyotype_images(cfg)
        print(f"{call.iscn or 'no karyotype called'}{' — ' + call.message if call.message else ''}; "
              f"{sum(call.flags)} of {len(call.labels)} flagged; karyogram {a.out}/karyogram.png")


def _evaluate(a: argparse.Namespace) -> None:
    from .evaluate import EvalConfig, evaluate, format_metrics
    from .models.shipped import default_spec

    cfg = EvalConfig(model=a.model or default_spec(), data=a.data, out=Path(a.out), split=a.split,
                     batch_size=a.batch_size, workers=a.workers, timing=not a.no_timing,
                     timing_samples=a.timing_samples, precision=a.precision, backend=a.backend,
                     cell_scale=not a.no_cell_scale)
    metrics = evaluate(cfg)
    print(format_metrics(metrics))
    print(f"wrote {a.out}/predictions.parquet, metrics.json, confusion.png, per_class.png")


def _score(a: argparse.Namespace) -> None:
    from .evaluate import format_metrics, score

    print(format_metrics(score(a.predictions, a.data, a.split, Path(a.out))))
    print(f"wrote {a.out}/predictions.parquet, metrics.json, confusion.png, per_class.png")


def _serve(a: argparse.Namespace) -> None:
    from .serve import launch

    launch(a.model, host=a.host, port=a.port, detector=a.detector)


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The training flags (shared by `chromosomenet train` and train_accelerate.py)."""
    p.add_argument("--model", required=True, help="timm name; `chromosomenet models` lists the paper's")
    p.add_argument("--data", required=True, help="a built dataset folder or a (cached) Hub dataset id")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, then the model repo")
    add_recipe_args(p)


def recipe_kwargs(a: argparse.Namespace) -> dict:
    """TrainConfig keyword arguments from the recipe flags."""
    from .data.transforms import Augment

    return dict(img_size=a.img_size, in_chans=a.in_chans, init=a.init, batch_size=a.batch_size, lr=a.lr,
                weight_decay=a.weight_decay, pct_start=a.pct_start, label_smoothing=a.label_smoothing,
                max_epochs=a.max_epochs, epochs=a.epochs, patience=a.patience, seed=a.seed,
                augment=Augment(rotate_deg=a.rotate, flip=not a.no_flip, brightness=a.jitter, contrast=a.jitter,
                                scale=a.scale_jitter, width=a.width_jitter, gamma=a.gamma, blur=a.blur, noise=a.noise,
                                jpeg=a.jpeg),
                workers=a.workers, eval_batch_size=a.eval_batch_size, bn_stats_images=a.bn_stats_images,
                compile=a.compile, time_budget=a.time_budget, precision=a.precision, cache=not a.no_cache,
                cell_scale=not a.no_cell_scale)


def add_cell_scale_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cell-scale", action="store_true",
                   help="read each chromosome alone at its own pixels and greys, not its cell at the training lab's "
                        "median chromosome length and ink greys and, at prediction, together (the cell's statistics)")


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """How to train (everything but which model, data and folder)."""
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--in-chans", type=int, choices=(1, 3), default=3,
                   help="3: grey repeated to RGB on the device (default; works with timm/transformers tools)")
    p.add_argument("--init", default="imagenet", help="imagenet | none | PATH to .safetensors or model folder")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--pct-start", type=float, default=0.25, help="one-cycle warm-up share")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--max-epochs", type=int, default=500)
    p.add_argument("--epochs", type=int, help="cap the epochs (and the one-cycle length) for quick runs")
    p.add_argument("--patience", type=int, default=5, help="early stopping on validation loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rotate", type=float, default=15.0, help="max rotation in degrees")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--jitter", type=float, default=0.1, help="brightness/contrast jitter")
    looks = p.add_argument_group("another microscope's looks (0: off)")
    looks.add_argument("--scale-jitter", type=float, default=0.0, help="± size, log-uniform (e.g. 0.15)")
    looks.add_argument("--width-jitter", type=float, default=0.0, help="± width across the chromosome")
    looks.add_argument("--gamma", type=float, default=0.0, help="± gamma exponent, log-uniform")
    looks.add_argument("--blur", type=float, default=0.0, help="share of images blurred (σ 0.3–1 px)")
    looks.add_argument("--noise", type=float, default=0.0, help="largest σ of pixel noise (e.g. 0.03)")
    looks.add_argument("--jpeg", type=float, default=0.0, help="share of images through JPEG at quality 30–90")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes per training process")
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--bn-stats-images", type=int, default=4096,
                   help="recompute BatchNorm statistics on this many training images each epoch (0: off)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    add_cell_scale_flag(p)
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="plan the one-cycle schedule from a measured step time to end annealed within MINUTES")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on GPU, fp32 on CPU; bf16 pays on CPUs with AVX-512-BF16/AMX")
    p.add_argument("--no-cache", action="store_true",
                   help="view models: decode canvases per batch instead of holding the split's views in memory")


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chromosomenet", description=__doc__)
    sub = ap.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("import-tseng", help="Tseng et al. 2023 metaphases + VOC boxes → paper layout")
    p.add_argument("src", help="the release folder (holds 24_chromosomes_object/ and the CSVs)")
    p.add_argument("out", help="new raw tree: OUT/0 … OUT/23 + metadata.csv")
    p.add_argument("--cells", help="only these image stems: comma-separated, or a file of stems")
    p.add_argument("--canvas", type=int, default=300)
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail")
    p.add_argument("--separate", action=argparse.BooleanOptionalAction, default=True,
                   help="split touching / crossing chromosomes (all boxes of a metaphase together; flags "
                        "separated / overlap; merged only where it failed): the import the shipped models were "
                        "trained on (default); --no-separate isolates each box on its own")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _workers(p)
    p.set_defaults(func=_import_tseng)

    p = sub.add_parser("import-cells", help="per-cell class-folder trees (SRC/<cell>/<class>/<image>) → paper layout")
    p.add_argument("src", help="one folder per cell; class folders clase1…clase24, 1…24, chr1…chrY, X, Y")
    p.add_argument("out", help="new raw tree: OUT/0 … OUT/23 + metadata.csv (case_id, cell_id)")
    p.add_argument("--canvas", type=int, default=300)
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_import_cells)

    p = sub.add_parser("build-dataset", help="raw tree → manifest + Parquet + dataset card")
    p.add_argument("raw", help="tree with class folders 0..23 (or 1..22, X, Y), optional metadata.csv")
    p.add_argument("out", help="new dataset folder")
    p.add_argument("--split", choices=("auto", "grouped", "stratified", "from-metadata"), default="auto",
                   help="auto: grouped when metadata.csv names groups, else stratified; from-metadata: the "
                        "source's own split (metadata.csv column 'split': train/validation/test)")
    p.add_argument("--ratios", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group-by", default="case_id", help="metadata.csv column naming the group (case)")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="stop at the first bad file, or skip bad files and list them")
    p.add_argument("--canvas", type=int, default=300)
    p.add_argument("--max-shard-size", default="500MB")
    p.add_argument("--license", help="license id for the card (default: from RAW/ATTRIBUTION.md)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _workers(p)
    p.set_defaults(func=_build_dataset)

    p = sub.add_parser("info", help="summary of a built dataset folder")
    p.add_argument("dataset")
    p.set_defaults(func=_info)

    p = sub.add_parser("models", help="the shipped models, and the paper's baselines: params, GMACs, paper accuracy")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--in-chans", type=int, choices=(1, 3), default=3)
    p.set_defaults(func=_models)

    p = sub.add_parser("train", help="fine-tune a baseline (also: accelerate launch train_accelerate.py ...)")
    add_train_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--stop-after", type=int, help="end this invocation after N epochs (resume later)")
    p.set_defaults(func=_train)

    add_lab_parsers(sub)

    p = sub.add_parser("benchmark", help="train + evaluate a suite; report mirroring the paper's tables 1-6")
    p.add_argument("--suite", choices=("paper",), default="paper",
                   help="paper: the 8 baselines and the 6 prior methods of Table 6")
    p.add_argument("--models", help="comma-separated subset (default: the whole suite)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="report folder (runs are reused: resumable)")
    p.add_argument("--timing-samples", type=int, default=1000)
    add_recipe_args(p)
    p.set_defaults(func=_benchmark)

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

    p = sub.add_parser("demo", help="the main job: evaluate + karyotype every cell with a trained model, one report")
    p.add_argument("--model", help="local-dir:PATH or hf-hub:ORG/NAME (default: the shipped default classifier)")
    p.add_argument("--data", required=True, help="a built dataset with cell ids")
    p.add_argument("--split", default="all", help="a split name, or all (default: every split)")
    p.add_argument("--costs", help="karyotype costs.json (default: the one beside the model)")
    p.add_argument("--metaphases", help="a folder of metaphase images and their <stem>.xml VOC boxes: also karyotype "
                                        "them from the bare images, beside the annotated boxes")
    p.add_argument("--detector", help="with --metaphases: local-dir:PATH or hf-hub:ORG/NAME (default: the shipped one)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_demo)

    p = sub.add_parser("karyotype", help="cell-level calls: karyograms, ISCN count strings, review flags")
    p.add_argument("--run", help="the classifier: a trained run (folder, local-dir:, hf-hub:); "
                                 "default: the shipped default classifier")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="dataset with cell ids: tune on validation, score --split")
    src.add_argument("--images", nargs="+", help="one cell's chromosome images, their folder, or its class folders")
    src.add_argument("--metaphase", nargs="+", metavar="IMAGE",
                     help="bare metaphase images (or folders): detect → separate → classify → assign, one cell each")
    p.add_argument("--boxes", help="with --metaphase: a folder of <image stem>.xml Pascal-VOC boxes to use "
                                   "instead of the detector (e.g. `detect`'s output after correcting it)")
    p.add_argument("--detector", help="with --metaphase: local-dir:PATH or hf-hub:ORG/NAME (default: the shipped one)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True)
    p.add_argument("--one-cell", action="store_true", help="treat all --images as one cell, whatever their names")
    p.add_argument("--costs", help="costs.json of a --data run (costs, review threshold): with --data, used, "
                   "not tuned; with --images, default: the model's own")
    p.add_argument("--target-accuracy", type=float, default=0.999, help="of the unflagged, when tuning the threshold")
    p.add_argument("--bound-level", type=float, default=0.95,
                   help="the target must hold for this one-sided Clopper–Pearson bound on validation (0: point estimate)")
    p.add_argument("--always-review", help="quality flags whose chromosomes are flagged whatever their confidence, "
                                           "comma-separated ('' for none; default: merged,low_fill,empty)")
    p.add_argument("--workers", type=int, default=2)
    add_cell_scale_flag(p)
    p.set_defaults(func=_karyotype)

    p = sub.add_parser("score", help="score an external predictions CSV with the same metrics and report")
    p.add_argument("predictions", help="CSV: id (the dataset's file), predicted (1..22, X, Y), optional p_1..p_Y")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_score)

    p = sub.add_parser("serve", help="the Gradio app (the Space): one chromosome, or a whole cell")
    p.add_argument("--model", default=os.environ.get("CHROMOSOMENET_MODEL"),
                   help="local-dir:PATH, a run folder or hf-hub:ORG/NAME (default: $CHROMOSOMENET_MODEL, else "
                        "the shipped default classifier)")
    p.add_argument("--detector", default=os.environ.get("CHROMOSOMENET_DETECTOR"),
                   help="for bare metaphases: local-dir:PATH or hf-hub:ORG/NAME (default: $CHROMOSOMENET_DETECTOR, "
                        "else the shipped detector)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=_serve)

    p = sub.add_parser("push-model", help="upload a finished run folder to the Hugging Face Hub")
    p.add_argument("run_dir")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=_push_model)

    p = sub.add_parser("push-dataset", help="upload a built dataset folder to the Hugging Face Hub")
    p.add_argument("dataset")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=_push_dataset)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ChromosomeNetError as e:
        print(f"chromosomenet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chromosomenet {args.verb}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
