"""Tile geometry and feathered blending for tiled upscaling (pure numpy, no torch).

A grid is the product of two 1-D span lists. Every tile of a grid has the same size (the last
tile of a row is not a cut-off remainder), so a model's ``multiple_of`` / ``square`` size
requirements hold for every tile once they hold for the tile size. Tiles are as few as the tile
size allows, as small as that count allows, and spread evenly, so neighbours overlap by at least
the requested overlap and the overlap work stays small.

Blending is accumulate-and-normalise: every tile adds ``weight * pixels`` and ``weight`` to two
buffers and the result is their quotient. A tile's weight is 1 in its interior and ramps
linearly down across each overlap it shares with a neighbour (never to exactly 0, so the
weight sum is positive everywhere); sides on the image border are not ramped.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from latentbrush.protocol.geometry import Rect, slices


class Span(NamedTuple):
    """Half-open interval [start, end) on one axis."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


class TileGrid(NamedTuple):
    """Tiles as the product of column spans (x) and row spans (y)."""

    columns: tuple[Span, ...]
    rows: tuple[Span, ...]

    @property
    def count(self) -> int:
        return len(self.columns) * len(self.rows)

    def boxes(self) -> tuple[Rect, ...]:
        """All tiles, row-major (left to right, then top to bottom)."""
        return tuple(Rect(c.start, r.start, c.length, r.length) for r in self.rows for c in self.columns)

    def weight(self, column: int, row: int, scale: int = 1) -> np.ndarray:
        """Feathered blend weight (h x w float32) of one tile, in a space ``scale`` times finer."""
        wx = axis_weights(self.columns, column, scale)
        wy = axis_weights(self.rows, row, scale)
        return np.outer(wy, wx)


def fit_tile_size(tile: int, minimum: int = 0, multiple_of: int = 1) -> int:
    """The tile side to use for a model: ``tile`` rounded down to ``multiple_of``, at least ``minimum``."""
    if tile < 1 or multiple_of < 1 or minimum < 0:
        raise ValueError(f"bad tile size {tile} / multiple_of {multiple_of} / minimum {minimum}")
    side = max(tile // multiple_of * multiple_of, multiple_of)
    floor = math.ceil(minimum / multiple_of) * multiple_of
    return max(side, floor)


def clamp_overlap(tile: int, overlap: int) -> int:
    """Overlaps of half a tile or more would let three tiles cover one pixel; cap at tile // 2."""
    return max(0, min(overlap, tile // 2))


def axis_spans(length: int, tile: int, overlap: int, multiple_of: int = 1) -> tuple[Span, ...]:
    """Evenly spread, equally long spans covering [0, length), neighbours overlapping >= ``overlap``.

    As few spans as ``tile`` allows, each only as long as needed (rounded up to ``multiple_of``,
    at most ``tile`` when ``tile`` is a multiple of it): 1024 px in 512 px tiles with a 32 px
    overlap is three 363 px spans, not three 512 px ones. A length that fits in one tile gives
    the single span [0, length).
    """
    if length < 1 or tile < 1 or multiple_of < 1:
        raise ValueError(f"length {length}, tile {tile} and multiple_of {multiple_of} must be positive")
    if length <= tile:
        return (Span(0, length),)
    overlap = clamp_overlap(tile, overlap)
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    side = math.ceil((length + (count - 1) * overlap) / count)
    side = min(length, math.ceil(side / multiple_of) * multiple_of)
    travel = length - side  # distance between the first and the last start
    last = count - 1
    # integer rounding of i * travel / last, so the first starts at 0 and the last ends at length
    starts = [(i * travel * 2 + last) // (2 * last) for i in range(count)]
    return tuple(Span(s, s + side) for s in starts)


def tile_grid(width: int, height: int, tile: int, overlap: int, multiple_of: int = 1, square: bool = False) -> TileGrid:
    """Grid of equal tiles of at most ``tile`` x ``tile`` covering width x height (see ``axis_spans``).

    ``square``: both sides get the longer of the two tile sides (where the image allows it).
    """
    columns = axis_spans(width, tile, overlap, multiple_of)
    rows = axis_spans(height, tile, overlap, multiple_of)
    if square and len(columns) > 1 and len(rows) > 1 and columns[0].length != rows[0].length:
        side = max(columns[0].length, rows[0].length)
        columns, rows = _respread(columns, side, width), _respread(rows, side, height)
    return TileGrid(columns, rows)


def _respread(spans: tuple[Span, ...], side: int, length: int) -> tuple[Span, ...]:
    """The same number of spans, ``side`` long, spread evenly over ``length``."""
    last = len(spans) - 1
    travel = length - side
    return tuple(Span(s, s + side) for s in ((i * travel * 2 + last) // (2 * last) for i in range(len(spans))))


def partition_spans(length: int, tile: int) -> tuple[Span, ...]:
    """Split [0, length) into ceil(length / tile) abutting spans whose lengths differ by at most 1."""
    if length < 1 or tile < 1:
        raise ValueError(f"length {length} and tile {tile} must be positive")
    count = math.ceil(length / tile)
    bounds = [i * length // count for i in range(count + 1)]
    return tuple(Span(a, b) for a, b in itertools.pairwise(bounds))


def ramp(length: int) -> np.ndarray:
    """Rising linear ramp of ``length`` samples strictly inside (0, 1): (k + 0.5) / length."""
    return (np.arange(length, dtype=np.float32) + 0.5) / max(length, 1)


def axis_weights(spans: tuple[Span, ...], index: int, scale: int = 1) -> np.ndarray:
    """1-D weight of span ``index``: ramps across the overlaps with its neighbours, 1 elsewhere."""
    span = spans[index]
    weights = np.ones(span.length * scale, dtype=np.float32)
    if index > 0:
        left = max(0, spans[index - 1].end - span.start) * scale
        left = min(left, weights.size)
        weights[:left] = np.minimum(weights[:left], ramp(left))
    if index < len(spans) - 1:
        right = max(0, span.end - spans[index + 1].start) * scale
        right = min(right, weights.size)
        if right:
            weights[-right:] = np.minimum(weights[-right:], ramp(right)[::-1])
    return weights


class Accumulator:
    """Sums weighted tiles into an H x W x C float32 image; ``result()`` normalises by the weights."""

    def __init__(self, height: int, width: int, channels: int) -> None:
        self._sum = np.zeros((height, width, channels), dtype=np.float32)
        self._weight = np.zeros((height, width), dtype=np.float32)

    def add(self, box: Rect, pixels: np.ndarray, weight: np.ndarray) -> None:
        if pixels.shape[:2] != (box.height, box.width) or weight.shape != (box.height, box.width):
            raise ValueError(f"tile {pixels.shape[:2]} / weight {weight.shape} do not match box {box}")
        rows, cols = slices(box)
        self._sum[rows, cols] += pixels * weight[..., None]
        self._weight[rows, cols] += weight

    def covered(self) -> bool:
        return bool(self._weight.min() > 0)

    def result(self) -> np.ndarray:
        """The blended image (the accumulator is used up); raises if a pixel was never covered (a grid bug)."""
        if not self.covered():
            raise RuntimeError("tiles left pixels uncovered")
        np.divide(self._sum, self._weight[..., None], out=self._sum)  # in place: no second output-sized array
        return self._sum
