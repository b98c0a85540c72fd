"""Copy a finished run into the shipped models folder: `python tools/ship_model.py RUN CELLS DST [EVAL]`.

RUN: a `chromosomenet train` run folder; CELLS: the `chromosomenet karyotype --data ... --split test`
output for it (costs tuned on validation cells, scored on unseen test cells); DST: models/<name>/;
EVAL (optional): `chromosomenet evaluate` of the model as exported on the same test split, whose
metrics and confusion matrix then go into the card instead of the run's own test pass (for a run
scored before its exported form changed, e.g. before view models averaged both turns of the view).
Copies the model repo files (not the checkpoint; weights as float16 where float32 would pass the
project's 30 MB limit), the tuned costs as karyotype_costs.json, the training dataset's cases by split
as split_cases.csv (tools/split_cases.py), and adds the cell-level results to the model card.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from chromosomenet.training.calibrate import write_card_section
from chromosomenet.models.hub import write_card
from split_cases import write as write_split_cases

FILES = ("config.json", "model.safetensors", "README.md", "train_report.json", "log.csv", "confusion.png")
LIMIT_MB = 30


def compact_weights(src: Path, dst: Path) -> float:
    """Copy the weights, stored as float16 when float32 would exceed the limit; returns MB written.

    Loading converts them back (``load_state_dict`` copies into the float32 parameters), so the
    model still computes in float32; float16 keeps 11 significant bits, enough for these weights
    (the shipped model's test predictions are checked against the float32 ones in bench/RESULTS.md).
    """
    weights = load_file(str(src))
    if src.stat().st_size / 1e6 > LIMIT_MB:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(dst), metadata={"format": "pt"})
    size = dst.stat().st_size / 1e6
    if size > LIMIT_MB:
        sys.exit(f"{src} is {size:.1f} MB even as float16, over the {LIMIT_MB} MB a shipped model may take")
    return size


def main(run: Path, cells: Path, dst: Path, evaluated: Path | None = None) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in FILES:
        if name != "model.safetensors":
            shutil.copyfile(run / name, tmp / name)
    size = compact_weights(run / "model.safetensors", tmp / "model.safetensors")
    config = json.loads((tmp / "config.json").read_text())
    config["dtype"] = "float32"  # transformers would otherwise load float16-stored weights as a float16 model
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copyfile(cells / "costs.json", tmp / "karyotype_costs.json")
    if (run / "calibration.json").is_file():  # the temperature the costs were tuned with
        shutil.copyfile(run / "calibration.json", tmp / "calibration.json")
    report = json.loads((run / "train_report.json").read_text())
    metrics = report["test_metrics"]
    if evaluated is not None:
        metrics = json.loads((evaluated / "metrics.json").read_text())["metrics"]
        shutil.copyfile(evaluated / "confusion.png", tmp / "confusion.png")
    facts = report["facts"]
    write_card(tmp, facts, metrics)  # with this checkout's card text
    write_split_cases(Path(facts["dataset_id"]) / "manifest.csv", tmp / "split_cases.csv", facts["manifest_sha256"])
    summary = json.loads((cells / "summary.json").read_text())
    table = (cells / "README.md").read_text().split("\n\n", 1)[1].split("\n\n")[0]
    card = (tmp / "README.md").read_text()
    section = (f"\n## Cell level (test split: cells of cases unseen in training)\n\n{table}\n\n"
               f"Constrained assignment of each cell's {summary['chromosomes'] // max(summary['cells'], 1)}-odd "
               "chromosomes to 22 autosome pairs + XX/XY, gains and losses allowed at a price (`chromosomenet "
               f"karyotype`); costs and review threshold tuned on the validation cells only: `karyotype_costs.json` "
               "(the Space and `make run` use it). ISCN strings here are numerical findings only. The cases of "
               "each split: `split_cases.csv` (score the model on its own unseen cases from any later import "
               "with `tools/common_test_cases.py` in the chromosomenet repository).\n")
    marker = "\n## Usage"
    (tmp / "README.md").write_text(card.replace(marker, section + marker, 1) if marker in card else card + section)
    if (tmp / "calibration.json").is_file():
        write_card_section(tmp / "README.md", json.loads((tmp / "calibration.json").read_text()))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    print(f"{dst}: {size:.1f} MB of weights; card, costs and run facts copied")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__.splitlines()[0])
    main(*map(Path, sys.argv[1:]))
