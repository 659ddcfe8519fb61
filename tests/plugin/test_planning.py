"""Region planning against the anchor formulas; expected numbers are worked out by hand in comments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
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
from latentbrush.protocol.geometry import Rect, Size


def test_centred_selection_on_1024_canvas():
    plan = plan_region(Size(1024, 1024), Rect(400, 400, 100, 100))
    # feather max(0.1 * diagonal 141 = 14.1, min(32, 100 / 4 = 25)) = 25,
    # grow 4 + 12 = 16, blend min(25, 16 + 12) = 25
    assert plan.edges == MaskEdges(grow=16, feather=25, blend=25)
    # region = mask padded by the reach 16 + 25 + 25 = 66
    assert plan.region == Rect(334, 334, 232, 232)
    # padding max(1024 // 16 = 64, 232 / 2 = 116) = 116 -> 464, raised to the 512 minimum, centred:
    # 334 - (512 - 232) // 2 = 194
    assert context_padding(plan.region, plan.canvas) == 116
    assert plan.context == Rect(194, 194, 512, 512)
    assert plan.has_mask and plan.mask_bounds == Rect(400, 400, 100, 100)


def test_selection_touching_right_border_of_odd_canvas():
    canvas = Size(1001, 601)
    plan = plan_region(canvas, Rect(950, 300, 51, 40))
    # feather max(6.5, min(32, 40 / 4)) = 10, grow 4 + 5 = 9, blend min(25, 9 + 5) = 14: reach 33
    assert plan.edges == MaskEdges(9, 10, 14)
    # region x 917 .. 1034 clipped at the right edge to 917 .. 1001; y 267 .. 373
    assert plan.region == Rect(917, 267, 84, 106)
    # padding max(1001 // 16 = 62, 95 * 0.5 = 47) = 62 -> 208 x 230 -> min 512 square;
    # centred x would be 917 - 214 = 703, shifted left so the box ends at the edge (1001 - 512 = 489);
    # y = 267 - (512 - 106) // 2 = 64
    assert plan.context == Rect(489, 64, 512, 512)


def test_canvas_smaller_than_min_size():
    plan = plan_region(Size(300, 200), Rect(10, 10, 20, 20))
    # feather max(2.8, 20 / 4) = 5, grow 4 + 2 = 6, blend 8: reach 19 -> -9 .. 49, clipped at 0
    assert plan.region == Rect(0, 0, 49, 49)
    # 512 wanted; width capped at 300, then down to the multiple 296; height 200 is a multiple
    assert plan.context == Rect(0, 0, 296, 200)


def test_one_pixel_on_16k_canvas():
    plan = plan_region(Size(16384, 16384), Rect(8000, 8000, 1, 1))
    # feather max(0.14, 1 / 4) -> 0 (half up), grow 4, blend 4: reach 8
    assert plan.edges == MaskEdges(4, 0, 4)
    assert plan.region == Rect(7992, 7992, 17, 17)
    # padding 16384 // 16 = 1024 -> 17 + 2048 = 2065 -> 2072 (multiple of 8), centred: 7992 - 1027
    assert plan.context == Rect(6965, 6965, 2072, 2072)


def test_refine_context_is_the_region_rounded_to_multiples():
    plan = plan_region(Size(1024, 768), Rect(100, 100, 50, 30), strength=0.5)
    # feather 0.5 * max(5.8, 30 / 4 = 7.5) = 3.75 -> 4, grow 4 + 2 = 6, blend min(25, 6 + 2) = 8; reach 18
    assert plan.edges == MaskEdges(6, 4, 8)
    assert plan.region == Rect(82, 82, 86, 66)
    assert plan.context == Rect(81, 79, 88, 72)  # 86 -> 88 (x - 1), 66 -> 72 (y - 3)


def test_square_bias_zero_keeps_aspect():
    wide = plan_region(Size(4096, 4096), Rect(1000, 2000, 1200, 100), settings=PlanSettings(square_bias=0.0))
    square = plan_region(Size(4096, 4096), Rect(1000, 2000, 1200, 100))
    assert wide.context.width > wide.context.height
    assert square.context.width == square.context.height


def test_bigger_masks_get_softer_edges():
    tiny = mask_edges(Rect(0, 0, 64, 64), 1.0)
    small = mask_edges(Rect(0, 0, 200, 200), 1.0)
    big = mask_edges(Rect(0, 0, 2000, 1500), 1.0)
    assert tiny.feather == 16  # a quarter of the short side, below the 32 px minimum
    assert small.feather == 32  # the anchor's minimum (0.1 * 283 = 28 is less)
    assert big.feather == 250  # 0.1 * 2500
    assert big.blend == 25 and big.grow == 4 + 125


def test_no_selection_and_full_selection_are_the_whole_canvas():
    canvas = Size(123, 77)
    whole = plan_whole_canvas(canvas)
    assert plan_region(canvas, None) == whole
    assert plan_from_mask(canvas, None) == whole
    assert plan_from_mask(canvas, b"\xff" * canvas.pixels) == whole
    assert plan_from_mask(canvas, b"\0" * canvas.pixels) == whole  # an empty selection selects nothing
    assert whole.region == whole.context == Rect(0, 0, 123, 77) and not whole.has_mask
    partial = plan_from_mask(canvas, b"\x80" * canvas.pixels)  # soft, whole-canvas selection is a mask
    assert partial.has_mask and partial.mask_bounds == Rect(0, 0, 123, 77)


def test_plan_from_mask_with_offset_box():
    canvas = Size(640, 480)
    mask = np.zeros((50, 40), np.uint8)
    mask[10:20, 5:15] = 255
    plan = plan_from_mask(canvas, mask.tobytes(), Rect(100, 200, 40, 50))
    assert plan.mask_bounds == Rect(105, 210, 10, 10)


def test_generate_into_selection_paints_just_the_region():
    plan = plan_generate(plan_region(Size(640, 480), Rect(10, 10, 100, 50)))
    # feather max(11.2, 50 / 4 = 12.5) -> 13, grow 4 + 6 = 10, blend min(25, 10 + 6) = 16: reach 39
    # -> x -29 .. 149, y -29 .. 99, clipped at the top-left corner -> 149 x 99, rounded out to
    # 152 x 104; txt2img has no image, so the context is that same box
    assert plan.region == plan.context == Rect(0, 0, 152, 104)
    assert plan.edges == MaskEdges(10, 13, 16)  # the mask still shapes the alpha


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_selection_touching_each_border(side):
    canvas = Size(777, 555)
    box = {
        "left": Rect(0, 200, 30, 40),
        "right": Rect(747, 200, 30, 40),
        "top": Rect(300, 0, 30, 40),
        "bottom": Rect(300, 515, 30, 40),
    }[side]
    plan = plan_region(canvas, box)
    check_invariants(plan)
    edge = {"left": plan.context.x, "top": plan.context.y,
            "right": canvas.width - plan.context.right, "bottom": canvas.height - plan.context.bottom}[side]
    assert edge == 0  # shifted against the border, not cut
    assert plan.context.width == plan.context.height == 512


def check_invariants(plan):
    canvas = Rect.of(plan.canvas)
    assert canvas.contains(plan.context)
    assert plan.context.contains(plan.region)
    assert plan.region.contains(plan.mask_bounds)
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
    plan = plan_region(Size(cw, ch), Rect(x, y, w, h), strength)
    if strength == 1.0:
        check_invariants(plan)
    else:
        assert Rect.of(plan.canvas).contains(plan.context) and plan.context.contains(plan.region)
        assert plan.context.width % 8 == 0 or plan.context.width == cw
        assert plan.context.width - plan.region.width < 8 or plan.context.width == cw


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="square_bias"):
        PlanSettings(square_bias=2)
    with pytest.raises(ValueError, match="multiple"):
        PlanSettings(multiple=0)
    with pytest.raises(ValueError, match="does not overlap"):
        plan_region(Size(10, 10), Rect(20, 20, 5, 5))
