"""plugin/core/planning.py reproduces every context-planning vector (protocol/vectors/planning.json, SPEC 9.10).

The vectors are computed by the SPEC transcription beside them, never by this code, so a pass
here means SPEC text, vectors and the plugin's planner agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from latentbrush.plugin.core.planning import RegionPlan, plan_generate, plan_region, plan_whole_canvas
from latentbrush.protocol.geometry import Rect, Size

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
CASES = json.loads((VECTORS / "planning.json").read_text(encoding="utf-8"))["cases"]


def _rect(obj: dict[str, int]) -> Rect:
    return Rect(obj["x"], obj["y"], obj["width"], obj["height"])


def plan_case(case: dict[str, Any]) -> RegionPlan:
    """What the controller does for a selection's bounding box (Controller._prepare)."""
    canvas = Size(case["canvas"]["width"], case["canvas"]["height"])
    if case["selection"] is None:
        return plan_whole_canvas(canvas)
    plan = plan_region(canvas, _rect(case["selection"]), case["strength"], outward=case["outward"], soft=case["soft"])
    return plan_generate(plan) if case["op"] == "txt2img" else plan


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_planner_reproduces_the_vector(case: dict[str, Any]) -> None:
    plan, expect = plan_case(case), case["expect"]
    assert plan.has_mask == expect["has_mask"]
    assert (plan.mask_bounds, plan.region, plan.context) == (
        _rect(expect["mask_bounds"]), _rect(expect["region"]), _rect(expect["context"]))
    assert (plan.grow, plan.feather, plan.blend, plan.outward) == (
        expect["mask_grow"], expect["mask_feather"], expect["mask_blend"], expect["mask_outward"])


def test_vectors_are_up_to_date_with_their_cases() -> None:
    done = subprocess.run([sys.executable, str(VECTORS / "build_planning.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_vectors_cover_every_step_of_the_formula() -> None:
    names = {c["name"] for c in CASES}
    assert {"no_selection", "refine_half", "generate_into_selection", "small_canvas", "half_up_feather"} <= names
    assert any(c["expect"]["mask_blend"] == 25 for c in CASES)  # the blend cap
    assert any(c["soft"] and c["expect"]["mask_blend"] == 0 for c in CASES)  # a feathered selection
    assert any(c["expect"]["mask_outward"] > 0 for c in CASES)  # the painter's blend outward
    assert any(c["expect"]["context"]["width"] % 8 for c in CASES)  # a canvas side with no multiple of 8 inside
