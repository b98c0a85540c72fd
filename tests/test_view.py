"""The canonical view on synthetic shapes with known geometry, and on real canvases of the sample."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import moments, moments_central

import chromosomenet
from chromosomenet.data.view import ViewSpec, canonical_view, quantize, views_uint8

SAMPLE = Path(chromosomenet.__file__).parent / "sample"

NATIVE = ViewSpec(downsample=1)


def canvas(*shapes, size: int = 300) -> torch.Tensor:
    """A (1, 1, size, size) white canvas with dark rectangles: (length, width, angle°, cx, cy[, grey])."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = torch.ones(size, size)
    for length, width, angle, cx, cy, *grey in shapes:
        a = math.radians(angle)
        along = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        across = -(xx - cx) * math.sin(a) + (yy - cy) * math.cos(a)
        c[(along.abs() <= length / 2) & (across.abs() <= width / 2)] = grey[0] if grey else 0.2
    return c[None, None]


def extent(view: torch.Tensor) -> tuple[int, int, int, int]:
    """(rows, columns, first row, first column) spanned by dark pixels of a (1, 1, h, w) view."""
    ink = view[0, 0] < 0.6
    rows, cols = ink.any(1).nonzero()[:, 0], ink.any(0).nonzero()[:, 0]
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1), int(rows.min()), int(cols.min())


@pytest.mark.parametrize("angle", [30.0, -60.0, 90.0, 0.0])
def test_a_bar_at_an_angle_comes_out_vertical_with_its_length_kept(angle: float):
    view, info = canonical_view(canvas((120, 20, angle, 140, 160)), NATIVE)
    rows, cols, _, _ = extent(view)
    assert abs(rows - 120) <= 1 and abs(cols - 20) <= 1
    assert float(info.scale[0]) == 1.0 and not bool(info.blank[0])
    assert torch.allclose(info.centre[0], torch.tensor([140.0, 160.0]), atol=0.6)


def test_the_longer_tail_points_down():
    # a long arm below the centroid and a short one above it, in either order on the canvas
    for flip in (1, -1):
        shapes = canvas((100, 16, 90, 150, 150 + flip * 20), (16, 40, 90, 150, 150 - flip * 48))
        view, _ = canonical_view(shapes, NATIVE)
        ink = (view[0, 0] < 0.6).float()
        width = ink.sum(1)
        rows = width.nonzero()[:, 0]
        # the wide knob (short end) is at the top, the narrow long arm at the bottom
        assert width[rows.min():rows.min() + 10].mean() > width[rows.max() - 10:rows.max()].mean()


def test_a_blank_canvas_gives_a_white_view_and_a_flag():
    view, info = canonical_view(torch.ones(2, 1, 300, 300), ViewSpec())
    assert view.shape == (2, 1, 104, 48)
    assert torch.isfinite(view).all() and bool((view == 1).all())
    assert info.blank.tolist() == [True, True] and torch.isfinite(info.angle).all()


def test_a_chromosome_at_the_canvas_border_is_kept_whole():
    c = canvas((60, 14, 0, 30, 150))  # touches x = 0
    view, _ = canonical_view(c, NATIVE)
    rows, cols, _, _ = extent(view)
    assert abs(rows - 60) <= 1 and abs(cols - 14) <= 1
    assert float((1 - view).sum()) == pytest.approx(float((1 - c).sum()), rel=0.02)  # all the ink is there


def test_one_longer_than_the_window_is_scaled_to_fit_and_recorded():
    view, info = canonical_view(canvas((280, 20, 45, 150, 150)), NATIVE)
    scale = float(info.scale[0])
    assert scale > 1.3
    rows, _, first, _ = extent(view)
    assert first >= 1 and first + rows <= NATIVE.height - 1  # nothing cut at either end
    assert abs(rows * scale - 280) <= 2


def test_wider_than_the_window_is_scaled_too():
    _, info = canonical_view(canvas((150, 130, 90, 150, 150)), NATIVE)
    assert float(info.scale[0]) == pytest.approx(130 / (NATIVE.width - 2 * NATIVE.margin), rel=0.02)


def test_grey_level_and_batching_do_not_move_the_view():
    one = canvas((90, 18, 20, 120, 170))
    two = torch.cat([canvas((150, 25, -35, 170, 140)), one])
    alone, _ = canonical_view(one)
    batched, _ = canonical_view(two)
    assert torch.equal(quantize(alone[0]), quantize(batched[1]))
    lighter, _ = canonical_view(canvas((90, 18, 20, 120, 170, 0.5)), NATIVE)
    darker, _ = canonical_view(canvas((90, 18, 20, 120, 170, 0.1)), NATIVE)
    assert extent(lighter) == extent(darker)


def test_views_uint8_matches_the_float_view_rounded():
    c = (canvas((90, 18, 20, 120, 170)) * 255).round().to(torch.uint8)
    view, _ = canonical_view(c.float() / 255)
    assert views_uint8(c).dtype == torch.uint8
    assert torch.equal(views_uint8(c), quantize(view))


def test_refuses_a_batch_that_is_not_grey_canvases():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        canonical_view(torch.ones(1, 3, 300, 300))


def test_centroid_and_axis_agree_with_scikit_image_on_real_chromosomes():
    # the view measures on 2×2 blocks for speed; scikit-image's moments of every pixel are the reference
    files = sorted(SAMPLE.glob("*/*.png"))[::25]
    grey = np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float64) / 255 for f in files])
    _, info = canonical_view(torch.from_numpy(grey).float()[:, None])
    for g, angle, (cx, cy) in zip(grey, info.angle.tolist(), info.centre.tolist()):
        ink = np.clip(1 - g - ViewSpec().ink_floor, 0, None)
        m = moments(ink, order=1)
        ry, rx = m[1, 0] / m[0, 0], m[0, 1] / m[0, 0]  # skimage indexes moments (row, column)
        mu = moments_central(ink, center=(ry, rx), order=2)
        theta = 0.5 * np.arctan2(2 * mu[1, 1], mu[0, 2] - mu[2, 0])  # major axis vs the x (column) axis
        assert abs(cx - rx) < 0.1 and abs(cy - ry) < 0.1
        diff = (angle - theta) % np.pi  # the view also chose a direction: compare axes, not arrows
        assert min(diff, np.pi - diff) < np.radians(1.0)
    assert len(files) >= 30
