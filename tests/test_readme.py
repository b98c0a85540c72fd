"""The numbers README.md quotes are the ones their sources give: the shipped models' cards, and a fresh
run of `make run`'s karyotyping on the embedded sample. A retrained model or a changed pipeline that
moves a number fails here until README says the new one, so README cannot go stale silently."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from chromosomenet.markdown import pct as pct_number
from chromosomenet.models import shipped
from chromosomenet.pipeline.cells import KaryotypeConfig, karyotype_split

README = (Path(__file__).parents[1] / "README.md").read_text()
CARD = (shipped.models_dir() / shipped.DEFAULT / "README.md").read_text()
DETECTOR_CARD = (shipped.models_dir() / shipped.DEFAULT_DETECTOR / "README.md").read_text()


def card_value(card: str, row: str) -> str:
    """The value cell of the card's table row that starts with ``row``."""
    m = re.search(r"^\| " + re.escape(row) + r"[^|]*\| ([^|]+?) \|", card, re.M)
    assert m, f"the card has no row {row!r}"
    return m.group(1)


def paragraph(start: str) -> str:
    """The README paragraph that begins with ``start`` (joined into one line)."""
    i = README.index(start)
    return " ".join(README[i:README.index("\n\n", i)].split())


def test_the_test_split_numbers_are_the_cards():
    text = paragraph("The shipped model on the test split of the full import")
    before_after = card_value(CARD, "instance accuracy before → after assignment").split(" (")[0]
    flagged, right = card_value(CARD, "flagged for review / accuracy of the unflagged").split(" / ")
    normal = card_value(CARD, "exact ISCN count match, normal cells")
    n_normal = re.search(r"exact ISCN count match, normal cells \((\d+)\)", CARD).group(1)
    cells, chromosomes = card_value(CARD, "cells / chromosomes").split(" / ")
    for quoted in (before_after, f"{flagged} of the chromosomes flagged", f"{right} of the rest right",
                   f"{normal} of {n_normal} normal cells", f"{cells} cells", f"{int(chromosomes):,} chromosomes",
                   card_value(CARD, "false aneuploidy calls per 100 normal cells") + " false aneuploidy calls",
                   card_value(CARD, "of them always, by quality") + " here"):
        assert quoted in text, (quoted, text)


def test_the_detector_numbers_are_its_cards():
    text = paragraph("**How well it works**")
    for row in ("AP50", "AP50:95", "recall at IoU 0.5", "precision at IoU 0.5"):
        value = card_value(DETECTOR_CARD, row)
        assert value in text, (row, value, text)


@pytest.fixture(scope="module")
def sample_run(sample_build, tmp_path_factory) -> dict:
    """What `make run` reports for the sample's cells: the shipped model and costs, every split."""
    spec = shipped.default_spec()
    return karyotype_split(KaryotypeConfig(run=spec, out=tmp_path_factory.mktemp("cells"), data=str(sample_build),
                                           split="all", costs=str(shipped.costs_beside(spec)), workers=0,
                                           progress=False))


def test_the_make_run_numbers_are_what_make_run_gives(sample_run):
    s = sample_run
    before, after = (f"{pct_number(s[k])} %" for k in ("instance_accuracy_before", "instance_accuracy_after"))
    normal = round(s["iscn_exact_normal"] * s["normal_cells"])
    numerical = round(s["iscn_exact_numerical"] * s["numerical_cells"])
    text = paragraph("The shipped model on the test split of the full import")
    for quoted in (f"{before} → {after}", f"{normal} / {s['normal_cells']} normal cells exact",
                   f"{numerical} / {s['numerical_cells']} numerically abnormal ones",
                   f"{100 * s['fraction_flagged']:.1f} % flagged"):
        assert quoted in text, (quoted, text)
    top = paragraph("Needs Python ≥ 3.10 and `make`.")
    assert f"({before}; {after} after cell-level assignment" in top, top
