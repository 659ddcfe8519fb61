"""Immutable geometry value types and pure functions on them (no Qt, no host API).

Rectangles are half-open pixel boxes in canvas coordinates: ``Bounds(x, y, w, h)`` covers
columns ``x .. x+w-1``. Raw buffers are tightly packed rows of ``bpp`` bytes per pixel.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Extent(NamedTuple):
    """A size in pixels."""

    width: int
    height: int

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


class Bounds(NamedTuple):
    """A pixel rectangle: top-left corner and size, in canvas coordinates."""

    x: int
    y: int
    width: int
    height: int

    @property
    def extent(self) -> Extent:
        return Extent(self.width, self.height)

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @staticmethod
    def of(extent: Extent) -> Bounds:
        """The whole of a canvas of ``extent``."""
        return Bounds(0, 0, extent.width, extent.height)


EMPTY = Bounds(0, 0, 0, 0)


def multiple_of(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    if multiple <= 1:
        return value
    return -(-value // multiple) * multiple


def contains(outer: Bounds, inner: Bounds) -> bool:
    return outer.x <= inner.x and outer.y <= inner.y and inner.right <= outer.right and inner.bottom <= outer.bottom


def intersect(a: Bounds, b: Bounds) -> Bounds:
    """The overlap of two rectangles; ``EMPTY`` when they do not overlap."""
    x, y = max(a.x, b.x), max(a.y, b.y)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    if right <= x or bottom <= y:
        return EMPTY
    return Bounds(x, y, right - x, bottom - y)


def union(a: Bounds, b: Bounds) -> Bounds:
    """The smallest rectangle holding both; an empty operand is ignored."""
    if a.is_empty():
        return b
    if b.is_empty():
        return a
    x, y = min(a.x, b.x), min(a.y, b.y)
    return Bounds(x, y, max(a.right, b.right) - x, max(a.bottom, b.bottom) - y)


def clamp(bounds: Bounds, canvas: Extent) -> Bounds:
    """Clip ``bounds`` to the canvas (shrinks; see ``move_inside`` to shift instead)."""
    return intersect(bounds, Bounds.of(canvas))


def move_inside(bounds: Bounds, canvas: Extent) -> Bounds:
    """Shift ``bounds`` so it lies inside the canvas, keeping its size where the canvas allows.

    A side longer than the canvas shrinks to the canvas side; nothing else changes size.
    """
    width, height = min(bounds.width, canvas.width), min(bounds.height, canvas.height)
    x = min(max(bounds.x, 0), canvas.width - width)
    y = min(max(bounds.y, 0), canvas.height - height)
    return Bounds(x, y, width, height)


def pad(
    bounds: Bounds, left: int, top: int | None = None, right: int | None = None, bottom: int | None = None
) -> Bounds:
    """Grow by ``left`` on every side, or by four separate amounts (CSS order: left, top, right, bottom)."""
    top = left if top is None else top
    right = left if right is None else right
    bottom = top if bottom is None else bottom
    return Bounds(bounds.x - left, bounds.y - top, bounds.width + left + right, bounds.height + top + bottom)


def grow_to(bounds: Bounds, width: int, height: int) -> Bounds:
    """Grow symmetrically around the centre to at least ``width`` x ``height`` (never shrinks)."""
    dw, dh = max(0, width - bounds.width), max(0, height - bounds.height)
    return Bounds(bounds.x - dw // 2, bounds.y - dh // 2, bounds.width + dw, bounds.height + dh)


def expand_to_multiple(bounds: Bounds, multiple: int, canvas: Extent | None = None) -> Bounds:
    """Grow width and height up to multiples of ``multiple`` around the centre.

    With a canvas, the result is then shifted inside it; a side that cannot reach a multiple
    within the canvas ends up as the canvas side.
    """
    grown = grow_to(bounds, multiple_of(bounds.width, multiple), multiple_of(bounds.height, multiple))
    return grown if canvas is None else move_inside(grown, canvas)


def scale(bounds: Bounds, factor: float) -> Bounds:
    """Scale about the origin; the result covers every pixel the scaled box touches."""
    x0, y0 = math.floor(bounds.x * factor), math.floor(bounds.y * factor)
    x1, y1 = math.ceil(bounds.right * factor), math.ceil(bounds.bottom * factor)
    return Bounds(x0, y0, x1 - x0, y1 - y0)


def translate(bounds: Bounds, dx: int, dy: int) -> Bounds:
    return Bounds(bounds.x + dx, bounds.y + dy, bounds.width, bounds.height)


def relative_to(bounds: Bounds, origin: Bounds) -> Bounds:
    """``bounds`` expressed in the coordinates of ``origin``'s top-left corner."""
    return translate(bounds, -origin.x, -origin.y)


# ----------------------------------------------------------------------------- raw buffers


def _check_buffer(data: bytes | bytearray | memoryview, extent: Extent, bpp: int) -> None:
    expected = extent.width * extent.height * bpp
    if len(data) != expected:
        raise ValueError(f"buffer is {len(data)} bytes, expected {expected} for {extent.width}x{extent.height}x{bpp}")


def mask_bounds(data: bytes | bytearray | memoryview, extent: Extent) -> Bounds | None:
    """Bounding box of the non-zero pixels of a gray8 buffer, or None when all are zero.

    Works a row at a time with bytes.strip, so a 16k x 16k mask is scanned at C speed.
    """
    _check_buffer(data, extent, 1)
    view = memoryview(data).cast("B")
    w, h = extent.width, extent.height
    blank = bytes(w)

    def row(y: int) -> bytes:  # one row at a time keeps memory flat on huge masks
        return view[y * w : (y + 1) * w].tobytes()

    top = next((y for y in range(h) if row(y) != blank), None)
    if top is None:
        return None
    bottom = next(y for y in range(h - 1, top - 1, -1) if row(y) != blank)
    left, right = w, 0
    for y in range(top, bottom + 1):
        line = row(y)
        end = len(line.rstrip(b"\0"))
        if end:
            left = min(left, w - len(line.lstrip(b"\0")))
            right = max(right, end)
    return Bounds(left, top, right - left, bottom - top + 1)


def crop(data: bytes | bytearray | memoryview, extent: Extent, bpp: int, box: Bounds) -> bytes:
    """The pixels of ``box`` from a buffer covering ``Bounds.of(extent)``; outside is zero."""
    _check_buffer(data, extent, bpp)
    if box.is_empty():
        raise ValueError(f"cannot crop an empty box {tuple(box)}")
    src = memoryview(data)
    inside = intersect(box, Bounds.of(extent))
    if inside == box:
        if box.x == 0 and box.width == extent.width:  # whole rows: one slice
            return bytes(src[box.y * extent.width * bpp : box.bottom * extent.width * bpp])
        row = box.width * bpp
        return b"".join(
            src[((y * extent.width) + box.x) * bpp : ((y * extent.width) + box.x) * bpp + row]
            for y in range(box.y, box.bottom)
        )
    out = bytearray(box.width * box.height * bpp)
    if not inside.is_empty():
        paste(out, box.extent, bpp, crop(data, extent, bpp, inside), relative_to(inside, box))
    return bytes(out)


def paste(
    dst: bytearray, extent: Extent, bpp: int, src: bytes | bytearray | memoryview, box: Bounds
) -> None:
    """Copy ``src`` (covering ``box``) into ``dst`` (covering ``Bounds.of(extent)``), clipped; in place."""
    _check_buffer(dst, extent, bpp)
    _check_buffer(src, box.extent, bpp)
    inside = intersect(box, Bounds.of(extent))
    if inside.is_empty():
        return
    view = memoryview(src)
    row = inside.width * bpp
    for y in range(inside.y, inside.bottom):
        s = ((y - box.y) * box.width + (inside.x - box.x)) * bpp
        d = (y * extent.width + inside.x) * bpp
        dst[d : d + row] = view[s : s + row]


def tighten(data: bytes | memoryview, width: int, height: int, bpp: int, stride: int | None) -> bytes:
    """Drop row padding: a buffer with ``stride`` bytes per row -> tightly packed rows."""
    row = width * bpp
    if stride is None or stride == row:
        return bytes(data)
    view = memoryview(data)
    return b"".join(view[y * stride : y * stride + row] for y in range(height))


def swap_red_blue(data: bytes | bytearray | memoryview) -> bytes:
    """rgba8 <-> bgra8 (the same swap both ways)."""
    if len(data) % 4:
        raise ValueError(f"4-byte pixel buffer expected, got {len(data)} bytes")
    out = bytearray(data)
    out[0::4], out[2::4] = out[2::4], out[0::4]
    return bytes(out)
