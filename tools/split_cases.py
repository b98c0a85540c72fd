"""The cases of a built dataset by split, shipped beside a model: `python tools/split_cases.py MANIFEST OUT.csv`.

MANIFEST: a built dataset's manifest.csv (file, label, group, split, …). OUT: one row per case
(`group,split`), sorted. A grouped split is stratified over every instance, so a later import that
changes a few crops can move cases between splits; this file keeps the cases a model was trained and
tested on, whatever the import. To score a shipped model on its own held-out cases from a fresh
import: `python tools/common_test_cases.py RAW DST models/M/split_cases.csv models/M/split_cases.csv`,
then `chromosomenet build-dataset DST OUT --split from-metadata` (cases the file does not hold go to
train: the model never saw them, but nor were they in its test split).
"""
from __future__ import annotations

import csv
import hashlib
import sys
from collections import Counter
from pathlib import Path


def write(manifest: Path, out: Path, sha256: str | None = None) -> Counter:
    """Write OUT from MANIFEST (checked against ``sha256`` when given); returns cases per split."""
    if not manifest.is_file():
        sys.exit(f"{manifest}: missing; split_cases.csv needs the local build the run was trained on")
    if sha256 and hashlib.sha256(manifest.read_bytes()).hexdigest() != sha256:
        sys.exit(f"{manifest}: not the manifest the run was trained on (sha256 {sha256[:8]}…); "
                 "rebuild that dataset (same import code, same command) before shipping")
    cases: dict[str, str] = {}
    with manifest.open(newline="") as f:
        for r in csv.DictReader(f):
            if cases.setdefault(r["group"], r["split"]) != r["split"]:
                sys.exit(f"{manifest}: case {r['group']} lies in {cases[r['group']]} and {r['split']}: "
                         "not a grouped split")
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("group", "split"))
        w.writerows(sorted(cases.items()))
    return Counter(cases.values())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[0])
    print(dict(write(Path(sys.argv[1]), Path(sys.argv[2]))))
