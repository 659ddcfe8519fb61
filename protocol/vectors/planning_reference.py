"""SPEC.md section 9.10 (context planning) written out step by step: the source of planning.json.

Standard library only and independent of the code it tests (``plugin/core/planning.py``): a
transcription of the SPEC text, in the order and with the operations the SPEC names, so a port
to JavaScript or C++ can be read against it line by line. Rectangles are ``(x, y, w, h)`` tuples.
"""

from __future__ import annotations

import math

Box = tuple[int, int, int, int]

CANVAS_PAD_DIVISOR = 16
MASK_PAD_FACTOR = 0.5
MIN_CONTEXT_SIDE = 512
MULTIPLE = 8
FEATHER_FRACTION = 0.10
MIN_FEATHER = 32
MIN_FEATHER_SIDE_FRACTION = 0.25
GROW_OFFSET = 4
MAX_BLEND = 25
BLEND_SIDE_DIVISOR = 5
MAX_EDGE = 1024


def half_up(v: float) -> int:
    return math.floor(v + 0.5)


def clip(box: Box, cw: int, ch: int) -> Box | None:
    x0, y0 = max(box[0], 0), max(box[1], 0)
    x1, y1 = min(box[0] + box[2], cw), min(box[1] + box[3], ch)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1 - x0, y1 - y0)


def edges(b: Box, strength: float, outward: int, soft: bool) -> tuple[int, int, int, int]:
    """Step 2: (grow, feather, blend, outward)."""
    s = min(max(strength, 0.0), 1.0)
    outward = min(outward, MAX_EDGE)
    floor = min(MIN_FEATHER, MIN_FEATHER_SIDE_FRACTION * min(b[2], b[3]))
    feather = half_up(s * max(FEATHER_FRACTION * math.sqrt(b[2] * b[2] + b[3] * b[3]), floor))
    grow = max(GROW_OFFSET + feather // 2, outward)
    blend = 0 if soft else min(MAX_BLEND, grow + feather // 2, min(b[2], b[3]) // BLEND_SIDE_DIVISOR)
    return min(grow, MAX_EDGE), min(feather, MAX_EDGE), min(blend, MAX_EDGE), outward


def padded(b: Box, by: int, cw: int, ch: int) -> Box:
    return clip((b[0] - by, b[1] - by, b[2] + 2 * by, b[3] + 2 * by), cw, ch) or b  # holds b


def side(wanted: int, inner: int, limit: int) -> int:
    """Step 5: one side of the fitted box."""
    s = min(-(-max(wanted, inner) // MULTIPLE) * MULTIPLE, limit)
    if s % MULTIPLE and s - s % MULTIPLE >= inner:
        s -= s % MULTIPLE
    return s


def place(inner_start: int, inner_size: int, size: int, limit: int) -> int:
    """Step 5: the start of a span of ``size`` around the inner span, centred, kept in the canvas."""
    start = inner_start - (size - inner_size) // 2
    lowest = max(0, inner_start + inner_size - size)
    highest = min(inner_start, limit - size)
    return min(max(start, lowest), highest)


def fit(r: Box, w: int, h: int, cw: int, ch: int) -> Box:
    fw, fh = side(w, r[2], cw), side(h, r[3], ch)
    return place(r[0], r[2], fw, cw), place(r[1], r[3], fh, ch), fw, fh


def plan(canvas: tuple[int, int], selection: Box | None, strength: float, generate: bool, outward: int = 0,
         soft: bool = False) -> dict:
    """The whole of section 9.10 for one case; the dict is a vector's ``expect``."""
    cw, ch = canvas
    whole = (0, 0, cw, ch)
    if selection is None:  # step 1: no selection, the whole canvas, no mask
        return {"has_mask": False, "mask_bounds": whole, "region": whole, "context": whole, "edges": (0, 0, 0, 0)}
    b = clip(selection, cw, ch)
    if b is None:
        raise ValueError("a selection outside the canvas is an error, not a vector")
    grow, feather, blend, outward = edges(b, strength, outward, soft)
    region = padded(b, outward, cw, ch)  # step 3
    denoised = padded(b, grow + feather, cw, ch)
    if generate:  # step 6: txt2img into a selection
        region = context = fit(region, region[2], region[3], cw, ch)
    elif strength < 1.0:  # step 4, refine
        context = fit(denoised, denoised[2], denoised[3], cw, ch)
    else:  # step 4, full strength
        pad = max(max(cw, ch) // CANVAS_PAD_DIVISOR, int((denoised[2] + denoised[3]) // 2 * MASK_PAD_FACTOR))
        w = max(denoised[2] + 2 * pad, MIN_CONTEXT_SIDE)
        h = max(denoised[3] + 2 * pad, MIN_CONTEXT_SIDE)
        w = h = max(w, h)  # square
        context = fit(denoised, w, h, cw, ch)
    return {"has_mask": True, "mask_bounds": b, "region": region, "context": context,
            "edges": (grow, feather, blend, outward)}
