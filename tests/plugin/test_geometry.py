"""Pure geometry: rectangles and raw buffers at the edges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from latentbrush.plugin.core.geometry import (
    EMPTY,
    Bounds,
    Extent,
    clamp,
    contains,
    crop,
    expand_to_multiple,
    intersect,
    mask_bounds,
    move_inside,
    multiple_of,
    pad,
    paste,
    scale,
    swap_red_blue,
    tighten,
    union,
)

CANVAS = Extent(100, 60)


def test_intersect_and_union():
    a, b = Bounds(0, 0, 10, 10), Bounds(5, 5, 10, 10)
    assert intersect(a, b) == Bounds(5, 5, 5, 5)
    assert intersect(a, Bounds(10, 0, 5, 5)) == EMPTY  # touching edges do not overlap
    assert union(a, b) == Bounds(0, 0, 15, 15)
    assert union(EMPTY, b) == b


def test_clamp_shrinks_and_move_inside_shifts():
    box = Bounds(90, -5, 20, 20)
    assert clamp(box, CANVAS) == Bounds(90, 0, 10, 15)
    assert move_inside(box, CANVAS) == Bounds(80, 0, 20, 20)
    assert move_inside(Bounds(-50, -50, 500, 10), CANVAS) == Bounds(0, 0, 100, 10)


def test_pad_and_multiple():
    assert pad(Bounds(10, 10, 5, 5), 3) == Bounds(7, 7, 11, 11)
    assert pad(Bounds(10, 10, 5, 5), 1, 2, 3, 4) == Bounds(9, 8, 9, 11)
    assert [multiple_of(v, 8) for v in (1, 8, 9, 0)] == [8, 8, 16, 0]


def test_expand_to_multiple_inside_canvas():
    # 13 -> 16 centred (x - 1), then shifted back inside the right edge
    assert expand_to_multiple(Bounds(90, 0, 10, 13), 8, CANVAS) == Bounds(84, 0, 16, 16)
    # a canvas side that is not a multiple caps the result at the canvas
    assert expand_to_multiple(Bounds(0, 0, 99, 59), 8, CANVAS) == Bounds(0, 0, 100, 60)


def test_scale_covers_every_touched_pixel():
    assert scale(Bounds(1, 1, 3, 3), 2) == Bounds(2, 2, 6, 6)
    assert scale(Bounds(1, 1, 3, 3), 0.5) == Bounds(0, 0, 2, 2)


def gray(extent: Extent, box: Bounds | None) -> bytes:
    arr = np.zeros((extent.height, extent.width), np.uint8)
    if box:
        arr[box.y : box.bottom, box.x : box.right] = 200
    return arr.tobytes()


@pytest.mark.parametrize(
    "box",
    [
        Bounds(0, 0, 1, 1),  # 1x1 in the corner
        Bounds(99, 59, 1, 1),  # 1x1 in the opposite corner
        Bounds(0, 20, 7, 9),  # touches left
        Bounds(93, 20, 7, 9),  # touches right
        Bounds(30, 0, 11, 3),  # touches top
        Bounds(30, 57, 11, 3),  # touches bottom
        Bounds(0, 0, 100, 60),  # whole canvas
    ],
)
def test_mask_bounds_at_edges(box):
    assert mask_bounds(gray(CANVAS, box), CANVAS) == box


def test_mask_bounds_empty_and_sparse():
    assert mask_bounds(gray(CANVAS, None), CANVAS) is None
    arr = np.zeros((60, 100), np.uint8)
    arr[3, 50] = 1
    arr[40, 2] = 1
    assert mask_bounds(arr.tobytes(), CANVAS) == Bounds(2, 3, 49, 38)
    with pytest.raises(ValueError, match="expected 6000"):
        mask_bounds(b"\0" * 10, CANVAS)


def test_mask_bounds_16k_canvas():
    extent = Extent(16384, 16384)
    arr = np.zeros((extent.height, extent.width), np.uint8)
    arr[16000:16384, 12345] = 255
    arr[9000, 16383] = 1
    assert mask_bounds(arr.tobytes(), extent) == Bounds(12345, 9000, 16384 - 12345, 16384 - 9000)


@given(
    x=st.integers(-20, 110), y=st.integers(-20, 70), w=st.integers(1, 130), h=st.integers(1, 90),
    bpp=st.sampled_from([1, 4]),
)
def test_crop_matches_numpy_with_zero_outside(x, y, w, h, bpp):
    rng = np.random.default_rng(abs(x * 1000 + y))
    img = rng.integers(0, 256, (CANVAS.height, CANVAS.width, bpp), dtype=np.uint8)
    m = 256  # margin larger than any generated overhang
    padded = np.zeros((CANVAS.height + 2 * m, CANVAS.width + 2 * m, bpp), np.uint8)
    padded[m:-m, m:-m] = img
    expected = padded[y + m : y + m + h, x + m : x + m + w]
    assert crop(img.tobytes(), CANVAS, bpp, Bounds(x, y, w, h)) == expected.tobytes()


def test_paste_clips_to_destination():
    dst = bytearray(4 * 3)
    paste(dst, Extent(4, 3), 1, bytes(range(1, 10)), Bounds(2, 1, 3, 3))
    assert bytes(dst) == bytes([0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 4, 5])


def test_tighten_and_swap():
    padded = bytes([1, 2, 3, 4, 9, 9, 5, 6, 7, 8, 9, 9])  # 1x2 rgba8 with stride 6
    assert tighten(padded[:10], 1, 2, 4, 6) == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert swap_red_blue(bytes([1, 2, 3, 4])) == bytes([3, 2, 1, 4])
    assert contains(Bounds(0, 0, 10, 10), Bounds(9, 9, 1, 1)) and not contains(Bounds(0, 0, 10, 10), Bounds(9, 9, 2, 1))
