"""Separate touching and crossing chromosomes: all boxes of a metaphase segmented together.

Each box first chooses its chromosome's dark component as :mod:`.isolate` does on its own. Boxes
whose components are one and the same blob of ink (touching or crossing chromosomes) are then
split by a marker-controlled watershed (scikit-image) over that blob. An annotation box encloses
its chromosome (loosely), so a dark pixel that lies in exactly one of the boxes can only be that
box's chromosome: those are the markers, and only the pixels several boxes share are contested.
Where a chromosome runs on into another box (an X crossing, a box inside another), its box alone
gives it markers at one end or none; then the straight band through a neighbour's markers tells
which shared pixels are not the neighbour's, and those on one box's band alone become that box's
markers too (``_band_seeds``). A box inside a bent one, which has no band, is tried with a seed at
its own centre, kept only if that cuts no chromosome (``_cores``, ``_frees``). The rest flood from
the markers over the negated distance transform of the blob, so the cut runs through the blob's
narrow necks (where two chromosomes touch) rather than through a pale band
(on the synthetic metaphases of ``tests/test_separate.py`` the grey image as landscape gave IoU
0.69-0.93 with the truth, the distance transform 0.90-0.99). A box that the others cut into
pieces crosses them: the pixels of its pieces' convex hull that the others won are copied into
it — a crossing belongs to both chromosomes. A box left with too little of its box (the other
won the crossing and the arm beyond it) runs on straight through the crossing along the band
through what it kept; of the pixels on that band another box won, those off the other's own band
move back, the rest (the crossing) are shared (``_through``).

Flags (order: separated, overlap, merged, low_fill, empty):
- ``separated``: pixels of this box's blob went to another box (a cut was made);
- ``overlap``: pixels are shared with a crossing chromosome;
- ``merged``: separation failed and the box keeps its crop from on its own — it has no pixel of
  its own (it lies inside others and neither a band nor its centre tells it apart), it stays in
  pieces after the crossing step, or its one piece (crumbs aside) covers its box less than unmerged
  chromosomes do (``MIN_SPAN``) even after running on through a crossing; or its blob still runs
  out of the box into ink that no box claims (unannotated debris, a nucleus).

``import-tseng --separate`` turns it on; ``make train``, the embedded sample and the Space use it:
it cuts ``merged`` from 38 % to 9.9 % of instances (200 random metaphases), and the shipped
ResNet-10t, trained on it, scores 96.3 % on unseen cases where the ResNet-18 trained on each box on
its own scored 92.7 % (bench/RESULTS.md). The CLI's default stays each box on its own, as older
models were trained.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import edt
import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image
from skimage.segmentation import watershed

from ..data.voc import Box
from .isolate import _EIGHT, MARGIN, Isolated, Window, disk, finish, grow, isolate, isolate_window, window

MIN_PIECE = 0.05  # a piece below this share of the box's pixels is a crumb, not a split chromosome
# Share of its box's (shorter, longer) side a separated chromosome must still cover. Boxes are
# loose and pale telomeres fall above the threshold: unmerged chromosomes cover 0.75 / 0.84
# (median), 0.58 / 0.70 (p10), 0.44 / 0.53 (p1) of their box (1,246 boxes of 40 metaphases).
# At p1 wrong cuts (a fragment of a crossing chromosome) pass: the fixed classifier lost 1.8
# points on the formerly-merged; at p10 they fall back to merged and it gains 0.9 (40 test metaphases).
MIN_SPAN = (0.58, 0.70)
MIN_BAND_PIXELS = 30  # own pixels needed to fit a box's band: fewer is a corner, not a line
CORE = 0.2  # × box side, each way from its centre: where a box with no pixel of its own is seeded
KEEP = 0.8  # share of its pixels a whole chromosome must keep when a centre seed is tried beside it
BAND_NEAR = 1.5  # × half-width (+ 2 px): a band's fringe, where its chromosome's soft edge may still lie


def isolate_boxes(gray: np.ndarray, threshold: float, boxes: Sequence[Box], separate: bool) -> list[Isolated]:
    """The import's one entry point (``import-tseng`` and the Space): all boxes together when
    ``separate`` (what the shipped model was trained on), else each on its own (see below)."""
    return isolate_all(gray, threshold, boxes) if separate else [isolate(gray, threshold, b) for b in boxes]


def isolate_all(gray: np.ndarray, threshold: float, boxes: Sequence[Box]) -> list[Isolated]:
    """One :class:`Isolated` per box, in order, with touching chromosomes separated."""
    wins = [window(gray, threshold, b) for b in boxes]
    blobs, _ = ndimage.label(gray < threshold, structure=_EIGHT)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(wins):
        if w.comp is not None:
            groups[_blob_id(blobs, w)].append(i)
    out: dict[int, Isolated] = {}
    for blob, members in groups.items():
        if len(members) > 1:
            out.update(_split(gray, blobs, blob, [boxes[i] for i in members], wins, members))
    return [out[i] if i in out else isolate_window(gray, b, w) for i, (b, w) in enumerate(zip(boxes, wins))]


def _blob_id(blobs: np.ndarray, w: Window) -> int:
    """Label of the metaphase-wide blob that holds the window's component (one pixel suffices)."""
    y, x = np.unravel_index(np.argmax(w.comp), w.comp.shape)  # the first set pixel; argmax stops there
    return int(blobs[y + w.origin[0], x + w.origin[1]])


def _split(gray: np.ndarray, blobs: np.ndarray, blob: int, boxes: list[Box], wins: list[Window],
           members: list[int]) -> dict[int, Isolated]:
    """Split one blob among the boxes that chose it; returns the separated instances by box index."""
    h, w = gray.shape
    ry0, rx0 = max(min(b[1] for b in boxes) - MARGIN, 0), max(min(b[0] for b in boxes) - MARGIN, 0)
    ry1, rx1 = min(max(b[3] for b in boxes) + MARGIN, h), min(max(b[2] for b in boxes) + MARGIN, w)
    region = blobs[ry0:ry1, rx0:rx1] == blob
    inbox = [(slice(b[1] - ry0, b[3] - ry0), slice(b[0] - rx0, b[2] - rx0)) for b in boxes]
    cover = np.zeros(region.shape, np.int16)
    for sl in inbox:
        cover[sl] += 1
    markers = np.zeros(region.shape, np.int32)
    for k, sl in enumerate(inbox, start=1):
        markers[sl][region[sl] & (cover[sl] == 1)] = k
    claimed = region & (cover > 0)
    contested = claimed & (markers == 0)  # only pixels in several boxes are contested
    dist = None
    if contested.any():
        dist = _distance(region)
        cores = _cores(markers, _band_seeds(markers, contested, inbox, dist), inbox)
        _flood(markers, contested, claimed, dist)
        if cores is not None:  # a trial, kept only where it frees a box and cuts no chromosome
            _flood(cores, contested, claimed, dist)
            markers = cores if _frees(cores, markers, inbox) else markers
    own = [markers == k for k in range(1, len(boxes) + 1)]
    shared = [_crossing(own[k], sl, claimed) for k, sl in enumerate(inbox)]
    whole: dict[int, bool] = {}  # _whole of each box's pixels, while no _through has changed them
    for k, sl in enumerate(inbox):
        if not own[k].any():
            continue
        whole[k] = _whole((own[k] | shared[k])[sl])
        if not whole[k]:
            dist = _distance(region) if dist is None else dist
            if _through(k, own, shared, markers, inbox, region, dist):
                whole.clear()  # it may have moved pixels of any box
    copied = np.logical_or.reduce(shared)  # crossing pixels copied into some box
    result = {}
    for k, (i, b, sl) in enumerate(zip(members, boxes, inbox)):
        flags = _flags(own[k], shared[k], copied, sl, region, whole.get(k))
        if flags is None:  # separation failed: leave the box as it was on its own, merged
            result[i] = _as_merged(isolate_window(gray, b, wins[i]))
            continue
        near = (slice(max(sl[0].start - MARGIN, 0), sl[0].stop + MARGIN),
                slice(max(sl[1].start - MARGIN, 0), sl[1].stop + MARGIN))
        box_in_near = tuple(slice(s.start - n.start, s.stop - n.start) for s, n in zip(sl, near))
        mine = (own[k] | shared[k])[near]
        others = (markers[near] > 0) & ~mine  # won by another box: the soft edge must not grow into it
        mask = (grow(mine) & ~others)[box_in_near]
        ring = _unclaimed_ring(region[near] & ~claimed[near], mine, box_in_near)
        result[i] = finish(gray[b[1]:b[3], b[0]:b[2]], mask, ring, flags)
    return result


def _distance(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of each blob pixel to the nearest pixel off the blob (the region's edge is
    not background). The ``edt`` package: the values of scipy's ``distance_transform_edt`` (as
    float32), in 0.55 instead of 0.91 ms on the blob regions of 60 metaphases, same cut (digest-checked).
    A region with no background at all gets scipy's finite values (``edt`` gives inf there)."""
    if region.all():
        return ndimage.distance_transform_edt(region)
    return edt.edt(region, black_border=False, parallel=1)


def _band(pts: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(centre, unit normal, half-width) of the straight band that holds a box's own pixels
    ``pts`` (N, 2) of (row, column), or None where they are too few, too short, or bent."""
    if len(pts) < MIN_BAND_PIXELS:
        return None
    centre = pts.mean(0)
    d = pts - centre
    (syy, syx), (_, sxx) = d.T @ d / len(d)
    phi = 0.5 * np.arctan2(2 * syx, syy - sxx)  # principal axis, as an angle from the row axis
    axis = np.array([np.cos(phi), np.sin(phi)])
    normal = np.array([-axis[1], axis[0]])
    half = _p95(dist[pts[:, 0], pts[:, 1]]) + 1.0  # about the chromosome's half-width
    along = d @ axis
    if _p95(np.abs(d @ normal)) > half + 1.5 or np.ptp(along) < 2 * half:
        return None
    return centre, normal, half


def _p95(values: np.ndarray) -> float:
    """The 95th percentile, nearest rank (np.percentile's interpolation costs more than the band)."""
    k = int(0.95 * (len(values) - 1))
    return float(np.partition(values, k)[k])


def _band_seeds(markers: np.ndarray, contested: np.ndarray, inbox: list[tuple[slice, slice]],
                dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seed contested pixels from the boxes' straight bands, in place; returns the contested pixels
    (rows, columns) left unseeded and near no band. A chromosome that runs on
    into another box (an X crossing, a box inside another) has own pixels at one end or none; the
    line through a straight neighbour's own pixels tells which of the shared pixels are not it.
    A shared pixel on the band of one of the boxes that hold it, and near no other's, is that
    box's; near none of their bands, it is the band-less box's when exactly one of them has none."""
    ys, xs = np.nonzero(contested)
    pts = np.stack([ys, xs], 1).astype(float)
    holds = np.array([(ys >= a.start) & (ys < a.stop) & (xs >= b.start) & (xs < b.stop) for a, b in inbox])
    on, near = np.zeros_like(holds), np.zeros_like(holds)
    bandless = np.zeros(len(inbox), bool)
    own = np.argwhere(markers > 0)
    label = markers[own[:, 0], own[:, 1]]  # one sort groups every box's own pixels
    ends = np.cumsum(np.bincount(label, minlength=len(inbox) + 1))[:-1]
    by_box = np.split(own[np.argsort(label, kind="stable")], ends)
    for k in range(len(inbox)):
        band = _band(by_box[k + 1], dist)
        if band is None:
            bandless[k] = True
            continue
        across = np.abs((pts - band[0]) @ band[1])
        on[k], near[k] = holds[k] & (across <= band[2]), holds[k] & (across <= BAND_NEAR * band[2] + 2)
    n_near = near.sum(0)  # the band's fringe decides nothing: a pixel near two bands stays contested
    free = holds & bandless[:, None]
    seed = np.where(on.any(0) & (n_near == 1), on.argmax(0),
                    np.where((n_near == 0) & (free.sum(0) == 1), free.argmax(0), -1))
    keep = seed >= 0
    markers[ys[keep], xs[keep]] = seed[keep] + 1
    free = ~keep & (n_near == 0)
    return ys[free], xs[free]


def _cores(markers: np.ndarray, free: tuple[np.ndarray, np.ndarray],
           inbox: list[tuple[slice, slice]]) -> np.ndarray | None:
    """A box inside others with no marker even after the band seeds (it lies on a bent chromosome,
    which has no band to tell them apart) seeded at its centre: the ``free`` contested pixels within
    ``CORE`` of its box's centre. Returns the markers with those seeds (a copy), or None where no box
    needs one."""
    ys, xs = free
    seeded = np.bincount(markers.ravel(), minlength=len(inbox) + 1)
    out = None
    for k, (a, b) in enumerate(inbox):
        if seeded[k + 1]:
            continue
        core = ((np.abs(ys - (a.start + a.stop - 1) / 2) <= CORE * (a.stop - a.start))
                & (np.abs(xs - (b.start + b.stop - 1) / 2) <= CORE * (b.stop - b.start)))
        if core.any():
            out = markers.copy() if out is None else out
            out[ys[core], xs[core]] = k + 1
    return out


def _frees(tried: np.ndarray, markers: np.ndarray, inbox: list[tuple[slice, slice]]) -> bool:
    """Whether the flood from the centre seeds (``tried``, against ``markers`` without them) makes
    a whole chromosome of a box that had no pixel and keeps every chromosome that was whole whole and
    with ``KEEP`` of its pixels: a seed on the container's own curve (a C-shaped chromosome around a
    small one) would cut an arm off it, which may still span its loose box."""
    freed = False
    for k, sl in enumerate(inbox, start=1):
        was, now = markers == k, tried == k
        if _whole(was[sl]) and (not _whole(now[sl]) or np.count_nonzero(now) < KEEP * np.count_nonzero(was)):
            return False
        freed |= not was.any() and _whole(now[sl])
    return freed


def _flood(markers: np.ndarray, contested: np.ndarray, claimed: np.ndarray, dist: np.ndarray) -> None:
    """The watershed over the negated distance transform, in place, on the box around the pixels
    still contested: the flood enters only those, from the markers next to them, so that box (plus a
    pixel) is all it needs (cheaper; only markers as deep as each other may take turns differently)."""
    ys, xs = np.nonzero(contested & (markers == 0))
    if not len(ys):
        return
    sub = (slice(max(ys.min() - 1, 0), ys.max() + 2), slice(max(xs.min() - 1, 0), xs.max() + 2))
    markers[sub] = watershed(-dist[sub], markers[sub], mask=claimed[sub], connectivity=2)


def _fringe(ys: np.ndarray, xs: np.ndarray, band: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    """Which of the pixels (``ys``, ``xs``) lie on the band's fringe (where its chromosome may still lie)."""
    centre, normal, half = band
    return np.abs((np.stack([ys, xs], 1) - centre) @ normal) <= BAND_NEAR * half + 2


def _through(k: int, own: list[np.ndarray], shared: list[np.ndarray], markers: np.ndarray,
             inbox: list[tuple[slice, slice]], region: np.ndarray, dist: np.ndarray) -> bool:
    """A chromosome cut short where it crosses another (the other won the crossing and the arm
    beyond it, so box ``k`` keeps too little of its box to pass ``_whole``) runs on straight: the
    blob's pixels in its box on the fringe of the band through what it kept are its own. Of those
    another box ``j`` won, the ones on ``j``'s own band (fit without them) are the crossing, shared by
    both; the rest move to ``k``. In place; nothing changes unless ``k`` then passes ``_whole``
    (returns whether it did)."""
    band = _band(np.argwhere(own[k]), dist)
    if band is None:
        return False
    sl = inbox[k]
    ys, xs = np.nonzero(region[sl])
    ys, xs = ys + sl[0].start, xs + sl[1].start
    on = _fringe(ys, xs, band)
    line = np.zeros_like(own[k])
    line[ys[on], xs[on]] = True
    line &= ~own[k]
    if not _whole((own[k] | shared[k] | line)[sl]):
        return False
    for j in range(len(own)):
        taken = own[j] & line
        if j == k or not taken.any():
            continue
        theirs = _band(np.argwhere(own[j] & ~line), dist)
        if theirs is None:
            continue  # no straight band tells the crossing from the arm: share all of it
        ty, tx = np.nonzero(taken)
        off = ~_fringe(ty, tx, theirs)
        kept = own[j].copy()
        kept[ty[off], tx[off]] = False
        if _whole((own[j] | shared[j])[inbox[j]]) and not _whole((kept | shared[j])[inbox[j]]):
            continue  # the move would break j's own chromosome: share instead
        own[j] = kept  # j's share of k's arm beyond the crossing: k's alone
        own[k][ty[off], tx[off]] = True
        markers[ty[off], tx[off]] = k + 1
    shared[k] |= line & ~own[k]
    return True


def _pieces(mask: np.ndarray) -> list[np.ndarray]:
    """Connected pieces of ``mask`` that are more than crumbs."""
    lab, n = ndimage.label(mask, structure=_EIGHT)
    if n < 2:
        return [mask] if n else []
    sizes = np.bincount(lab.ravel())[1:]
    return [lab == j + 1 for j in np.flatnonzero(sizes >= MIN_PIECE * sizes.sum())]


def _crossing(own: np.ndarray, sl: tuple[slice, slice], claimed: np.ndarray) -> np.ndarray:
    """If the others cut the box's chromosome into pieces, or pinched it to a waist thinner than
    the disk of radius 2.5 (which an opening breaks), the pixels of its pieces' hull that they
    won: the crossing, copied into this box and kept by the others too."""
    out = np.zeros_like(own)
    pieces = _pieces(disk(disk(own[sl], np.logical_and)))  # opening by the pinch disk
    if len(pieces) >= 2:
        out[sl] = convex_hull_image(np.logical_or.reduce(pieces)) & claimed[sl] & ~own[sl]
    return out


def _flags(own: np.ndarray, shared: np.ndarray, copied: np.ndarray, sl: tuple[slice, slice],
           region: np.ndarray, whole: bool | None = None) -> tuple[str, ...] | None:
    """Separation flags of a box from the pixels it won (``own``) and got from a crossing
    (``shared``); None when separation failed for it: no pixel of its own, still in pieces, or
    covering much less of its box than a chromosome does (a part left by a cut in the wrong place).
    ``whole``: ``_whole`` of these pixels when already known."""
    mine = (own | shared)[sl]
    if not (_whole(mine) if whole is None else whole):
        return None
    crossing = bool(shared[sl].any() or (copied[sl] & own[sl]).any())
    cut = bool((region[sl] & ~mine).any())
    return tuple(f for f, hit in (("separated", cut), ("overlap", crossing)) if hit)


def _whole(mine: np.ndarray) -> bool:
    """A box's pixels (box-sized) are a whole chromosome: one piece, covering its box as unmerged
    chromosomes do (``MIN_SPAN``)."""
    pieces = _pieces(mine)
    return len(pieces) == 1 and all(s >= m for s, m in zip(sorted(_span(pieces[0])), MIN_SPAN))


def _span(mask: np.ndarray) -> tuple[float, float]:
    """Share of the box's height and width that ``mask`` covers."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (rows[-1] - rows[0] + 1) / mask.shape[0], (cols[-1] - cols[0] + 1) / mask.shape[1]


def _unclaimed_ring(stray: np.ndarray, mine: np.ndarray, sl: tuple[slice, slice]) -> float:
    """Share of the box's ink (its pixels plus the unclaimed ink within MARGIN of them) that lies
    in ``stray`` ink no box claims: the old ``merged`` test, other boxes' chromosomes taken out."""
    ys, xs = np.nonzero(stray)
    touching = 0
    if len(ys):  # filter only around the stray ink (plus the filter's reach): the same count, cheaper
        near = (slice(max(ys.min() - MARGIN, 0), ys.max() + MARGIN + 1),
                slice(max(xs.min() - MARGIN, 0), xs.max() + MARGIN + 1))
        touching = int(np.count_nonzero(stray[near] & ndimage.maximum_filter(mine[near], size=2 * MARGIN + 1)))
    total = int(np.count_nonzero(mine[sl])) + touching
    return touching / total if total else 0.0


def _as_merged(iso: Isolated) -> Isolated:
    """An instance that shares its blob but could not be separated is merged, whatever its ring."""
    flags = iso.flags if "merged" in iso.flags else ("merged",) + iso.flags
    return Isolated(iso.crop, flags, iso.fill, iso.ring)
