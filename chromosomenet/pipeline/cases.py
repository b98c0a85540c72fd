"""The case stage: the metaphases of one patient → the karyotype a laboratory reports for that patient.

A cytogeneticist counts several metaphases of a case and karyotypes a few; one cell that lost or gained
a chromosome in the preparation says nothing about the patient, two (a gain) or three (a loss) cells
with the same deviation are a clone: mosaicism (ISCN 2020's definition of a clone). So:

* the case's karyotype is the one most of its final cells (count not in doubt, a karyotype a cell can
  have) show; cells whose count is in doubt only count where no final cell exists, and then only
  when at least two and half of them agree (else no call);
* a deviating karyotype shared by enough final cells to be a clone makes the call a mosaic,
  ``mos 47,XX,+21[2]/46,XX[3]`` (cells in square brackets, the abnormal line first);
* ``review`` is true when fewer than two final cells agree, when a clone is seen, or when the case
  is abnormal: a person then looks at the cells named in ``message``.

    rows = case_rows({"case A": [cell rows of cells.csv], …})   # one dict per case, CASE_COLUMNS
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..data.images import IMAGE_SUFFIXES

CASE_COLUMNS = ("case", "metaphases", "final", "counts", "predicted_iscn", "mosaicism", "review", "message")
NORMAL = ("46,XX", "46,XY")


def case_folders(paths) -> dict[str, Path] | None:
    """{case: folder} when ``paths`` is one folder holding folders of images (one per case) and no
    images of its own; None otherwise (a folder of images: each image its own case, as ever)."""
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return None
    root = Path(paths[0])
    if any(f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES for f in root.iterdir()):
        return None
    cases = {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
             and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())}
    return cases or None


def _total(iscn: str) -> int:
    return int(iscn.split(",", 1)[0])


def is_clone(iscn: str, cells: int, normal_total: int = 46) -> bool:
    """ISCN's clone: two cells with the same gain, three with the same loss."""
    return cells >= (3 if _total(iscn) < normal_total else 2)


def case_row(case: str, cells: list[dict]) -> dict:
    """One case's row from its cells' rows (cells.csv's: cell, n, predicted_iscn, plausible, count_review)."""
    def true(v) -> bool:
        return v is True or str(v).lower() == "true"

    called = [c for c in cells if c["predicted_iscn"] and true(c["plausible"])]
    final = [c for c in called if not true(c["count_review"])]
    basis = final or called
    counts = Counter(int(c["n"]) for c in cells)
    row = {"case": case, "metaphases": len(cells), "final": len(final),
           "counts": "; ".join(f"{n}×{k}" for n, k in sorted(counts.items())), "predicted_iscn": "",
           "mosaicism": "", "review": True, "message": ""}
    if not basis:
        row["message"] = "no metaphase gave a karyotype: look at the cells"
        return row
    seen = Counter(c["predicted_iscn"] for c in basis)
    (main, support), *rest = seen.most_common()
    if not final and (support < 2 or 2 * support < len(basis) or (rest and rest[0][1] == support)):
        row["message"] = ("no metaphase has a final count and the cells disagree (" + "; ".join(
            f"{k}×{n}" for k, n in seen.most_common()) + "): look at the cells")
        return row
    clones = [(k, n) for k, n in seen.most_common() if k != main and final and is_clone(k, n)]
    lines = sorted([(main, support)] + clones, key=lambda kv: kv[0] in NORMAL)  # the abnormal line first
    row["predicted_iscn"] = main if not clones else "mos " + "/".join(f"{k}[{n}]" for k, n in lines)
    notes = []
    if clones:
        row["mosaicism"] = "; ".join(f"{n} cells {k}" for k, n in clones)
        notes.append(f"{row['mosaicism']}: a second cell line (mosaicism) or a preparation artefact")
    odd = [c["cell"] for c in basis if c["predicted_iscn"] != main and not any(c["predicted_iscn"] == k for k, _ in clones)]
    if odd:
        notes.append(f"single cells off the main line: {', '.join(odd)}")
    if len(final) < 2 or seen[main] < 2:
        notes.append(f"only {len(final)} metaphase(s) with a final count: karyotype more cells")
    if main not in NORMAL:
        notes.append(f"abnormal: confirm {main} in the cells")
    row["review"] = bool(clones) or len(final) < 2 or seen[main] < 2 or main not in NORMAL
    row["message"] = "; ".join(notes)
    return row


def case_rows(cells_by_case: dict[str, list[dict]]) -> list[dict]:
    return [case_row(case, cells) for case, cells in cells_by_case.items()]
