"""The dataset verbs: ``import-tseng``, ``import-cells``, ``build-dataset``, ``info``, ``push-dataset``
(argument parsing only)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_args import add_push_parser, add_workers


def _import_tseng(a: argparse.Namespace) -> None:
    from ..importers.tseng import import_tseng

    cells = None
    if a.cells:
        spec = Path(a.cells)
        cells = spec.read_text().split() if spec.is_file() else a.cells.split(",")
    report = import_tseng(a.src, a.out, workers=a.workers, cells=cells, canvas=a.canvas,
                          overwrite=a.overwrite, on_error=a.on_error, separate=a.separate)
    print(report.summary())


def _import_cells(a: argparse.Namespace) -> None:
    from ..importers.cells import import_cells

    print(import_cells(a.src, a.out, canvas=a.canvas, overwrite=a.overwrite, on_error=a.on_error).summary())


def _build_dataset(a: argparse.Namespace) -> None:
    from ..data.build import BuildConfig, build_dataset

    cfg = BuildConfig(raw=Path(a.raw), out=Path(a.out), split=a.split, ratios=tuple(a.ratios), seed=a.seed,
                      group_by=a.group_by, on_error=a.on_error, canvas=a.canvas, workers=a.workers,
                      max_shard_size=a.max_shard_size, license=a.license, overwrite=a.overwrite)
    report = build_dataset(cfg)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(report.summary())


def _info(a: argparse.Namespace) -> None:
    from ..data.publish import dataset_summary

    print(dataset_summary(a.dataset))


def _push_dataset(a: argparse.Namespace) -> None:
    from ..data.publish import push_dataset

    print(push_dataset(a.dataset, a.repo_id, private=a.private))


def add_data_parsers(sub) -> None:
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
    add_workers(p)
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
    add_workers(p)
    p.set_defaults(func=_build_dataset)

    p = sub.add_parser("info", help="summary of a built dataset folder")
    p.add_argument("dataset")
    p.set_defaults(func=_info)

    add_push_parser(sub, "push-dataset", "dataset", "upload a built dataset folder to the Hugging Face Hub", _push_dataset)
