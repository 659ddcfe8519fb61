"""The cases of planning.json: canvas, selection, strength and operation (SPEC.md section 9.10).

Each case names why it is there; ``build_planning.py`` computes the expected boxes with
``planning_reference.py`` (the SPEC transcription), never with the plugin code the vectors test.
"""

from __future__ import annotations

from typing import Any


def _case(name: str, canvas: tuple[int, int], selection: tuple[int, int, int, int] | None, strength: float = 1.0,
          op: str = "inpaint", note: str = "", outward: int = 0, soft: bool = False) -> dict[str, Any]:
    case: dict[str, Any] = {"name": name, "canvas": canvas, "selection": selection, "strength": strength, "op": op,
                            "outward": outward, "soft": soft}
    if note:
        case["note"] = note
    return case


def planning_cases() -> list[dict[str, Any]]:
    return [
        _case("no_selection", (640, 480), None, note="the whole canvas, no mask, edges 0"),
        _case("no_selection_refine", (1001, 601), None, 0.4, "img2img"),
        _case("centre_square", (1024, 1024), (400, 400, 100, 100), note="padding by the region's average side"),
        _case("right_edge_odd_canvas", (1001, 601), (950, 300, 51, 40),
              note="shifted inward at the right edge; 512 fits the canvas"),
        _case("small_canvas", (300, 200), (10, 10, 20, 20),
              note="canvas under 512: sides capped by the canvas, 300 rounded down to 296"),
        _case("one_pixel_on_16k", (16384, 16384), (8000, 8000, 1, 1), note="padding by canvas / 16"),
        _case("refine_half", (1024, 768), (100, 100, 50, 30), 0.5, "img2img",
              note="strength < 1: the denoised box rounded out to multiples of 8"),
        _case("refine_tiny_strength", (512, 512), (200, 200, 64, 64), 0.01, "img2img"),
        _case("refine_zero_strength", (512, 512), (200, 200, 64, 64), 0.0, "img2img",
              note="no feather at strength 0: grow is the 4 px offset"),
        _case("wide_selection", (4096, 4096), (1000, 2000, 1200, 100), note="square bias grows the short side"),
        _case("tall_selection_at_top", (2048, 1536), (30, 0, 40, 900)),
        _case("corner_top_left", (800, 600), (0, 0, 10, 10)),
        _case("corner_bottom_right", (800, 600), (790, 590, 10, 10)),
        _case("selection_partly_outside", (640, 480), (-50, 400, 120, 200),
              note="clipped to the canvas before anything else"),
        _case("whole_canvas_selected", (640, 480), (0, 0, 640, 480), note="a mask over everything: context = canvas"),
        _case("large_mask_feather", (8192, 8192), (1000, 1000, 5000, 4000),
              note="feather 10% of the diagonal, blend capped at 25"),
        _case("small_mask_feather_floor", (1024, 1024), (500, 500, 40, 12),
              note="feather floor: a quarter of the short side, under 32"),
        _case("generate_into_selection", (1024, 768), (100, 100, 50, 30), 1.0, "txt2img",
              note="txt2img: region and context are the selection rounded out to multiples of 8"),
        _case("generate_at_edge", (1001, 601), (990, 590, 11, 11), 1.0, "txt2img"),
        _case("thin_canvas", (4000, 9), (1000, 2, 30, 5), note="a canvas side under 8 stays the canvas side"),
        _case("non_multiple_canvas_refine", (1001, 601), (0, 0, 1001, 601), 0.3, "img2img",
              note="the region is the whole canvas; 1001 has no multiple of 8 inside it"),
        _case("blend_outward", (1024, 1024), (400, 400, 100, 100), outward=30,
              note="the painter's blend outward 30 px: region padded by 30, grow at least 30"),
        _case("blend_outward_past_edge", (640, 480), (600, 20, 40, 40), outward=100,
              note="outward clipped at the canvas like the region"),
        _case("feathered_selection", (1024, 768), (292, 234, 440, 300), soft=True,
              note="a selection with its own soft edge is its own blend: mask_blend 0"),
        _case("half_up_feather", (1024, 1024), (0, 0, 26, 40),
              note="feather floor 0.25 x 26 = 6.5 rounds half up to 7 (half to even would give 6)"),
    ]
