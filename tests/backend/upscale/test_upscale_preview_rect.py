"""Issue 10: an upscale's previews lie in the upscaled canvas (``upscale_rect``), like its result."""

from __future__ import annotations

from pathlib import Path

from latentbrush.backend.upscale import run_upscale
from latentbrush.protocol import Rect, Size, upscale_rect
from upscale_fakes import RecordingEvents, registry_at, smooth_image, upscale_job


def test_previews_use_upscaled_canvas_coordinates(models_dir: Path) -> None:
    region = Rect(10, 6, 20, 16)
    job = upscale_job(region, context=Rect(0, 0, 40, 30), canvas=Size(40, 30), upscaler="4x-tiny-compact",
                      scale=2, tile=64, overlap=8)
    events = RecordingEvents()
    out = run_upscale(job, smooth_image(30, 40), events, upscalers=registry_at(models_dir), refine=None)
    rects = {call[4] for call in events.of("preview")}
    assert rects == {upscale_rect(job)} == {Rect(20, 12, 40, 32)}
    assert out.images[0].shape[:2] == (32, 40)


def test_lanczos_previews_use_upscaled_canvas_coordinates(models_dir: Path) -> None:
    job = upscale_job(Rect(3, 2, 8, 8), context=Rect(0, 0, 16, 16), canvas=Size(16, 16), upscaler="lanczos", scale=3)
    events = RecordingEvents()
    run_upscale(job, smooth_image(16, 16), events, upscalers=registry_at(models_dir), refine=None)
    assert [call[4] for call in events.of("preview")] == [Rect(9, 6, 24, 24)]
