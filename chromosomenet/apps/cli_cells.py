"""The karyotyping verbs: ``karyotype``, ``demo`` (the main job), ``serve`` (the Space)
(argument parsing only)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import BadInputError, ChromosomeNetError, NoCallError
from .cli_args import add_batch_flags, add_cell_scale_flag, batch_mode


def _karyotype(a: argparse.Namespace) -> None:
    from ..models.shipped import default_spec
    from ..pipeline.cells import KaryotypeConfig, karyotype_images, karyotype_split

    if a.metaphase:
        from ..pipeline.metaphase import MetaphaseConfig, karyotype_metaphases

        report = karyotype_metaphases(MetaphaseConfig(
            images=tuple(a.metaphase), out=Path(a.out), classifier=a.run, detector=a.detector, boxes=a.boxes,
            costs=a.costs, verify=a.verify, cell_scale=not a.no_cell_scale, count=not a.no_count, mode=batch_mode(a)),
            echo=_metaphase_line, progress=True)
        cases = Path(a.out) / "cases.csv"
        if "case" in report.table.columns and cases.is_file():
            import csv

            with open(cases, newline="") as f:
                for c in csv.DictReader(f):
                    print(f"case {c['case']}: {c['predicted_iscn'] or 'no karyotype called'} from {c['final']} of "
                          f"{c['metaphases']} metaphases with a final count" + (f"; {c['message']}" if c["message"] else ""))
        where = ("cases.csv, cells.csv and per case <case>/karyograms/, metaphases/, calls/, boxes/"
                 if cases.is_file() else "cells.csv, karyograms/, metaphases/, calls/, boxes/")
        print(report.complete("karyotyped", failed=lambda r: not r["predicted_iscn"]) + f"; wrote {a.out}/{where}")
        return
    if a.boxes or a.detector:
        raise BadInputError("--boxes/--detector", "go with --metaphase", "pass the metaphase images with --metaphase")
    if a.resume:
        raise BadInputError("--resume", "goes with --metaphase (a batch of images)", "pass --overwrite to redo --out")
    done = Path(a.out) / ("README.md" if a.data else "karyogram.png")
    if done.exists() and not a.overwrite:
        raise BadInputError(a.out, f"already holds a karyotype ({done.name})", "choose a new --out or pass --overwrite")
    a.run = a.run or default_spec()
    cfg = KaryotypeConfig(run=a.run, out=Path(a.out), data=a.data, split=a.split, images=tuple(a.images or ()),
                          one_cell=a.one_cell, costs=a.costs, keep_costs=a.keep_costs, target_accuracy=a.target_accuracy,
                          workers=a.workers,
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
        if not call.iscn:
            raise NoCallError(f"{a.out}: no karyotype called ({call.message or 'a count no cell has'}); the karyogram "
                              "and calls were written: look at the cell")


def _metaphase_line(r: dict) -> str:
    return (f"{r['case'] + '/' if r.get('case') else ''}{r['cell']}: {r['predicted_iscn'] or 'no karyotype called'} "
            f"({r['n']} chromosomes from the {r['boxes_from']}, {r['flagged']} flagged)"
            + (f"; {r['message']}" if r["message"] else "") + (f"; {r['notes']}" if r["notes"] else ""))


def _demo(a: argparse.Namespace) -> None:
    from ..models.shipped import default_spec
    from .demo import DemoConfig, run_demo

    model = a.model or default_spec()
    readme = run_demo(DemoConfig(model=model, data=a.data, out=Path(a.out), split=a.split, costs=a.costs,
                                 metaphases=a.metaphases, detector=a.detector, cases=a.cases))
    print(f"report: {readme}")


def _serve(a: argparse.Namespace) -> None:
    import importlib.util

    missing = [m for m in ("gradio", "pandas") if importlib.util.find_spec(m) is None]
    if missing:
        raise ChromosomeNetError(f"the Space needs {' and '.join(missing)}, not installed here: "
                                 "pip install 'chromosomenet[space]' (or, in a checkout, make setup)")
    from .serve import launch

    launch(a.model, host=a.host, port=a.port, detector=a.detector)


def add_cell_parsers(sub) -> None:
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
    p.add_argument("--verify", action="store_true", help="with --metaphase: let the verifier beside the detector choose "
                                                         "the chromosomes among its candidates (opt-in, bench/RESULTS.md)")
    p.add_argument("--no-count", action="store_true", help="with --metaphase: count by the detector's threshold alone, "
                   "not by the count stage (which settles its doubtful boxes with the cell's classes)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True)
    p.add_argument("--one-cell", action="store_true", help="treat all --images as one cell, whatever their names")
    p.add_argument("--costs", help="costs.json of a --data run (costs, review threshold): with --data, used, "
                   "not tuned; with --images, default: the model's own")
    p.add_argument("--keep-costs", metavar="COSTS_JSON", help="with --data: keep these costs, tune only the review "
                                                           "threshold (e.g. after `calibrate`)")
    p.add_argument("--target-accuracy", type=float, default=0.999, help="of the unflagged, when tuning the threshold")
    p.add_argument("--bound-level", type=float, default=0.95,
                   help="the target must hold for this one-sided Clopper–Pearson bound on validation (0: point estimate)")
    p.add_argument("--always-review", help="quality flags whose chromosomes are flagged whatever their confidence, "
                                           "comma-separated ('' for none; default: merged,low_fill,empty)")
    p.add_argument("--workers", type=int, default=2)
    add_cell_scale_flag(p)
    add_batch_flags(p, "cells.csv")
    p.set_defaults(func=_karyotype)

    p = sub.add_parser("demo", help="the main job: evaluate + karyotype every cell with a trained model, one report")
    p.add_argument("--model", help="local-dir:PATH or hf-hub:ORG/NAME (default: the shipped default classifier)")
    p.add_argument("--data", required=True, help="a built dataset with cell ids")
    p.add_argument("--split", default="all", help="a split name, or all (default: every split)")
    p.add_argument("--costs", help="karyotype costs.json (default: the one beside the model)")
    p.add_argument("--metaphases", help="a folder of metaphase images and their <stem>.xml VOC boxes: also karyotype "
                                        "them from the bare images, beside the annotated boxes")
    p.add_argument("--detector", help="with --metaphases: local-dir:PATH or hf-hub:ORG/NAME (default: the shipped one)")
    p.add_argument("--cases", help="a folder of case folders of metaphase images: karyotype each case from its bare "
                                   "images (cells.csv, cases.csv) into the report")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_demo)

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
