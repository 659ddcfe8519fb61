"""Geometry and masks of the tiled img2img refine after an upscale (numpy, scipy.ndimage).

The idea of Ultimate SD Upscale: the upscaled image is cut into abutting tiles of about
``refine_tile`` (``tiles.partition_spans``); each tile is refined from a crop padded by
``refine_padding`` so the model sees its surroundings, and pasted back through the tile's mask
feathered by ``refine_mask_blur``. Tiles run in order on the working image, so a tile's padding
already holds its refined neighbours.

Seam fix, over the borders between those tiles:
- ``band``: a band ``seam_band_width`` wide centred on each border, in one step per tile length
  along it; the mask is a tent across the band (1 on the border, 0 at the band edges).
- ``half_tile``: tiles offset by half a tile so each is centred on a border (first the
  horizontal borders, then the vertical ones); the mask is a tent across the border.

Masks are products of an x and a y profile (flat or tent), so the Gaussian feather of the
whole mask is the product of two 1-D blurs. A crop side on the image edge is feathered as if
the image went on (edge-replicated), so the mask stays 1 up to the image edge.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from latentbrush.protocol import Rect, Size, UpscaleParams
from scipy import ndimage

from .tiles import Span, partition_spans

SEAM_BAND_MIN = 64  # USDU's default seam-fix width


class AxisProfile(NamedTuple):
    """The mask along one axis: 1 over ``span`` (flat), or a tent peaking at ``seam`` inside ``span``."""

    span: Span  # where the step repaints, image coordinates
    crop: Span  # what the refine function sees on this axis
    seam: int | None = None
    half_width: float = 0.0

    def values(self) -> np.ndarray:
        """The profile over ``crop`` (float32, before feathering)."""
        pos = np.arange(self.crop.start, self.crop.end, dtype=np.float32) + 0.5
        inside = (pos >= self.span.start) & (pos < self.span.end)
        if self.seam is None:
            return inside.astype(np.float32)
        tent = np.clip(1.0 - np.abs(pos - self.seam) / self.half_width, 0.0, 1.0)
        return (tent * inside).astype(np.float32)


class RefineStep(NamedTuple):
    """One call of the refine function."""

    x: AxisProfile
    y: AxisProfile
    kind: str  # "tile", "band" or "half_tile"

    @property
    def crop(self) -> Rect:
        return Rect(self.x.crop.start, self.y.crop.start, self.x.crop.length, self.y.crop.length)

    def mask(self, blur: int, image: Size) -> np.ndarray:
        """Feathered mask over ``crop`` (float32 in [0, 1])."""
        wy = feather(self.y.values(), blur, self.y.crop.start == 0, self.y.crop.end == image.height)
        wx = feather(self.x.values(), blur, self.x.crop.start == 0, self.x.crop.end == image.width)
        return np.outer(wy, wx)


def feather(profile: np.ndarray, blur: int, extend_start: bool, extend_end: bool) -> np.ndarray:
    """1-D Gaussian blur, sigma = blur / 2, truncated at +-blur (so a feather reaches ``blur`` px).

    Ends on the image edge are padded by replication, others by zeros (one mode per end, which
    ``scipy.ndimage`` does not offer, hence the explicit padding).
    """
    if blur <= 0 or profile.size == 0:
        return profile.astype(np.float32)
    values = profile.astype(np.float64)
    start = np.full(blur, values[0] if extend_start else 0.0)
    end = np.full(blur, values[-1] if extend_end else 0.0)
    padded = np.concatenate([start, values, end])
    blurred = ndimage.gaussian_filter1d(padded, sigma=blur / 2.0, truncate=2.0, mode="constant")
    return blurred[blur:-blur].astype(np.float32)


def _padded(span: Span, padding: int, length: int) -> Span:
    return Span(max(0, span.start - padding), min(length, span.end + padding))


def seam_band_width(tile: int, blur: int) -> int:
    """Width of a seam-fix band: at least 64 px and four feathers, at most half a tile."""
    return min(max(SEAM_BAND_MIN, 4 * blur), max(tile // 2, 2))


def _flat(span: Span, padding: int, length: int) -> AxisProfile:
    return AxisProfile(span, _padded(span, padding, length))


def _tent(seam: int, half_width: float, padding: int, length: int) -> AxisProfile:
    span = Span(max(0, seam - math.ceil(half_width)), min(length, seam + math.ceil(half_width)))
    return AxisProfile(span, _padded(span, padding, length), seam, half_width)


def tile_steps(size: Size, tile: int, padding: int) -> tuple[RefineStep, ...]:
    """The main pass: abutting tiles row by row, each with its padded crop."""
    columns, rows = partition_spans(size.width, tile), partition_spans(size.height, tile)
    return tuple(
        RefineStep(_flat(c, padding, size.width), _flat(r, padding, size.height), "tile") for r in rows for c in columns
    )


def band_steps(size: Size, tile: int, padding: int, blur: int) -> tuple[RefineStep, ...]:
    columns, rows = partition_spans(size.width, tile), partition_spans(size.height, tile)
    half = seam_band_width(tile, blur) / 2
    vertical = tuple(
        RefineStep(_tent(c.start, half, padding, size.width), _flat(r, padding, size.height), "band")
        for c in columns[1:]
        for r in rows
    )
    horizontal = tuple(
        RefineStep(_flat(c, padding, size.width), _tent(r.start, half, padding, size.height), "band")
        for r in rows[1:]
        for c in columns
    )
    return vertical + horizontal


def half_tile_steps(size: Size, tile: int, padding: int) -> tuple[RefineStep, ...]:
    columns, rows = partition_spans(size.width, tile), partition_spans(size.height, tile)
    across_rows = tuple(
        RefineStep(
            _flat(c, padding, size.width),
            _tent(r.start, min(p.length, r.length) / 2, padding, size.height),
            "half_tile",
        )
        for p, r in itertools.pairwise(rows)
        for c in columns
    )
    across_columns = tuple(
        RefineStep(
            _tent(c.start, min(p.length, c.length) / 2, padding, size.width),
            _flat(r, padding, size.height),
            "half_tile",
        )
        for p, c in itertools.pairwise(columns)
        for r in rows
    )
    return across_rows + across_columns


def refine_steps(size: Size, params: UpscaleParams) -> tuple[RefineStep, ...]:
    """Every refine call of a job, in order: the tiles, then the chosen seam fix."""
    tile, blur = params.refine_tile, params.refine_mask_blur
    padding = max(params.refine_padding, blur)  # the feather must fit inside the crop
    steps = tile_steps(size, tile, padding)
    if params.seam_fix == "band":
        steps += band_steps(size, tile, padding, blur)
    elif params.seam_fix == "half_tile":
        steps += half_tile_steps(size, tile, padding)
    return steps
