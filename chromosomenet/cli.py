"""`chromosomenet <verb>`: thin argument parsing over the library; errors become one stderr line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ChromosomeNetError


def _import_tseng(a: argparse.Namespace) -> None:
    from .data.importers.tseng import import_tseng

    cells = None
    if a.cells:
        spec = Path(a.cells)
        cells = spec.read_text().split() if spec.is_file() else a.cells.split(",")
    report = import_tseng(a.src, a.out, workers=a.workers, cells=cells, canvas=a.canvas,
                          overwrite=a.overwrite, on_error=a.on_error)
    print(report.summary())


def _build_dataset(a: argparse.Namespace) -> None:
    from .data.build import BuildConfig, build_dataset

    cfg = BuildConfig(raw=Path(a.raw), out=Path(a.out), split=a.split, ratios=tuple(a.ratios), seed=a.seed,
                      group_by=a.group_by, on_error=a.on_error, canvas=a.canvas, workers=a.workers,
                      max_shard_size=a.max_shard_size, license=a.license, overwrite=a.overwrite)
    print(build_dataset(cfg).summary())


def _info(a: argparse.Namespace) -> None:
    from .data.publish import dataset_summary

    print(dataset_summary(a.dataset))


def _push_dataset(a: argparse.Namespace) -> None:
    from .data.publish import push_dataset

    print(push_dataset(a.dataset, a.repo_id, private=a.private))


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
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _workers(p)
    p.set_defaults(run=_import_tseng)

    p = sub.add_parser("build-dataset", help="raw tree → manifest + Parquet + dataset card")
    p.add_argument("raw", help="tree with class folders 0..23 (or 1..22, X, Y), optional metadata.csv")
    p.add_argument("out", help="new dataset folder")
    p.add_argument("--split", choices=("auto", "grouped", "stratified"), default="auto",
                   help="auto: grouped when metadata.csv names groups, else stratified")
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
    p.set_defaults(run=_build_dataset)

    p = sub.add_parser("info", help="summary of a built dataset folder")
    p.add_argument("dataset")
    p.set_defaults(run=_info)

    p = sub.add_parser("push-dataset", help="upload a built dataset folder to the Hugging Face Hub")
    p.add_argument("dataset")
    p.add_argument("repo_id")
    p.add_argument("--private", action="store_true")
    p.set_defaults(run=_push_dataset)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ChromosomeNetError as e:
        print(f"chromosomenet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chromosomenet {args.verb}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
