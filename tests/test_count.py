"""The count stage (pipeline/count.py): the doubtful candidates settled with the cell's classes.

The choice is checked against a brute force over every subset of the doubtful candidates, on the
classifier's real probabilities of a sample cell; then what a lab needs of it: a second box on a counted
chromosome is left out, a missed chromosome's weak box is counted, a confident extra copy (a trisomy)
stays; and on the 22 sample metaphases (unseen cases) it counts right where the threshold alone does not.
"""
from __future__ import annotations

import csv
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import chromosomenet
from chromosomenet.labels import NUM_CLASSES
from chromosomenet.pipeline.assign import KaryotypeCosts, KaryotypeInputError, slot_offsets
from chromosomenet.pipeline.count import CountChoice, choose_count
from chromosomenet.pipeline.detect import read_metaphase
from chromosomenet.pipeline.metaphase import MetaphaseConfig, karyotype_metaphases, karyotype_one, load_pipeline

SAMPLE = chromosomenet.sample_metaphases_dir()
NORMAL_CELL, TRISOMY_18_CELL = "1032292", "1051261"  # 46,XX and 47,XX,+18 as annotated


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> tuple[np.ndarray, list[str]]:
    """The shipped classifier's probabilities of a normal sample cell read from its annotated boxes."""
    out = tmp_path_factory.mktemp("cell")
    pipe = load_pipeline(MetaphaseConfig(images=(), out=out, boxes=str(SAMPLE)))
    gray, name = read_metaphase(SAMPLE / f"{NORMAL_CELL}.jpg")
    r = karyotype_one(pipe, gray, name, out, str(SAMPLE))
    assert r.call.iscn == "46,XX"
    return r.probs, r.annotated


def brute_force(probs, scores, costs, choice) -> np.ndarray:
    """The same objective by enumerating every subset of the doubtful candidates (a plain reference)."""
    sure = scores >= choice.sure
    free = np.flatnonzero(~sure)
    weak = KaryotypeCosts(**{f: getattr(costs, f) * (choice.prior_weight if f.startswith(("extra", "missing", "no_x"))
                                                     else 1) for f in costs.__dataclass_fields__})
    nll = -np.log(np.maximum(probs, costs.prob_floor))
    slot_class = np.repeat(np.arange(NUM_CLASSES), costs.max_copies)
    logit = np.log(scores / (1 - scores))
    best, best_set = np.inf, None
    for k in range(len(free) + 1):
        for out in itertools.combinations(free, k):
            inside = np.setdiff1d(np.arange(len(scores)), out)
            prior = min(float(c[linear_sum_assignment(c)].sum()) + const for off, const in slot_offsets(weak)
                        for c in [nll[inside][:, slot_class] + off])
            total = prior + choice.weight * logit[list(out)].sum()
            if total < best - 1e-9:
                best, best_set = total, inside
    taken = np.zeros(len(scores), dtype=bool)
    taken[best_set] = True
    return taken


@pytest.mark.parametrize("seed", range(4))
def test_the_choice_is_the_brute_force_optimum(cell, seed):
    probs, _ = cell
    rng = np.random.default_rng(seed)
    # the cell's chromosomes, some made doubtful, plus copies of others (second boxes) and noise rows (debris)
    rows = np.vstack([probs, probs[rng.choice(len(probs), 2)], rng.dirichlet(np.ones(NUM_CLASSES), 2)])
    scores = np.full(len(rows), 0.95)
    scores[rng.choice(len(rows), 7, replace=False)] = rng.uniform(0.2, 0.79, 7)
    choice = CountChoice(prior_weight=rng.choice([0.3, 1.0]))
    ours = choose_count(rows, scores, choice=choice)
    assert (ours == brute_force(rows, scores, KaryotypeCosts(), choice)).all()
    assert ours[scores >= choice.sure].all()


def test_a_second_box_is_left_out_and_a_missed_chromosome_counted(cell):
    probs, names = cell
    sure = np.full(len(probs), 0.95)
    # a second box (score 0.6, above the detector's threshold) on chromosome 7: a third 7 is left out
    k = names.index("7")
    taken = choose_count(np.vstack([probs, probs[k]]), np.append(sure, 0.6))
    assert taken[:-1].all() and not taken[-1]
    # chromosome 7's own box scored 0.3 (below the threshold): the cell one 7 short counts it
    weak = sure.copy()
    weak[k] = 0.3
    assert choose_count(probs, weak).all()
    # a box of debris (the classifier unsure of every class) at 0.3 beside a whole cell is not counted
    debris = np.full((1, NUM_CLASSES), 1 / NUM_CLASSES)
    assert not choose_count(np.vstack([probs, debris]), np.append(sure, 0.3))[-1]
    # a third 18 the detector is sure of stays: the prior never overrules a sure box (a trisomy shows)
    third = names.index("18")
    assert choose_count(np.vstack([probs, probs[third]]), np.append(sure, 0.9)).all()


def test_bad_shapes_and_settings_are_refused():
    with pytest.raises(KaryotypeInputError, match="must be"):
        choose_count(np.full((3, NUM_CLASSES), 1 / NUM_CLASSES), np.ones(2))
    with pytest.raises(KaryotypeInputError, match="lo ≤ sure"):
        CountChoice(lo=0.9, sure=0.5)
    assert choose_count(np.zeros((0, NUM_CLASSES)), np.zeros(0)).shape == (0,)


def _exact(out: Path) -> tuple[int, dict]:
    rows = list(csv.DictReader(open(out / "cells.csv")))
    truth = {r["cell"]: len(ET.parse(SAMPLE / f"{r['cell']}.xml").getroot().findall("object")) for r in rows}
    return sum(int(r["n"]) == truth[r["cell"]] for r in rows), {r["cell"]: r for r in rows}


def test_the_sample_counts_right_with_the_cell_and_keeps_its_trisomy(tmp_path: Path):
    """Measured on the 22 sample metaphases: 14 exact counts with the count stage, 3 by the threshold alone."""
    for name, count in (("cell", True), ("threshold", False)):
        karyotype_metaphases(MetaphaseConfig(images=(str(SAMPLE),), out=tmp_path / name, count=count))
    (with_cell, rows), (alone, _) = _exact(tmp_path / "cell"), _exact(tmp_path / "threshold")
    assert with_cell >= 11 and with_cell >= alone + 6, (with_cell, alone)
    assert rows[TRISOMY_18_CELL]["predicted_iscn"] == "47,XX,+18"
