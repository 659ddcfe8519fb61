"""Tile grids, feathered weights and accumulate-and-normalise (pure numpy, exhaustive)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from latentbrush.backend.upscale.tiles import (
    Accumulator,
    Span,
    axis_spans,
    axis_weights,
    clamp_overlap,
    fit_tile_size,
    partition_spans,
    ramp,
    tile_grid,
)
from latentbrush.protocol import Rect, geometry


def check_spans(spans: tuple[Span, ...], length: int, tile: int, overlap: int, multiple_of: int = 1) -> None:
    assert spans[0].start == 0
    assert spans[-1].end == length
    if length <= tile:
        assert spans == (Span(0, length),)
        return
    side = spans[0].length
    assert all(s.length == side for s in spans), "every tile has the same size"
    assert side % multiple_of == 0 or side == length
    if tile % multiple_of == 0:
        assert side <= tile
    overlap = clamp_overlap(tile, overlap)
    for a, b in itertools.pairwise(spans):
        assert a.start < b.start, "tiles advance"
        assert a.end - b.start >= overlap, "neighbours overlap at least as asked"
    # as few tiles as the tile size allows ...
    assert (len(spans) - 2) * (tile - overlap) + tile < length
    # ... and each no longer than needed for that count (before rounding up to multiple_of)
    assert (side - multiple_of) * len(spans) - (len(spans) - 1) * overlap < length


@given(st.integers(1, 3000), st.integers(1, 600), st.integers(0, 700), st.sampled_from([1, 1, 2, 8, 16]))
def test_axis_spans_cover_evenly_with_at_least_the_overlap(
    length: int, tile: int, overlap: int, multiple_of: int
) -> None:
    tile = max(tile // multiple_of * multiple_of, multiple_of)
    check_spans(axis_spans(length, tile, overlap, multiple_of), length, tile, overlap, multiple_of)


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "expected"),
    [
        (100, 512, 32, [(0, 100)]),  # smaller than a tile
        (512, 512, 32, [(0, 512)]),  # exactly one tile
        (513, 512, 32, [(0, 273), (240, 513)]),  # one pixel more: two tiles, each just large enough
        (1024, 512, 32, [(0, 363), (331, 694), (661, 1024)]),  # 2 x 512 cannot overlap by 32: 3 x 363
        (992, 512, 32, [(0, 512), (480, 992)]),  # exactly two full tiles with a 32 px overlap
        (7, 3, 1, [(0, 3), (2, 5), (4, 7)]),  # odd sizes
        (10, 4, 0, [(0, 4), (3, 7), (6, 10)]),  # no overlap asked: evenly spread, never a gap
    ],
)
def test_axis_spans_examples(length: int, tile: int, overlap: int, expected: list[tuple[int, int]]) -> None:
    assert [tuple(s) for s in axis_spans(length, tile, overlap)] == expected


def test_axis_spans_round_the_tile_up_to_the_multiple() -> None:
    assert [tuple(s) for s in axis_spans(1024, 512, 32, multiple_of=16)] == [(0, 368), (328, 696), (656, 1024)]


def test_square_grid_uses_one_side_for_both_axes() -> None:
    grid = tile_grid(1024, 600, 512, 32, square=True)
    assert {c.length for c in grid.columns} == {r.length for r in grid.rows} == {363}
    assert grid.columns[-1].end == 1024 and grid.rows[-1].end == 600
    plain = tile_grid(1024, 600, 512, 32)
    assert plain.rows[0].length == 316  # (600 + 32) / 2


def test_axis_spans_rejects_empty() -> None:
    with pytest.raises(ValueError):
        axis_spans(0, 64, 8)


@given(st.integers(1, 5000), st.integers(1, 700))
def test_partition_spans_abut_and_differ_by_at_most_one(length: int, tile: int) -> None:
    spans = partition_spans(length, tile)
    assert spans[0].start == 0 and spans[-1].end == length
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    lengths = {s.length for s in spans}
    assert max(lengths) <= tile and max(lengths) - min(lengths) <= 1
    assert len(spans) == -(-length // tile)


@pytest.mark.parametrize(
    ("tile", "minimum", "multiple_of", "expected"),
    [(512, 0, 1, 512), (500, 0, 16, 496), (512, 0, 8, 512), (8, 64, 1, 64), (100, 36, 16, 96), (10, 0, 16, 16)],
)
def test_fit_tile_size(tile: int, minimum: int, multiple_of: int, expected: int) -> None:
    got = fit_tile_size(tile, minimum, multiple_of)
    assert got == expected
    assert got % multiple_of == 0 and got >= minimum


def test_ramp_is_strictly_inside_zero_one_and_complements_its_mirror() -> None:
    r = ramp(32)
    assert r.min() > 0 and r.max() < 1
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)
    assert np.all(np.diff(r) > 0)


@given(st.integers(1, 400), st.integers(8, 128), st.integers(0, 64), st.sampled_from([1, 2, 3, 4]))
def test_weights_are_positive_and_sum_to_one_where_two_tiles_overlap(
    length: int, tile: int, overlap: int, scale: int
) -> None:
    spans = axis_spans(length, tile, overlap)
    total = np.zeros(length * scale, dtype=np.float32)
    cover = np.zeros(length * scale, dtype=np.int32)
    for i, span in enumerate(spans):
        w = axis_weights(spans, i, scale)
        assert w.shape == (span.length * scale,)
        assert w.min() > 0 and w.max() <= 1
        total[span.start * scale : span.end * scale] += w
        cover[span.start * scale : span.end * scale] += 1
    assert np.all(cover >= 1)
    # a linear crossfade: where exactly two tiles meet, their weights add up to one
    np.testing.assert_allclose(total[cover <= 2], 1.0, atol=1e-5)


def test_weight_is_one_inside_and_ramps_only_towards_neighbours() -> None:
    spans = axis_spans(1400, 512, 32)
    assert [tuple(s) for s in spans] == [(0, 488), (456, 944), (912, 1400)]  # 32 px overlaps
    first, middle, last = (axis_weights(spans, i) for i in range(3))
    assert np.all(first[: 488 - 32] == 1.0) and first[-1] < 0.02  # the image-edge side is not ramped
    assert middle[0] < 0.02 and middle[-1] < 0.02 and np.all(middle[32 : 488 - 32] == 1.0)
    assert np.all(last[32:] == 1.0) and last[0] < 0.02
    assert np.all(np.diff(middle[:32]) > 0) and np.all(np.diff(middle[-32:]) < 0)


@given(
    st.integers(1, 120),
    st.integers(1, 120),
    st.integers(8, 64),
    st.integers(0, 40),
    st.sampled_from([1, 2, 3]),
)
def test_accumulating_a_constant_gives_the_constant_and_tiles_of_an_image_give_the_image(
    width: int, height: int, tile: int, overlap: int, scale: int
) -> None:
    grid = tile_grid(width, height, tile, overlap)
    rng = np.random.default_rng(width * 1000 + height)
    image = rng.random((height * scale, width * scale, 3), dtype=np.float32)
    acc = Accumulator(height * scale, width * scale, 3)
    boxes = grid.boxes()
    assert len(boxes) == grid.count == len(grid.columns) * len(grid.rows)
    for index, box in enumerate(boxes):
        out = geometry.scale(box, scale)
        rows, cols = geometry.slices(out)
        acc.add(out, image[rows, cols], grid.weight(index % len(grid.columns), index // len(grid.columns), scale))
    np.testing.assert_allclose(acc.result(), image, rtol=1e-5, atol=1e-6)


def test_accumulator_refuses_mismatched_tiles_and_reports_uncovered_pixels() -> None:
    acc = Accumulator(4, 4, 3)
    with pytest.raises(ValueError):
        acc.add(Rect(0, 0, 2, 2), np.zeros((3, 2, 3), np.float32), np.ones((2, 2), np.float32))
    acc.add(Rect(0, 0, 2, 2), np.zeros((2, 2, 3), np.float32), np.ones((2, 2), np.float32))
    assert not acc.covered()
    with pytest.raises(RuntimeError):
        acc.result()


def test_box_scaling_and_slices() -> None:
    box = geometry.scale(Rect(3, 5, 7, 2), 4)
    assert box == Rect(12, 20, 28, 8)
    a = np.zeros((40, 40))
    a[geometry.slices(box)] = 1
    assert a.sum() == 28 * 8 and a[20, 12] == 1 and a[19, 12] == 0
