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
    has_soft_edge,
    mask_edges,
    plan_from_mask,
    plan_generate,
    plan_region,
    plan_whole_canvas,
)
from latentbrush.protocol.geometry import Rect, Size, clamp, pad


def test_centred_selection_on_1024_canvas():
    plan = plan_region(Size(1024, 1024), Rect(400, 400, 100, 100))
    # feather max(0.1 * diagonal 141 = 14.1, min(32, 100 / 4 = 25)) = 25,
    # grow 4 + 12 = 16, blend min(25, 16 + 12, 100 // 5 = 20) = 20
    assert plan.edges == MaskEdges(grow=16, feather=25, blend=20, outward=0)
    # the result covers the selection only (outward 0); the model repaints 16 + 25 = 41 px around it
    assert plan.region == Rect(400, 400, 100, 100)
    denoised = Rect(359, 359, 182, 182)
    # padding max(1024 // 16 = 64, 182 / 2 = 91) = 91 -> 364, raised to the 512 minimum, centred:
    # 359 - (512 - 182) // 2 = 194
    assert context_padding(denoised, plan.canvas) == 91
    assert plan.context == Rect(194, 194, 512, 512)
    assert plan.has_mask and plan.mask_bounds == Rect(400, 400, 100, 100)


def test_selection_touching_right_border_of_odd_canvas():
    canvas = Size(1001, 601)
    plan = plan_region(canvas, Rect(950, 300, 51, 40))
    # feather max(6.5, min(32, 40 / 4)) = 10, grow 4 + 5 = 9, blend min(25, 9 + 5, 40 // 5) = 8
    assert plan.edges == MaskEdges(9, 10, 8)
    assert plan.region == Rect(950, 300, 51, 40)
    # denoised: padded by 19 -> x 931 .. 1001 (clipped), y 281 .. 359: 70 x 78;
    # padding max(1001 // 16 = 62, 74 * 0.5 = 37) = 62 -> 194 x 202 -> min 512 square;
    # centred x would be 931 - 221 = 710, shifted left so the box ends at the edge (1001 - 512 = 489);
    # y = 281 - (512 - 78) // 2 = 64
    assert plan.context == Rect(489, 64, 512, 512)


def test_canvas_smaller_than_min_size():
    plan = plan_region(Size(300, 200), Rect(10, 10, 20, 20))
    # feather max(2.8, 20 / 4) = 5, grow 4 + 2 = 6, blend min(8, 20 // 5) = 4; the region is the selection
    assert plan.region == Rect(10, 10, 20, 20)
    # 512 wanted; width capped at 300, then down to the multiple 296; height 200 is a multiple
    assert plan.context == Rect(0, 0, 296, 200)


def test_one_pixel_on_16k_canvas():
    plan = plan_region(Size(16384, 16384), Rect(8000, 8000, 1, 1))
    # feather max(0.14, 1 / 4) -> 0 (half up), grow 4, blend min(4, 1 // 5) = 0: the model repaints
    # 4 px around it, the one pixel is opaque
    assert plan.edges == MaskEdges(4, 0, 0)
    assert plan.region == Rect(8000, 8000, 1, 1)
    # denoised 7996 + 9; padding 16384 // 16 = 1024 -> 9 + 2048 = 2057 -> 2064 (multiple of 8),
    # centred: 7996 - (2064 - 9) // 2 = 6969
    assert plan.context == Rect(6969, 6969, 2064, 2064)


def test_refine_context_is_the_denoised_box_rounded_to_multiples():
    plan = plan_region(Size(1024, 768), Rect(100, 100, 50, 30), strength=0.5)
    # feather 0.5 * max(5.8, 30 / 4 = 7.5) = 3.75 -> 4, grow 4 + 2 = 6, blend min(25, 6 + 2, 30 // 5) = 6
    assert plan.edges == MaskEdges(6, 4, 6)
    assert plan.region == Rect(100, 100, 50, 30)
    # denoised (90, 90, 70, 50): 70 -> 72 (x - 1), 50 -> 56 (y - 3)
    assert plan.context == Rect(89, 87, 72, 56)


def test_blend_outward_is_the_only_way_past_the_selection():
    plan = plan_region(Size(1024, 1024), Rect(400, 400, 100, 100), outward=30)
    # the painter's 30 px: the region grows by 30 and the model repaints at least that far (grow 30)
    assert plan.edges == MaskEdges(grow=30, feather=25, blend=20, outward=30)
    assert plan.region == Rect(370, 370, 160, 160) and plan.context.contains(Rect(345, 345, 210, 210))
    with pytest.raises(ValueError, match="outward"):
        mask_edges(Rect(0, 0, 10, 10), 1.0, outward=-1)


def test_a_feathered_selection_is_its_own_blend():
    canvas = Size(400, 300)
    hard = np.zeros((300, 400), np.uint8)
    hard[100:200, 100:300] = 255
    hard[99, 100:300] = 128  # one antialiased row is no soft edge
    soft = np.zeros((300, 400), np.uint8)
    soft[80:220, 80:320] = 100
    soft[100:200, 100:300] = 255  # a 20 px ramp all round: 240 x 140 - 200 x 100 partial pixels
    assert not has_soft_edge(hard.tobytes(), Rect(100, 99, 200, 101))
    assert has_soft_edge(soft.tobytes(), Rect(80, 80, 240, 140))
    assert plan_from_mask(canvas, hard.tobytes()).blend > 0
    feathered = plan_from_mask(canvas, soft.tobytes())
    assert feathered.blend == 0 and feathered.outward == 0 and feathered.region == Rect(80, 80, 240, 140)


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
    assert mask_edges(Rect(0, 0, 2000, 1500), 1.0, soft=True).blend == 0


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


def test_select_all_is_a_selection_when_inpaint_asks_for_it():
    canvas = Size(123, 77)
    plan = plan_from_mask(canvas, b"\xff" * canvas.pixels, whole_canvas_is_selection=True)
    assert plan.has_mask and plan.region == plan.context == Rect(0, 0, 123, 77)
    assert plan.outward == 0 and plan.edges.denoise_reach > 0  # the canvas edge is no selection edge (SPEC 9.4)


def test_plan_from_mask_with_offset_box():
    canvas = Size(640, 480)
    mask = np.zeros((50, 40), np.uint8)
    mask[10:20, 5:15] = 255
    plan = plan_from_mask(canvas, mask.tobytes(), Rect(100, 200, 40, 50))
    assert plan.mask_bounds == Rect(105, 210, 10, 10)


def test_generate_into_selection_paints_just_the_region():
    plan = plan_generate(plan_region(Size(640, 480), Rect(10, 10, 100, 50)))
    # feather max(11.2, 50 / 4 = 12.5) -> 13, grow 4 + 6 = 10, blend min(25, 10 + 6, 50 // 5) = 10;
    # the selection 100 x 50 rounded out to 104 x 56, centred (x 10 - 2, y 10 - 3); txt2img has no
    # image, so the context is that same box (the alpha stays inside the selection)
    assert plan.region == plan.context == Rect(8, 7, 104, 56)
    assert plan.edges == MaskEdges(10, 13, 10)  # the mask still shapes the alpha


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
    assert plan.context.contains(clamp(pad(plan.mask_bounds, plan.edges.denoise_reach), plan.canvas))
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
        denoised = clamp(pad(plan.mask_bounds, plan.edges.denoise_reach), plan.canvas)
        assert plan.context.contains(denoised) and plan.region == plan.mask_bounds
        assert plan.context.width - denoised.width < 8 or plan.context.width == cw


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="square_bias"):
        PlanSettings(square_bias=2)
    with pytest.raises(ValueError, match="multiple"):
        PlanSettings(multiple=0)
    with pytest.raises(ValueError, match="does not overlap"):
        plan_region(Size(10, 10), Rect(20, 20, 5, 5))
