"""Pixel geometry and rounding shared by the server and every client (standard library only).

``Rect`` and ``Size`` are the wire types of SPEC.md and the geometry values of the code alike,
so a rectangle never needs converting between a message and a computation. Rectangles are
half-open pixel boxes: ``Rect(x, y, w, h)`` covers columns ``x .. x+w-1``. In code a rectangle
may be empty (``EMPTY``); on the wire its sides are at least 1 (the field metadata says so).

Every function is pure. Rounding to whole pixels is half up (``round_half_up``), as SPEC.md
requires; Python's ``round()`` rounds half to even, which a client in another language would not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # messages imports this module; the job type is only needed for annotations
    from .messages import JobRequest

__all__ = [
    "EMPTY",
    "MAX_SIDE",
    "Rect",
    "Size",
    "clamp",
    "expand_to_multiple",
    "grow_to",
    "intersect",
    "move_inside",
    "multiple_of",
    "pad",
    "relative_to",
    "round_half_up",
    "scale",
    "scaled_size",
    "slices",
    "translate",
    "union",
    "upscale_rect",
    "upscale_size",
]

MAX_SIDE = 65536  # no canvas side may exceed this, whatever the server's pixel limit


def _side(low: int) -> dict[str, int]:
    return {"min": low, "max": MAX_SIDE}  # the validate.py constraint shape (fields.constraint)


@dataclass(frozen=True)
class Size:
    """A size in pixels."""

    width: int = field(metadata=_side(1))
    height: int = field(metadata=_side(1))

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def longest_side(self) -> int:
        return max(self.width, self.height)

    @property
    def average_side(self) -> int:
        return (self.width + self.height) // 2

    @property
    def diagonal(self) -> float:
        return math.hypot(self.width, self.height)


@dataclass(frozen=True)
class Rect:
    """Pixel rectangle in canvas coordinates; x, y may be any value, size at least 1 on the wire."""

    x: int = field(metadata=_side(-MAX_SIDE))
    y: int = field(metadata=_side(-MAX_SIDE))
    width: int = field(metadata=_side(1))
    height: int = field(metadata=_side(1))

    @staticmethod
    def of(size: Size) -> Rect:
        """The whole of a canvas of ``size``."""
        return Rect(0, 0, size.width, size.height)

    @property
    def size(self) -> Size:
        return Size(self.width, self.height)

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def xywh(self) -> tuple[int, int, int, int]:
        """The four numbers in the order host APIs take them (Krita ``pixelData``, GIMP ``select_rectangle``)."""
        return self.x, self.y, self.width, self.height

    def contains(self, other: Rect) -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom


EMPTY = Rect(0, 0, 0, 0)


# ----------------------------------------------------------------------------- numbers


def round_half_up(value: float) -> int:
    """The nearest integer, halves away from minus infinity (10.5 -> 11, -0.5 -> 0): SPEC.md's rounding."""
    return math.floor(value + 0.5)


def multiple_of(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    if multiple <= 1:
        return value
    return -(-value // multiple) * multiple


# ----------------------------------------------------------------------------- rectangles


def intersect(a: Rect, b: Rect) -> Rect:
    """The overlap of two rectangles; ``EMPTY`` when they do not overlap."""
    x, y = max(a.x, b.x), max(a.y, b.y)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    if right <= x or bottom <= y:
        return EMPTY
    return Rect(x, y, right - x, bottom - y)


def union(a: Rect, b: Rect) -> Rect:
    """The smallest rectangle holding both; an empty operand is ignored."""
    if a.is_empty():
        return b
    if b.is_empty():
        return a
    x, y = min(a.x, b.x), min(a.y, b.y)
    return Rect(x, y, max(a.right, b.right) - x, max(a.bottom, b.bottom) - y)


def clamp(rect: Rect, canvas: Size) -> Rect:
    """Clip ``rect`` to the canvas (shrinks; see ``move_inside`` to shift instead)."""
    return intersect(rect, Rect.of(canvas))


def move_inside(rect: Rect, canvas: Size) -> Rect:
    """Shift ``rect`` so it lies inside the canvas, keeping its size where the canvas allows.

    A side longer than the canvas shrinks to the canvas side; nothing else changes size.
    """
    width, height = min(rect.width, canvas.width), min(rect.height, canvas.height)
    x = min(max(rect.x, 0), canvas.width - width)
    y = min(max(rect.y, 0), canvas.height - height)
    return Rect(x, y, width, height)


def pad(rect: Rect, left: int, top: int | None = None, right: int | None = None, bottom: int | None = None) -> Rect:
    """Grow by ``left`` on every side, or by four separate amounts (CSS order: left, top, right, bottom)."""
    top = left if top is None else top
    right = left if right is None else right
    bottom = top if bottom is None else bottom
    return Rect(rect.x - left, rect.y - top, rect.width + left + right, rect.height + top + bottom)


def grow_to(rect: Rect, width: int, height: int) -> Rect:
    """Grow symmetrically around the centre to at least ``width`` x ``height`` (never shrinks)."""
    dw, dh = max(0, width - rect.width), max(0, height - rect.height)
    return Rect(rect.x - dw // 2, rect.y - dh // 2, rect.width + dw, rect.height + dh)


def expand_to_multiple(rect: Rect, multiple: int, canvas: Size | None = None) -> Rect:
    """Grow width and height up to multiples of ``multiple`` around the centre.

    With a canvas, the result is then shifted inside it; a side that cannot reach a multiple
    within the canvas ends up as the canvas side.
    """
    grown = grow_to(rect, multiple_of(rect.width, multiple), multiple_of(rect.height, multiple))
    return grown if canvas is None else move_inside(grown, canvas)


def scale(rect: Rect, factor: float) -> Rect:
    """Scale about the origin; the result covers every pixel the scaled box touches (exact for integers)."""
    x0, y0 = math.floor(rect.x * factor), math.floor(rect.y * factor)
    x1, y1 = math.ceil(rect.right * factor), math.ceil(rect.bottom * factor)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def translate(rect: Rect, dx: int, dy: int) -> Rect:
    return Rect(rect.x + dx, rect.y + dy, rect.width, rect.height)


def relative_to(rect: Rect, origin: Rect) -> Rect:
    """``rect`` expressed in the coordinates of ``origin``'s top-left corner."""
    return translate(rect, -origin.x, -origin.y)


def slices(rect: Rect) -> tuple[slice, slice]:
    """(rows, columns) slices for indexing an H x W (x C) array with ``rect``."""
    return slice(rect.y, rect.bottom), slice(rect.x, rect.right)


# ----------------------------------------------------------------------------- upscaling (SPEC "Upscale")


def scaled_size(size: Size | Rect, factor: float) -> Size:
    """Each side times ``factor``, rounded half up, at least 1."""
    return Size(max(1, round_half_up(size.width * factor)), max(1, round_half_up(size.height * factor)))


def upscale_size(job: JobRequest) -> Size:
    """Size of an upscale result: ``upscale.target``, else the region times ``upscale.scale``."""
    if job.upscale is None:
        from .messages import UpscaleParams  # here, not at the top: messages imports this module

        params = UpscaleParams()
    else:
        params = job.upscale
    if params.target is not None:
        return params.target
    return scaled_size(job.region, params.scale)


def upscale_rect(job: JobRequest) -> Rect:
    """Where an upscale result lies in the upscaled canvas (the canvas scaled like the region)."""
    out = upscale_size(job)
    sx = out.width / job.region.width
    sy = out.height / job.region.height
    return Rect(round_half_up(job.region.x * sx), round_half_up(job.region.y * sy), out.width, out.height)
