"""protocol/geometry.py: rectangles, half-up rounding and upscale sizes at the edges."""

from __future__ import annotations

import pytest
from latentbrush.protocol import JobRequest, Size, UpscaleParams, geometry, messages
from latentbrush.protocol.geometry import (
    EMPTY,
    Rect,
    clamp,
    expand_to_multiple,
    intersect,
    move_inside,
    multiple_of,
    pad,
    round_half_up,
    scale,
    scaled_size,
    slices,
    union,
    upscale_rect,
    upscale_size,
)

CANVAS = Size(100, 60)


def test_intersect_and_union():
    a, b = Rect(0, 0, 10, 10), Rect(5, 5, 10, 10)
    assert intersect(a, b) == Rect(5, 5, 5, 5)
    assert intersect(a, Rect(10, 0, 5, 5)) == EMPTY  # touching edges do not overlap
    assert union(a, b) == Rect(0, 0, 15, 15)
    assert union(EMPTY, b) == b


def test_clamp_shrinks_and_move_inside_shifts():
    box = Rect(90, -5, 20, 20)
    assert clamp(box, CANVAS) == Rect(90, 0, 10, 15)
    assert move_inside(box, CANVAS) == Rect(80, 0, 20, 20)
    assert move_inside(Rect(-50, -50, 500, 10), CANVAS) == Rect(0, 0, 100, 10)


def test_pad_and_multiple():
    assert pad(Rect(10, 10, 5, 5), 3) == Rect(7, 7, 11, 11)
    assert pad(Rect(10, 10, 5, 5), 1, 2, 3, 4) == Rect(9, 8, 9, 11)
    assert [multiple_of(v, 8) for v in (1, 8, 9, 0)] == [8, 8, 16, 0]


def test_expand_to_multiple_inside_canvas():
    # 13 -> 16 centred (x - 1), then shifted back inside the right edge
    assert expand_to_multiple(Rect(90, 0, 10, 13), 8, CANVAS) == Rect(84, 0, 16, 16)
    # a canvas side that is not a multiple caps the result at the canvas
    assert expand_to_multiple(Rect(0, 0, 99, 59), 8, CANVAS) == Rect(0, 0, 100, 60)


def test_scale_covers_every_touched_pixel():
    assert scale(Rect(1, 1, 3, 3), 2) == Rect(2, 2, 6, 6)
    assert scale(Rect(1, 1, 3, 3), 0.5) == Rect(0, 0, 2, 2)


def test_contains_and_properties():
    box = Rect(2, 3, 10, 5)
    assert box.contains(Rect(11, 7, 1, 1)) and not box.contains(Rect(11, 7, 2, 1)) and box.contains(box)
    assert (box.right, box.bottom, box.size, box.size.pixels) == (12, 8, Size(10, 5), 50)
    assert Rect.of(Size(4, 3)) == Rect(0, 0, 4, 3) and EMPTY.is_empty() and not box.is_empty()
    assert slices(box) == (slice(3, 8), slice(2, 12))


def test_the_wire_rect_is_the_geometry_rect():
    assert messages.Rect is geometry.Rect and messages.Size is geometry.Size


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10.5, 11), (2.5, 3), (0.5, 1), (1.4999, 1), (7.5, 8), (-0.5, 0), (-1.5, -1), (3.0, 3)],
)
def test_round_half_up(value: float, expected: int):
    assert round_half_up(value) == expected  # round() gives 10, 2, 0 ... for the halves


@pytest.mark.parametrize(
    ("region", "factor", "expected"),
    [(Size(7, 7), 1.5, Size(11, 11)), (Size(1, 1), 2.5, Size(3, 3)), (Size(5, 7), 1.5, Size(8, 11)),
     (Size(3, 3), 0.1, Size(1, 1))],  # never below one pixel
)
def test_scaled_size_rounds_half_up(region: Size, factor: float, expected: Size):
    assert scaled_size(region, factor) == expected


def test_upscale_size_and_rect_of_a_job():
    job = JobRequest(id="j", op="upscale", canvas=Size(20, 20), region=Rect(1, 3, 7, 7), image="sha256:" + "0" * 64,
                     upscale=UpscaleParams(scale=1.5))
    assert upscale_size(job) == Size(11, 11)
    assert upscale_rect(job) == Rect(2, 5, 11, 11)  # 1 x 11/7 = 1.57 -> 2, 3 x 11/7 = 4.71 -> 5
    default = JobRequest(id="j", op="upscale", canvas=Size(20, 20), region=Rect(0, 0, 5, 5), image=job.image)
    assert upscale_size(default) == Size(10, 10)  # no upscale parameters: the default scale 2
