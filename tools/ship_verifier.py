"""Put a trained verifier beside its detector: `python tools/ship_verifier.py RUN DETECTOR`.

RUN: a `chromosomenet train-verifier` run folder; DETECTOR: the detector folder it was trained on
(models/chromosomenet-detector-resnet10t-half). Copies verifier.safetensors + verifier.json (what
`load_detector` reads), the run's report as verifier_report.json and its log as verifier_log.csv, and
rewrites the detector's card with the verifier's section.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from chromosomenet.models.hub import write_detector_card


def main(run: Path, detector: Path) -> None:
    for name in ("verifier.safetensors", "verifier.json"):
        shutil.copy(run / name, detector / name)
    shutil.copy(run / "verifier_report.json", detector / "verifier_report.json")
    shutil.copy(run / "log.csv", detector / "verifier_log.csv")
    report = json.loads((detector / "train_report.json").read_text())
    write_detector_card(detector, report, json.loads((run / "verifier_report.json").read_text()))
    print(f"{detector}: verifier from {run}, card rewritten")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
