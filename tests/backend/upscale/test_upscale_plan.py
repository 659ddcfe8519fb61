"""Output size and model-pass planning."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from latentbrush.backend.upscale.plan import PassPlan, model_passes, output_size
from latentbrush.protocol import JobRequest, Rect, Size, UpscaleParams, upscale_rect, upscale_size


@pytest.mark.parametrize(
    ("region", "params", "expected"),
    [
        (Size(100, 60), UpscaleParams(scale=2), Size(200, 120)),
        (Size(33, 17), UpscaleParams(scale=3), Size(99, 51)),
        (Size(33, 17), UpscaleParams(scale=1.5), Size(50, 26)),  # 49.5 -> 50, 25.5 -> 26
        # SPEC rounds half up; Python's round() (half to even) gave 10x10 and the job failed `internal`
        (Size(7, 7), UpscaleParams(scale=1.5), Size(11, 11)),  # 10.5 -> 11
        (Size(1, 1), UpscaleParams(scale=2.5), Size(3, 3)),  # 2.5 -> 3
        (Size(5, 7), UpscaleParams(scale=1.5), Size(8, 11)),  # 7.5 -> 8, 10.5 -> 11
        (Size(1, 1), UpscaleParams(scale=1.0), Size(1, 1)),
        (Size(100, 60), UpscaleParams(scale=2, target=Size(333, 77)), Size(333, 77)),  # target wins
    ],
)
def test_output_size(region: Size, params: UpscaleParams, expected: Size) -> None:
    assert output_size(region, params) == expected
    assert output_size(Rect(5, 9, region.width, region.height), params) == expected


@pytest.mark.parametrize(("w", "h", "scale"), [(7, 7, 1.5), (1, 1, 2.5), (5, 7, 1.5), (25, 19, 2.5), (33, 17, 1.5)])
def test_output_size_is_the_protocol_result_size(w: int, h: int, scale: float) -> None:
    """The engine's size and the result rectangle the protocol announces are one computation."""
    job = JobRequest(id="u", op="upscale", canvas=Size(100, 100), region=Rect(3, 4, w, h), image="sha256:" + "0" * 64,
                     upscale=UpscaleParams(scale=scale))
    rect = upscale_rect(job)
    assert output_size(job.region, job.upscale) == upscale_size(job) == Size(rect.width, rect.height)


@pytest.mark.parametrize(
    ("source", "target", "scale", "expected"),
    [
        (Size(100, 100), Size(200, 200), 4, [(100, 100)]),  # one pass, reduced afterwards
        (Size(100, 100), Size(400, 400), 4, [(100, 100)]),
        (Size(100, 100), Size(800, 800), 4, [(100, 100), (200, 200)]),  # 4x model for 8x: 400 reduced to 200
        (Size(100, 100), Size(600, 600), 4, [(100, 100), (150, 150)]),
        (Size(100, 100), Size(800, 800), 2, [(100, 100), (200, 200), (400, 400)]),
        (Size(100, 100), Size(50, 50), 4, [(100, 100)]),  # smaller target: still one model pass
        (Size(64, 64), Size(128, 128), 1, [(64, 64)]),  # a 1x restoration model runs once
        (Size(10, 30), Size(80, 40), 4, [(10, 30), (20, 10)]),  # aspect change: the larger factor decides
    ],
)
def test_model_passes(source: Size, target: Size, scale: int, expected: list[tuple[int, int]]) -> None:
    passes = model_passes(source, target, scale)
    assert [(p.input.width, p.input.height) for p in passes] == expected
    assert all(p.scale == scale for p in passes)


@given(st.integers(1, 300), st.integers(1, 300), st.floats(1.0, 8.0), st.sampled_from([1, 2, 3, 4, 8]))
def test_passes_reach_the_target_without_overshooting_a_whole_pass(w: int, h: int, factor: float, scale: int) -> None:
    source = Size(w, h)
    target = output_size(source, UpscaleParams(scale=factor))
    passes = model_passes(source, target, scale)
    last = passes[-1].output
    assert passes[0].input == source
    if scale == 1:  # a restoration model runs once; the final Lanczos resize does the scaling
        assert passes == (PassPlan(source, 1),)
    else:
        assert last.width >= target.width and last.height >= target.height
        need = max(target.width / w, target.height / h)
        assert len(passes) == max(1, math.ceil(math.log(need) / math.log(scale) - 1e-9))
        if len(passes) > 1:  # the last pass starts from at most ceil(target / scale)
            assert last.width <= target.width + scale - 1 and last.height <= target.height + scale - 1


def test_pass_plan_output() -> None:
    assert PassPlan(Size(3, 5), 4).output == Size(12, 20)
