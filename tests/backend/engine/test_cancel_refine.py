"""Cancellation (between steps and inside the UNet) and the tile refine the upscaler borrows from the engine."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine
from latentbrush.backend.events import JobCancelled
from latentbrush.backend.ops import op_img2img, op_inpaint
from latentbrush.backend.ops.cancel import cancel_points
from latentbrush.backend.ops.diffusion import make_refine
from latentbrush.protocol import Rect, Size, UpscaleParams

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)


def hook_count(engine: Engine) -> int:
    model, _ = engine.cache.get(engine.registry.get("tiny"))
    return sum(len(m._forward_pre_hooks) for m in cancel_points(model.pipeline("txt2img")))


def test_cancel_between_steps_stops_at_once(tiny_engine: Engine, make_job, make_events) -> None:
    events = make_events(cancel_at=1)
    with pytest.raises(JobCancelled):
        tiny_engine.run(make_job(steps=6), {}, events)
    assert [p[0] for p in events.of("progress")] == [1]
    assert len(events.previews) == 1
    assert hook_count(tiny_engine) == 0  # hooks removed on the way out


def test_cancel_before_start_reports_nothing(tiny_engine: Engine, make_job, make_events) -> None:
    events = make_events()
    events.cancel.set()
    with pytest.raises(JobCancelled):
        tiny_engine.run(make_job(), {}, events)
    assert events.calls == []


def test_cancel_inside_the_unet_does_not_finish_the_step(tiny_engine: Engine, make_job, make_events) -> None:
    model, _ = tiny_engine.cache.get(tiny_engine.registry.get("tiny"))
    unet = model.pipeline("txt2img").unet
    events = make_events()
    calls = {"mid": 0}

    def cancel_in_the_middle(_module, _args, _output) -> None:  # as if the user clicked during the mid block
        calls["mid"] += 1
        events.cancel.set()

    handle = unet.mid_block.register_forward_hook(cancel_in_the_middle)
    try:
        with pytest.raises(JobCancelled):
            tiny_engine.run(make_job(steps=4), {}, events)
    finally:
        handle.remove()
    assert calls["mid"] == 1 and events.of("progress") == []  # the up blocks never ran


def test_a_cancelled_job_leaves_no_trace(tiny_engine: Engine, make_job, make_events) -> None:
    before = tiny_engine.run(make_job(seed=99, sampler="DPM++ 2M Karras", steps=3), {}, make_events())
    with pytest.raises(JobCancelled):
        tiny_engine.run(make_job(seed=99, sampler="DPM++ 2M Karras", steps=3), {}, make_events(cancel_at=2))
    after = tiny_engine.run(make_job(seed=99, sampler="DPM++ 2M Karras", steps=3), {}, make_events())
    np.testing.assert_array_equal(before.images[0], after.images[0])


def test_cross_thread_cancel_latency(tiny_engine: Engine, make_job, make_events) -> None:
    """Measured, not asserted (no timing thresholds in tests): printed for the report, see bench/ for GPUs."""
    events = make_events()
    set_at: list[float] = []

    def cancel_soon() -> None:
        while not events.of("progress"):
            time.sleep(0.001)
        time.sleep(0.02)  # land somewhere inside a later step
        set_at.append(time.perf_counter())
        events.cancel.set()

    thread = threading.Thread(target=cancel_soon)
    thread.start()
    with pytest.raises(JobCancelled):
        tiny_engine.run(make_job(steps=50, resolution=Size(256, 256), region=Rect(0, 0, 128, 128)), {}, events)
    latency_ms = (time.perf_counter() - set_at[0]) * 1000
    thread.join()
    steps = len(events.of("progress"))
    print(f"\ncancel latency (tiny UNet, 256 px, CPU): {latency_ms:.1f} ms after {steps} steps")
    assert steps < 50


# ---------------------------------------------------------------------------------------------- refine


@pytest.fixture
def tiny_model(tiny_engine: Engine):
    model, _ = tiny_engine.cache.get(tiny_engine.registry.get("tiny"))
    return model


def refine_fn(model, job, seed, cancel):
    return make_refine(model, job, seed, cancel, op_img2img.TASK, op_inpaint.TASK)


def upscale_job(make_job, strength: float = 0.5):
    return make_job(op="upscale", image=True, steps=4, upscale=UpscaleParams(refine=True, refine_strength=strength))


def test_refine_returns_a_refined_tile_of_the_same_size(tiny_model, make_job, picture) -> None:
    tile = picture(72, 56)[..., :3]
    refine = refine_fn(tiny_model, upscale_job(make_job), seed=11, cancel=threading.Event())
    out = refine(tile, None, 0)
    assert out.shape == tile.shape and out.dtype == np.uint8
    assert not np.array_equal(out, tile)
    np.testing.assert_array_equal(out, refine(tile, None, 0))  # seeded
    assert not np.array_equal(out, refine(tile, None, 1))  # each tile its own noise


def test_refine_with_a_mask_keeps_unmasked_pixels(tiny_model, make_job, picture) -> None:
    tile = picture(64, 64)[..., :3]
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    out = refine_fn(tiny_model, upscale_job(make_job), seed=3, cancel=threading.Event())(tile, mask, 2)
    np.testing.assert_array_equal(out[:, :32], tile[:, :32])
    assert not np.array_equal(out[:, 32:], tile[:, 32:])


def test_refine_at_zero_strength_is_identity_and_honours_cancel(tiny_model, make_job, picture) -> None:
    tile = picture(64, 64)[..., :3]
    np.testing.assert_array_equal(refine_fn(tiny_model, upscale_job(make_job, 0.0), 1, threading.Event())(
        tile, None, 0), tile)
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(JobCancelled):
        refine_fn(tiny_model, upscale_job(make_job), 1, cancelled)(tile, None, 0)


def test_upscale_job_goes_through_the_upscale_module(tiny_engine: Engine, make_job, events, picture) -> None:
    job = make_job(op="upscale", image=True, canvas=Size(64, 64), region=Rect(0, 0, 64, 64), steps=2, seed=None,
                   upscale=UpscaleParams(upscaler="lanczos", scale=2.0, refine=True, refine_strength=0.5,
                                         refine_tile=256))
    out = tiny_engine.run(job, engine_inputs(picture(64, 64), None), events)
    assert out.images[0].shape == (128, 128, 4)
    started = events.of("started")
    assert len(out.seeds) >= 1 and started and started[0][1] == out.seeds[0]
