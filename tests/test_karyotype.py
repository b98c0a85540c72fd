"""Cell-level karyotyping: exact assignment (vs brute force), ISCN strings, flags, tuning, karyogram."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.special import expit

import chromosomenet
from chromosomenet.labels import NAMES, id_of
from chromosomenet.pipeline.assign import (CellCall, KaryotypeCosts, KaryotypeInputError, assign, flag, iscn,
                                           pick_threshold, risk_coverage, tune_costs, write_call)
from chromosomenet.pipeline.render import KaryogramError, render_karyogram

X, Y = id_of("X"), id_of("Y")
NORMAL_AUTOSOMES = [c for c in range(22) for _ in range(2)]


def _onehot(labels: list[int], p: float = 0.97) -> np.ndarray:
    """Confident rows: p on the label, the rest spread evenly."""
    probs = np.full((len(labels), 24), (1 - p) / 23)
    probs[np.arange(len(labels)), labels] = p
    return probs


def _row(**mass: float) -> np.ndarray:
    """One probability row from {chromosome name: p}, the remainder spread over the other classes."""
    ids = {id_of(k.lstrip("c")): v for k, v in mass.items()}
    row = np.full(24, (1 - sum(ids.values())) / (24 - len(ids)))
    row[list(ids)] = list(ids.values())
    return row


def _counts(sex: str, **delta: int) -> np.ndarray:
    """Counts of a cell: 2 of each autosome changed by delta (c21=+1), sex complement as written."""
    c = np.full(24, 2)
    for k, d in delta.items():
        c[id_of(k.lstrip("c"))] += d
    c[X], c[Y] = sex.count("X"), sex.count("Y")
    return c


# --- assignment ------------------------------------------------------------------------------------


def test_pair_rule_fixes_argmax():
    # Three rows most likely '1'; one of them has a decent '2' probability, and '2' has only one copy.
    probs = _onehot(NORMAL_AUTOSOMES + [X, Y])
    ambiguous = 2  # the first row of class '2'
    probs[ambiguous] = _row(c1=0.55, c2=0.40)
    assert np.bincount(probs.argmax(1), minlength=24)[:2].tolist() == [3, 1]
    call = assign(probs)
    assert call.labels[ambiguous] == id_of("2") and call.counts[:2] == (2, 2)
    assert call.iscn == "46,XY" and call.sex == "XY" and call.plausible and call.message == ""
    # Confident after assignment (the alternative swaps it with a clear '1'), yet below a bystander.
    assert 0.5 < call.confidence[ambiguous] < call.confidence[10]


@pytest.mark.parametrize("extra,sex,want", [("21", "XY", "47,XY,+21"), ("18", "XX", "47,XX,+18"),
                                            ("13", "XY", "47,XY,+13"), ("8", "XX", "47,XX,+8")])
def test_trisomy_is_called_not_forced_away(extra, sex, want):
    labels = NORMAL_AUTOSOMES + [id_of(extra)] + [X, X if sex == "XX" else Y]
    call = assign(_onehot(labels))
    assert len(labels) == 47 and call.iscn == want and call.plausible
    assert "abnormal count" in call.message and call.labels == tuple(labels)


def test_trisomy_21_survives_a_22_lookalike():
    labels = NORMAL_AUTOSOMES + [id_of("21"), X, Y]
    probs = _onehot(labels)
    probs[-3] = _row(c21=0.7, c22=0.25)
    assert assign(probs).iscn == "47,XY,+21"


@pytest.mark.parametrize("sex,want", [("XX", "46,XX"), ("XY", "46,XY"), ("X", "45,X"), ("XXY", "47,XXY"),
                                      ("XYY", "47,XYY"), ("XXX", "47,XXX")])
def test_sex_complements(sex, want):
    call = assign(_onehot(NORMAL_AUTOSOMES + [X if s == "X" else Y for s in sex]))
    assert call.iscn == want and call.sex == sex


def test_a_lone_sex_chromosome_read_as_y_is_called_x():
    # 45,X where the X looks a bit more like a Y: without the no-X charge this reads 45,Y (not viable).
    probs = _onehot(NORMAL_AUTOSOMES + [X])
    probs[-1] = _row(Y=0.6, X=0.4)
    assert assign(probs).iscn == "45,X"
    assert assign(probs, KaryotypeCosts(no_x=0.0)).iscn == "45,Y"
    assert assign(_onehot(NORMAL_AUTOSOMES + [Y], p=1 - 1e-10)).iscn == "45,Y"  # overwhelming evidence wins


def test_xx_or_xy_decided_by_the_whole_cell():
    # One 7 looks slightly more like an X: argmax reads 46,XXY,-7; assignment restores 46,XY.
    labels = NORMAL_AUTOSOMES + [X, Y]
    probs = _onehot(labels)
    probs[12] = _row(X=0.5, c7=0.45)
    assert probs[12].argmax() == X
    call = assign(probs)
    assert call.iscn == "46,XY" and call.labels == tuple(labels)


def _brute_force(probs: np.ndarray, costs: KaryotypeCosts) -> tuple[np.ndarray, np.ndarray]:
    """Objective of every labelling of a tiny cell, written from the docstring, not the slot trick."""
    n = len(probs)
    labellings = np.indices((24,) * n).reshape(n, -1).T
    nll = -np.log(np.maximum(probs, costs.prob_floor))
    data = nll[np.arange(n), labellings].sum(1)
    counts = np.zeros((len(labellings), 24), dtype=np.int64)
    for j in range(n):
        np.add.at(counts, (np.arange(len(labellings)), labellings[:, j]), 1)
    extra = np.full(24, costs.extra_autosome)
    extra[[12, 17, 20]] = costs.extra_viable_trisomy
    extra[[X, Y]] = costs.extra_sex
    loss = np.full(24, costs.missing_autosome)
    loss[[X, Y]] = costs.missing_sex
    prior = np.full(len(labellings), np.inf)
    for n_x, n_y in ((2, 0), (1, 1)):
        normal = np.full(24, 2)
        normal[X], normal[Y] = n_x, n_y
        table = np.zeros((24, n + 1))
        for c in range(24):
            for m in range(n + 1):
                if m <= normal[c]:
                    table[c, m] = (normal[c] - m) * loss[c]
                elif m > costs.max_copies:
                    table[c, m] = np.inf
                else:
                    table[c, m] = sum(extra[c] + costs.extra_step * j for j in range(m - normal[c]))
        prior = np.minimum(prior, table[np.arange(24), counts].sum(1))
    return labellings, data + prior + costs.no_x * (counts[:, X] == 0)


@pytest.mark.parametrize("seed", range(8))
def test_exact_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 3 if seed < 5 else 4
    costs = KaryotypeCosts(**{k: float(v) for k, v in zip(
        ("extra_autosome", "extra_viable_trisomy", "extra_sex", "extra_step", "missing_autosome", "missing_sex",
         "no_x"), rng.uniform(0, 3, 7))}, max_copies=2 + seed % 2, min_plausible=0, max_plausible=10)
    hot = [0, 20, X, Y]  # mass on few classes, so collisions, caps and the sex choice all bite
    probs = rng.dirichlet(np.full(24, 0.05), n)
    probs[:, hot] += rng.dirichlet(np.ones(4), n) * 3
    probs /= probs.sum(1, keepdims=True)
    labellings, objective = _brute_force(probs, costs)
    call = assign(probs, costs)
    assert call.total_cost == pytest.approx(objective.min(), abs=1e-9)
    mine = np.flatnonzero((labellings == call.labels).all(1))[0]
    assert objective[mine] == pytest.approx(objective.min(), abs=1e-9)
    for i, c in enumerate(call.labels):  # confidences: margin to the best labelling that changes row i
        alternative = objective[labellings[:, i] != c].min()
        assert call.confidence[i] == pytest.approx(expit(alternative - objective.min()), abs=1e-9)


def test_cap_on_copies_is_respected():
    probs = _onehot([0] * 40)
    call = assign(probs, KaryotypeCosts(max_copies=3, max_plausible=60))
    assert max(call.counts) <= 3 and len(call.labels) == 40


@pytest.mark.parametrize("n", [0, 1, 200])
def test_implausible_counts_still_answer(n):
    rng = np.random.default_rng(n)
    probs = rng.dirichlet(np.ones(24), n) if n else np.zeros((0, 24))
    call = assign(probs)
    assert not call.plausible and "implausible" in call.message and str(n) in call.message
    assert call.iscn == "" and len(call.labels) == len(call.confidence) == len(call.flags) == n
    assert list(call.labels) == probs.argmax(1).tolist() and sum(call.counts) == n


@pytest.mark.parametrize("probs,words", [
    (np.full((46, 23), 1 / 23), "shape"),
    (np.where(np.eye(46, 24) > 0, np.nan, 0.0), "NaN"),
    (np.full((46, 24), 0.5), "sums to"),
])
def test_bad_probabilities_are_one_clear_sentence(probs, words):
    with pytest.raises(KaryotypeInputError, match=words) as err:
        assign(probs)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_bad_costs():
    with pytest.raises(KaryotypeInputError, match="max_copies"):
        KaryotypeCosts(max_copies=1)
    with pytest.raises(KaryotypeInputError, match="extra_sex"):
        KaryotypeCosts(extra_sex=-1.0)


# --- ISCN ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("counts,want", [
    (_counts("XX"), "46,XX"), (_counts("XY"), "46,XY"), (_counts("XX", c21=1), "47,XX,+21"),
    (_counts("XY", c18=1), "47,XY,+18"), (_counts("X"), "45,X"), (_counts("XXY"), "47,XXY"),
    (_counts("XYY"), "47,XYY"), (_counts("XX", c15=-1), "45,XX,-15"), (_counts("XY", c13=1, c21=1), "48,XY,+13,+21"),
    (_counts("XX", c21=2), "48,XX,+21,+21"), (_counts("XY", c8=1, c3=-1), "46,XY,-3,+8"), (_counts(""), "44,?"),
])
def test_iscn(counts, want):
    assert iscn(counts) == want


def test_iscn_rejects_bad_counts():
    with pytest.raises(KaryotypeInputError, match="24 non-negative integers"):
        iscn([2] * 23)


# --- flags -----------------------------------------------------------------------------------------

CONF = np.array([0.9, 0.2, 0.8, 0.95, 0.6, 0.7, 0.5, 0.99, 0.85, 0.6])
OK = np.array([1, 0, 1, 1, 1, 1, 0, 1, 1, 1], dtype=bool)


def test_risk_coverage_by_hand():
    curve = risk_coverage(OK, CONF)
    assert curve["n"] == 10
    assert curve["threshold"][:4] == [0.2, 0.5, 0.6, 0.7]
    assert curve["fraction_flagged"][:4] == [0.0, 0.1, 0.2, 0.4]  # the two 0.6s go together
    assert curve["accuracy"][:3] == pytest.approx([0.8, 8 / 9, 1.0])
    assert curve["fraction_flagged"][-1] == 1.0 and curve["accuracy"][-1] == 1.0
    assert curve["threshold"][-1] > 0.99


def test_pick_threshold_and_flag():
    assert pick_threshold(OK, CONF, 0.999) == 0.6
    assert pick_threshold(OK, CONF, 0.85) == 0.5
    assert pick_threshold(OK, CONF, 0.5) == 0.2  # nothing flagged
    fallback = pick_threshold(np.zeros(10, bool), CONF)  # unreachable: flag everything
    assert (CONF < fallback).all()
    call = CellCall(labels=(0,) * 10, confidence=tuple(CONF), counts=(10,) + (0,) * 23, sex="", iscn="",
                    plausible=False, message="", total_cost=0.0)
    assert flag(call, 0.6).flags == tuple(CONF < 0.6) and sum(flag(call, 0.6).flags) == 2
    forced = np.zeros(10, bool)
    forced[[1, 7]] = True  # one already below the threshold, one the surest call
    assert flag(call, 0.6, forced).flags == tuple((CONF < 0.6) | forced)
    with pytest.raises(KaryotypeInputError, match="forced-review"):
        flag(call, 0.6, forced[:3])


def test_forced_review_by_quality_flags():
    from chromosomenet.pipeline.review import forced_review, unflagged

    q = ["ok", "separated", "merged", "separated;overlap", "overlap;merged", "low_fill", "merged;low_fill", "empty"]
    assert forced_review(q).tolist() == [False, False, True, False, True, True, True, True]
    assert forced_review(q, ("overlap",)).tolist() == [False, False, False, True, True, False, False, False]
    assert not forced_review(q, ()).any() and not forced_review(["merge"]).any()  # whole flags only
    # what is forced is out of the unflagged set: its errors do not count against the rest
    ok, conf = np.array([1, 1, 0, 1], bool), np.array([0.9, 0.8, 0.99, 0.3])
    assert unflagged(ok, conf, 0.5)["errors"] == 1
    u = unflagged(ok, conf, 0.5, forced=np.array([0, 0, 1, 0], bool))
    assert (u["n"], u["errors"], u["accuracy"]) == (2, 0, 1.0)


# --- tuning ----------------------------------------------------------------------------------------


def test_tune_costs_keeps_real_trisomies():
    # The third 21 also looks a little like a 3: a prohibitive trisomy cost would relabel it.
    labels = NORMAL_AUTOSOMES + [id_of("21"), X, Y]
    trisomic = _onehot(labels)
    trisomic[-3] = _row(c21=0.5, c3=0.3)
    cells = [(trisomic, np.array(labels)), (_onehot(NORMAL_AUTOSOMES + [X, X]), np.array(NORMAL_AUTOSOMES + [X, X]))]
    grid = {"extra_viable_trisomy": [30.0, 2.0], "missing_autosome": [8.0]}
    best = tune_costs(cells, grid)
    assert best.extra_viable_trisomy == 2.0 and best == tune_costs(cells, grid)
    assert assign(trisomic, best).iscn == "47,XY,+21"
    with pytest.raises(KaryotypeInputError, match="unknown"):
        tune_costs(cells, {"extra_everything": [1.0]})


# --- karyogram and tables --------------------------------------------------------------------------


def _sample_cell(cell_id: str) -> tuple[list[Image.Image], np.ndarray, list[str]]:
    src = chromosomenet.sample_dir()
    with open(src / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["cell_id"] == cell_id]
    return ([Image.open(src / r["file"]) for r in rows], np.array([int(r["label"]) for r in rows]),
            [Path(r["file"]).stem for r in rows])


def _bands(mask: np.ndarray, min_height: int) -> list[tuple[int, int]]:
    """Runs of image rows that contain any ink, at least ``min_height`` tall."""
    ink = mask.any(1)
    edges = np.flatnonzero(np.diff(np.r_[0, ink.astype(int), 0]))
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_height]


def test_karyogram_of_a_real_trisomy_18(tmp_path):
    images, truth, ids = _sample_cell("1051261")
    probs = np.full((len(truth), 24), 0.1 / 23)
    probs[np.arange(len(truth)), truth] = 0.9
    call = flag(assign(probs), 0.9)
    call = CellCall(**{**call.__dict__, "flags": (True,) + call.flags[1:]})  # one boxed chromosome
    sex = "XX" if np.sum(truth == X) == 2 else "XY"
    assert call.iscn == f"47,{sex},+18" and call.labels == tuple(truth)
    out = render_karyogram(images, call, tmp_path / "k.png", title="cell 1051261")
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert rgb.shape[0] > 600 and rgb.shape[1] > 900
    assert len(_bands((rgb < 200).any(2), min_height=50)) == 4  # four rows of chromosomes; title is shorter
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    assert red.sum() > 100
    assert render_karyogram(images, call, tmp_path / "k2.png", title="cell 1051261").read_bytes() == out.read_bytes()
    with pytest.raises(KaryogramError, match="images"):
        render_karyogram(images[:-1], call, tmp_path / "bad.png")


def test_karyogram_keeps_true_relative_scale(tmp_path):
    long_bar, short_bar = np.full((300, 300), 255, np.uint8), np.full((300, 300), 255, np.uint8)
    long_bar[145:157, 50:250] = 128  # lying flat: it is turned upright, keeping its length
    short_bar[125:175, 145:157] = 128
    call = CellCall(labels=(0, 20), confidence=(1.0, 1.0), counts=(1,) + (0,) * 19 + (1, 0, 0, 0), sex="",
                    iscn="2,?", plausible=False, message="", total_cost=0.0, flags=(False, False))
    rgb = np.asarray(Image.open(render_karyogram([long_bar, short_bar], call, tmp_path / "s.png")).convert("L"))
    parts, n = ndimage.label(np.abs(rgb.astype(int) - 128) <= 3)
    heights = sorted(s[0].stop - s[0].start for s in ndimage.find_objects(parts) if (parts[s] > 0).sum() > 200)
    assert len(heights) == 2 and heights[1] / heights[0] == pytest.approx(4.0, rel=0.05)


def test_write_call_is_deterministic(tmp_path):
    labels = NORMAL_AUTOSOMES + [id_of("21"), X, Y]
    call = flag(assign(_onehot(labels)), 0.999)
    ids = [f"c{i:02d}" for i in range(len(labels))]
    first = write_call(call, ids, tmp_path / "a", "cell")
    second = write_call(call, ids, tmp_path / "b", "cell")
    for p, q in zip(first, second):
        assert p.read_bytes() == q.read_bytes()
    with open(first[0], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [NAMES[c] for c in labels] and rows[0]["id"] == "c00"
    summary = json.loads(first[1].read_text(encoding="utf-8"))
    assert summary["iscn"] == "47,XY,+21" and summary["counts"]["21"] == 3 and len(summary["chromosomes"]) == 47
    with pytest.raises(KaryotypeInputError, match="ids"):
        write_call(call, ids[:-1], tmp_path / "c", "cell")


def test_threshold_with_a_clopper_pearson_bound_is_stricter_and_matches_scipy():
    from scipy.stats import binomtest

    from chromosomenet.pipeline.review import error_upper_bound, unflagged

    rng = np.random.default_rng(5)
    conf = rng.random(20_000)
    ok = rng.random(20_000) < 0.5 + 0.5 * conf ** 0.25  # surer calls are right more often
    point = pick_threshold(ok, conf, 0.99)
    bounded = pick_threshold(ok, conf, 0.99, confidence_level=0.95)
    assert bounded > point  # the bound flags more
    u = unflagged(ok, conf, bounded, 0.95)
    assert u["accuracy"] >= u["lower_bound"] >= 0.99 - 1e-12
    # the bound is scipy's exact (Clopper–Pearson) interval, one-sided at 95 %
    want = binomtest(u["errors"], u["n"]).proportion_ci(0.90, method="exact").high
    assert error_upper_bound(u["errors"], u["n"], 0.95) == pytest.approx(want, rel=1e-9)
    assert error_upper_bound(0, 0) == 1.0 and error_upper_bound(3, 3) == 1.0
    assert pick_threshold(ok[:50], conf[:50], 0.999, confidence_level=0.95) > conf[:50].max()  # too few: flag all


def test_a_long_caption_wraps_inside_the_karyogram(tmp_path):
    """A Pki-3 cell's folder name and a long message once ran off the picture: every caption line fits."""
    from chromosomenet.pipeline.render import MARGIN, _font, _wrap

    images, truth, _ = _sample_cell("1051261")
    probs = np.full((len(truth), 24), 0.1 / 23)
    probs[np.arange(len(truth)), truth] = 0.9
    call = flag(assign(probs), 0.9)
    title = "cell 97002274.12.tiff; " + "a count no cell is known to have: an object was likely missed " * 4
    out = render_karyogram(images, call, tmp_path / "k.png", title=title)
    width = Image.open(out).size[0]
    lines = _wrap(f"{title} · {call.message}", _font(17), width - 2 * MARGIN)
    assert len(lines) >= 2 and all(_font(17).getlength(x) <= width - 2 * MARGIN for x in lines)
    assert " ".join(lines) == " ".join(f"{title} · {call.message}".split())  # nothing dropped
    short = render_karyogram(images, call, tmp_path / "s.png", title="cell 1051261")
    assert Image.open(out).size[1] > Image.open(short).size[1]  # the caption's lines get their room
