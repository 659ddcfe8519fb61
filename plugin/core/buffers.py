"""Raw pixel buffers cut and pasted by rectangle (no Qt, no host API; numpy only to speed up, when installed).

A buffer is tightly packed rows of ``bpp`` bytes per pixel covering ``Rect.of(size)``.
Rectangles, sizes and the functions on them are the protocol's (``latentbrush.protocol.geometry``),
the same values the wire carries.
"""

from __future__ import annotations

from latentbrush.protocol.geometry import Rect, Size, intersect, relative_to


def _check_buffer(data: bytes | bytearray | memoryview, extent: Size, bpp: int) -> None:
    expected = extent.width * extent.height * bpp
    if len(data) != expected:
        raise ValueError(f"buffer is {len(data)} bytes, expected {expected} for {extent.width}x{extent.height}x{bpp}")


def mask_bounds(data: bytes | bytearray | memoryview, extent: Size) -> Rect | None:
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
    return Rect(left, top, right - left, bottom - top + 1)


def changed_box(old: bytes | bytearray | memoryview, new: bytes | bytearray | memoryview, extent: Size,
                bpp: int) -> Rect | None:
    """Bounding box of the pixels where two buffers of ``extent`` differ, or None when they are equal."""
    _check_buffer(old, extent, bpp)
    _check_buffer(new, extent, bpp)
    try:
        import numpy as np
    except ImportError:  # hosts without numpy (Krita may lack it): the same answer at bytes speed
        return _changed_box_bytes(bytes(old), bytes(new), extent, bpp)
    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32}.get(bpp)
    if dtype is None:
        return _changed_box_bytes(bytes(old), bytes(new), extent, bpp)
    a = np.frombuffer(old, dtype=dtype).reshape(extent.height, extent.width)
    b = np.frombuffer(new, dtype=dtype).reshape(extent.height, extent.width)
    rows = np.zeros(extent.height, dtype=bool)
    cols = np.zeros(extent.width, dtype=bool)
    band = max(1, (1 << 20) // (extent.width * bpp))  # ~1 MiB of rows at a time: no image-sized temporaries
    for top in range(0, extent.height, band):
        differs = a[top : top + band] != b[top : top + band]
        rows[top : top + band] = differs.any(axis=1)
        cols |= differs.any(axis=0)
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    if not len(ys):
        return None
    return Rect(int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1))


def _changed_box_bytes(old: bytes, new: bytes, extent: Size, bpp: int) -> Rect | None:
    if old == new:  # one memcmp
        return None
    row = extent.width * bpp
    left, right, top, bottom = extent.width, -1, -1, -1
    for y in range(extent.height):
        a, b = old[y * row : (y + 1) * row], new[y * row : (y + 1) * row]
        if a == b:
            continue
        top = y if top < 0 else top
        bottom = y
        diff = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")  # the first and last set bits: the columns
        first = (row * 8 - diff.bit_length()) // 8
        last = row - 1 - ((diff & -diff).bit_length() - 1) // 8
        left, right = min(left, first // bpp), max(right, last // bpp)
    return Rect(left, top, right - left + 1, bottom - top + 1)


def crop(data: bytes | bytearray | memoryview, extent: Size, bpp: int, box: Rect) -> bytes:
    """The pixels of ``box`` from a buffer covering ``Rect.of(extent)``; outside is zero."""
    _check_buffer(data, extent, bpp)
    if box.is_empty():
        raise ValueError(f"cannot crop an empty box {box}")
    src = memoryview(data)
    inside = intersect(box, Rect.of(extent))
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
        paste(out, box.size, bpp, crop(data, extent, bpp, inside), relative_to(inside, box))
    return bytes(out)


def paste(
    dst: bytearray, extent: Size, bpp: int, src: bytes | bytearray | memoryview, box: Rect
) -> None:
    """Copy ``src`` (covering ``box``) into ``dst`` (covering ``Rect.of(extent)``), clipped; in place."""
    _check_buffer(dst, extent, bpp)
    _check_buffer(src, box.size, bpp)
    inside = intersect(box, Rect.of(extent))
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
