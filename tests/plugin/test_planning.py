"""Region planning against the anchor formulas; expected numbers are worked out by hand in comments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from latentbrush.plugin.core.geometry import Bounds, Extent, contains
from latentbrush.plugin.core.planning import (
    MaskEdges,
    PlanSettings,
    context_padding,
    mask_edges,
    plan_from_mask,
    plan_generate,
    plan_region,
    plan_whole_canvas,
)


def test_centred_selection_on_1024_canvas():
    plan = plan_region(Extent(1024, 1024), Bounds(400, 400, 100, 100))
    # diagonal 141 -> feather max(14.1, 32) = 32, grow 4 + 16 = 20, blend min(25, 20 + 16) = 25
    assert plan.edges == MaskEdges(grow=20, feather=32, blend=25)
    # region = mask padded by the reach 20 + 32 + 25 = 77
    assert plan.region == Bounds(323, 323, 254, 254)
    # padding max(1024 // 16, 254 // 2) = 127 -> 508, raised to the 512 minimum, centred
    assert context_padding(plan.region, plan.canvas) == 127
    assert plan.context == Bounds(194, 194, 512, 512)
    assert plan.has_mask and plan.mask_bounds == Bounds(400, 400, 100, 100)


def test_selection_touching_right_border_of_odd_canvas():
    canvas = Extent(1001, 601)
    plan = plan_region(canvas, Bounds(950, 300, 51, 40))
    # reach 77 -> region clipped at the right edge: x 873 .. 1001
    assert plan.region == Bounds(873, 223, 128, 194)
    # padding max(1001 // 16 = 62, 161 * 0.5 = 80) -> 288 x 354 -> min 512 square;
    # centred x would be 681, shifted left so the box ends at the canvas edge (1001 - 512 = 489)
    assert plan.context == Bounds(489, 64, 512, 512)


def test_canvas_smaller_than_min_size():
    plan = plan_region(Extent(300, 200), Bounds(10, 10, 20, 20))
    assert plan.region == Bounds(0, 0, 107, 107)
    # 512 wanted; width capped at 300, then down to the multiple 296; height 200 is a multiple
    assert plan.context == Bounds(0, 0, 296, 200)


def test_one_pixel_on_16k_canvas():
    plan = plan_region(Extent(16384, 16384), Bounds(8000, 8000, 1, 1))
    assert plan.region == Bounds(7923, 7923, 155, 155)
    # padding 16384 // 16 = 1024 -> 155 + 2048 = 2203 -> 2208 (multiple of 8), centred
    assert plan.context == Bounds(6897, 6897, 2208, 2208)


def test_refine_context_is_the_region_rounded_to_multiples():
    plan = plan_region(Extent(1024, 768), Bounds(100, 100, 50, 30), strength=0.5)
    # feather 0.5 * 32 = 16, grow 4 + 8 = 12, blend min(25, 12 + 8) = 20; reach 48
    assert plan.edges == MaskEdges(12, 16, 20)
    assert plan.region == Bounds(52, 52, 146, 126)
    assert plan.context == Bounds(49, 51, 152, 128)  # 146 -> 152, 126 -> 128, centred


def test_square_bias_zero_keeps_aspect():
    wide = plan_region(Extent(4096, 4096), Bounds(1000, 2000, 1200, 100), settings=PlanSettings(square_bias=0.0))
    square = plan_region(Extent(4096, 4096), Bounds(1000, 2000, 1200, 100))
    assert wide.context.width > wide.context.height
    assert square.context.width == square.context.height


def test_bigger_masks_get_softer_edges():
    small = mask_edges(Bounds(0, 0, 64, 64), 1.0)
    big = mask_edges(Bounds(0, 0, 2000, 1500), 1.0)
    assert small.feather == 32 and big.feather == 250  # 0.1 * 2500
    assert big.blend == 25 and big.grow == 4 + 125


def test_no_selection_and_full_selection_are_the_whole_canvas():
    canvas = Extent(123, 77)
    whole = plan_whole_canvas(canvas)
    assert plan_region(canvas, None) == whole
    assert plan_from_mask(canvas, None) == whole
    assert plan_from_mask(canvas, b"\xff" * canvas.pixels) == whole
    assert plan_from_mask(canvas, b"\0" * canvas.pixels) == whole  # an empty selection selects nothing
    assert whole.region == whole.context == Bounds(0, 0, 123, 77) and not whole.has_mask
    partial = plan_from_mask(canvas, b"\x80" * canvas.pixels)  # soft, whole-canvas selection is a mask
    assert partial.has_mask and partial.mask_bounds == Bounds(0, 0, 123, 77)


def test_plan_from_mask_with_offset_box():
    canvas = Extent(640, 480)
    mask = np.zeros((50, 40), np.uint8)
    mask[10:20, 5:15] = 255
    plan = plan_from_mask(canvas, mask.tobytes(), Bounds(100, 200, 40, 50))
    assert plan.mask_bounds == Bounds(105, 210, 10, 10)


def test_generate_into_selection_paints_just_the_region():
    plan = plan_generate(plan_region(Extent(640, 480), Bounds(10, 10, 100, 50)))
    # region: mask padded by the reach 77 -> x -67 .. 187, y -67 .. 137, clipped at the top-left
    # corner -> 187 x 137, then rounded out to 192 x 144; txt2img has no image, so the context is
    # that same box
    assert plan.region == plan.context == Bounds(0, 0, 192, 144)
    assert plan.edges == MaskEdges(20, 32, 25)  # the mask still shapes the alpha


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_selection_touching_each_border(side):
    canvas = Extent(777, 555)
    box = {
        "left": Bounds(0, 200, 30, 40),
        "right": Bounds(747, 200, 30, 40),
        "top": Bounds(300, 0, 30, 40),
        "bottom": Bounds(300, 515, 30, 40),
    }[side]
    plan = plan_region(canvas, box)
    check_invariants(plan)
    edge = {"left": plan.context.x, "top": plan.context.y,
            "right": canvas.width - plan.context.right, "bottom": canvas.height - plan.context.bottom}[side]
    assert edge == 0  # shifted against the border, not cut
    assert plan.context.width == plan.context.height == 512


def check_invariants(plan):
    canvas = Bounds.of(plan.canvas)
    assert contains(canvas, plan.context)
    assert contains(plan.context, plan.region)
    assert contains(plan.region, plan.mask_bounds)
    for side, limit in ((plan.context.width, plan.canvas.width), (plan.context.height, plan.canvas.height)):
        assert side % 8 == 0 or side == limit
        assert side >= min(512, limit - limit % 8) or side == limit


@given(
    cw=st.integers(1, 3000), ch=st.integers(1, 3000),
    fx=st.floats(0, 1), fy=st.floats(0, 1), fw=st.floats(0, 1), fh=st.floats(0, 1),
    strength=st.sampled_from([1.0, 0.6]),
)
def test_invariants_hold_for_any_selection(cw, ch, fx, fy, fw, fh, strength):
    x, y = int(fx * (cw - 1)), int(fy * (ch - 1))
    w, h = max(1, int(fw * (cw - x))), max(1, int(fh * (ch - y)))
    plan = plan_region(Extent(cw, ch), Bounds(x, y, w, h), strength)
    if strength == 1.0:
        check_invariants(plan)
    else:
        assert contains(Bounds.of(plan.canvas), plan.context) and contains(plan.context, plan.region)
        assert plan.context.width % 8 == 0 or plan.context.width == cw
        assert plan.context.width - plan.region.width < 8 or plan.context.width == cw


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="square_bias"):
        PlanSettings(square_bias=2)
    with pytest.raises(ValueError, match="multiple"):
        PlanSettings(multiple=0)
    with pytest.raises(ValueError, match="does not overlap"):
        plan_region(Extent(10, 10), Bounds(20, 20, 5, 5))
