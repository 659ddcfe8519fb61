"""Raw buffers at the edges: mask bounds, crop, paste, stride, channel swap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from latentbrush.plugin.core.buffers import crop, mask_bounds, paste, swap_red_blue, tighten
from latentbrush.protocol.geometry import Rect, Size

CANVAS = Size(100, 60)


def gray(extent: Size, box: Rect | None) -> bytes:
    arr = np.zeros((extent.height, extent.width), np.uint8)
    if box:
        arr[box.y : box.bottom, box.x : box.right] = 200
    return arr.tobytes()


@pytest.mark.parametrize(
    "box",
    [
        Rect(0, 0, 1, 1),  # 1x1 in the corner
        Rect(99, 59, 1, 1),  # 1x1 in the opposite corner
        Rect(0, 20, 7, 9),  # touches left
        Rect(93, 20, 7, 9),  # touches right
        Rect(30, 0, 11, 3),  # touches top
        Rect(30, 57, 11, 3),  # touches bottom
        Rect(0, 0, 100, 60),  # whole canvas
    ],
)
def test_mask_bounds_at_edges(box):
    assert mask_bounds(gray(CANVAS, box), CANVAS) == box


def test_mask_bounds_empty_and_sparse():
    assert mask_bounds(gray(CANVAS, None), CANVAS) is None
    arr = np.zeros((60, 100), np.uint8)
    arr[3, 50] = 1
    arr[40, 2] = 1
    assert mask_bounds(arr.tobytes(), CANVAS) == Rect(2, 3, 49, 38)
    with pytest.raises(ValueError, match="expected 6000"):
        mask_bounds(b"\0" * 10, CANVAS)


def test_mask_bounds_16k_canvas():
    extent = Size(16384, 16384)
    arr = np.zeros((extent.height, extent.width), np.uint8)
    arr[16000:16384, 12345] = 255
    arr[9000, 16383] = 1
    assert mask_bounds(arr.tobytes(), extent) == Rect(12345, 9000, 16384 - 12345, 16384 - 9000)


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
    assert crop(img.tobytes(), CANVAS, bpp, Rect(x, y, w, h)) == expected.tobytes()


def test_paste_clips_to_destination():
    dst = bytearray(4 * 3)
    paste(dst, Size(4, 3), 1, bytes(range(1, 10)), Rect(2, 1, 3, 3))
    assert bytes(dst) == bytes([0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 4, 5])


def test_tighten_and_swap():
    padded = bytes([1, 2, 3, 4, 9, 9, 5, 6, 7, 8, 9, 9])  # 1x2 rgba8 with stride 6
    assert tighten(padded[:10], 1, 2, 4, 6) == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert swap_red_blue(bytes([1, 2, 3, 4])) == bytes([3, 2, 1, 4])
