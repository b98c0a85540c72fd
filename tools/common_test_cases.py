"""A raw tree for comparing two models trained on different grouped splits, on cases neither saw:
`python tools/common_test_cases.py RAW DST MANIFEST_A MANIFEST_B`.

Each MANIFEST is a built dataset's manifest.csv (file, label, group, split, …) or a shipped model's
split_cases.csv (group, split): the split a model was trained on. The same file twice gives that one
model's split on RAW (its own unseen cases as the test split, whatever import RAW came from). DST
holds RAW's images (symlinks) with metadata.csv's `split` rewritten: `test` for the cases in both
test splits, `validation` for those in both validation splits, `train` for the
rest. `build-dataset DST OUT --split from-metadata` then gives one test split both models can be
scored on (`chromosomenet evaluate`, `karyotype --costs` with each model's own tuned costs).
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from subset import link_rows, read_rows  # noqa: E402


def split_cases(manifest: Path) -> dict[str, set[str]]:
    """split name → the cases (groups) a built dataset put there."""
    cases: dict[str, set[str]] = defaultdict(set)
    with open(manifest, newline="") as f:
        for r in csv.DictReader(f):
            cases[r["split"]].add(r["group"])
    return cases


def main(raw: Path, dst: Path, a: Path, b: Path) -> None:
    sa, sb = split_cases(a), split_cases(b)
    both = {s: sa[s] & sb[s] for s in ("test", "validation")}
    for s, name in ((sa, a), (sb, b)):
        seen = s["train"] & (sa["test"] | sb["test"])
        print(f"{name}: {len(s['test'])} test cases, {len(seen)} of either's test cases in its training")
    rows = read_rows(raw)
    for r in rows:
        r["split"] = next((s for s in ("test", "validation") if r["case_id"] in both[s]), "train")
    link_rows(raw, rows, dst)
    n = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    print(f"{dst}: {len(both['test'])} cases in both test splits ({n['test']} instances), "
          f"{len(both['validation'])} in both validation splits ({n['validation']}), train {n['train']}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: " + __doc__.splitlines()[1].strip("`.").rstrip("`"))
    main(*(Path(p) for p in sys.argv[1:5]))
