"""A raw tree without the cases of the embedded sample: `python tools/without_sample_cases.py RAW DST [CELLS]`
(CELLS: another file of image stems whose cases are left out).

The shipped model trains on it, so `make run` (which scores the embedded sample) only shows it cases
it never saw. DST holds symlinks to RAW's images and a filtered metadata.csv (+ ATTRIBUTION.md).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from subset import link_rows, read_rows  # noqa: E402


def main(raw: Path, dst: Path, cells: Path = ROOT / "tools" / "sample_cells.txt") -> None:
    stems = {s.strip() for s in cells.read_text().split() if s.strip()}
    rows = read_rows(raw)
    cases = {r["case_id"] for r in rows if r["cell_id"] in stems}
    keep = [r for r in rows if r["case_id"] not in cases]
    link_rows(raw, keep, dst)
    if (raw / "ATTRIBUTION.md").exists():
        shutil.copyfile(raw / "ATTRIBUTION.md", dst / "ATTRIBUTION.md")
    print(f"{dst}: {len(keep)} of {len(rows)} instances; left out the {len(cases)} cases of the embedded sample")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *map(Path, sys.argv[3:4]))
