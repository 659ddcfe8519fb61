"""The SD3 family through the engine with the built-in ``tiny-sd3``: every op, samplers, previews, T5, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError, JobCancelled
from latentbrush.backend.ops.cancel import cancel_points
from latentbrush.backend.ops.previews import LATENT_RGB, X0Capture
from latentbrush.backend.ops.samplers import SAMPLERS, make_scheduler
from latentbrush.protocol import ErrorCode, Rect, Size

SMALL = {"canvas": Size(64, 64), "region": Rect(0, 0, 64, 64), "resolution": Size(64, 64)}


def mask_and_image(picture) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    return picture(64, 64), mask


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_every_op_runs_with_a_preview_per_step(tiny_engine: Engine, make_job, make_events, picture, op: str) -> None:
    image, mask = mask_and_image(picture)
    fields = {"image": True} if op != "txt2img" else {}
    inputs = engine_inputs(image if op != "txt2img" else None, mask if op == "inpaint" else None)
    if op == "inpaint":
        fields["mask"] = True
    events = make_events()
    job = make_job(model="tiny-sd3", op=op, steps=4, strength=0.5, cfg=4.0, preview_format="jpeg", **SMALL, **fields)
    out = tiny_engine.run(job, inputs, events)
    ((total, _seed),) = events.of("started")
    assert total == (4 if op == "txt2img" else 2)  # img2img / inpaint at strength 0.5: half the steps
    assert [step for step, *_ in events.previews] == list(range(1, total + 1))
    assert out.images[0].shape == (64, 64, 4) and out.info["base"] == "tiny-sd3" and out.info["t5"] is True
    assert out.info["task"] == op and out.info["preview"] == "linear"
    if op == "inpaint":  # outside the mask the original stays, inside it changed
        assert np.array_equal(out.images[0][mask == 0, :3], image[mask == 0, :3])
        assert (out.images[0][mask == 0, 3] == 0).all()
        assert not np.array_equal(out.images[0][mask == 255, :3], image[mask == 255, :3])
    again = tiny_engine.run(job, inputs, make_events())
    assert np.array_equal(again.images[0], out.images[0])  # same seed, same pixels


def test_odd_sizes_run_at_a_multiple_of_16(tiny_engine: Engine, make_job, events) -> None:
    job = make_job(model="tiny-sd3", canvas=Size(72, 40), region=Rect(0, 0, 72, 40), resolution=Size(72, 40))
    out = tiny_engine.run(job, {}, events)
    assert out.images[0].shape == (40, 72, 4)
    assert [side % 16 for side in out.info["resolution"]] == [0, 0]  # SD3's 2x2 patches of 8x latents


def test_hello_lists_the_flow_samplers_and_they_all_run(tiny_engine: Engine, make_job, make_events) -> None:
    infos = {m.name: m for m in tiny_engine.describe().models}
    assert infos["tiny-sd3"].samplers == ("Euler a", "Euler", "Heun")
    assert infos["tiny"].samplers == ()  # () = all of the hello's samplers (SPEC.md ModelInfo)
    pictures = []
    for sampler in infos["tiny-sd3"].samplers:
        events = make_events()
        out = tiny_engine.run(make_job(model="tiny-sd3", sampler=sampler, steps=3, preview_format="jpeg", **SMALL),
                              {}, events)
        assert len(events.previews) == 3 and out.info["sampler"] == sampler
        pictures.append(out.images[0])
    assert not np.array_equal(pictures[0], pictures[1])  # Euler a re-injects noise; Euler does not


@pytest.mark.parametrize("sampler", ["DDIM", "DPM++ 2M Karras", "LCM", "Euler a trailing"])
def test_a_sampler_that_does_not_fit_is_bad_field(tiny_engine: Engine, make_job, events, sampler: str) -> None:
    job = make_job(model="tiny-sd3", sampler=sampler, **SMALL)
    error = tiny_engine.check(job)
    assert error is not None and error.code == ErrorCode.BAD_FIELD and error.field == "job.sampler"
    assert "Euler a" in error.message  # says what fits
    with pytest.raises(EngineError) as raised:
        tiny_engine.run(job, {}, events)
    assert raised.value.code == ErrorCode.BAD_FIELD
    assert tiny_engine.check(make_job(model="tiny", sampler=sampler)) is None  # fits the UNet families


def test_flow_x0_is_the_last_step_result(tiny_engine: Engine) -> None:
    """x0 = x_t - sigma * v each step; at the last Euler step (sigma_next 0) the step's own result is x0."""
    model = tiny_engine.load("tiny-sd3")
    scheduler = make_scheduler("Euler", model.scheduler_config, "sd3")
    scheduler.set_timesteps(3)
    sample = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    with X0Capture(scheduler) as capture:
        for t in scheduler.timesteps:
            velocity = torch.randn(sample.shape, generator=torch.Generator().manual_seed(int(t)))
            before = sample
            sample = scheduler.step(velocity, t, sample).prev_sample
            assert capture.source == "computed"
            assert torch.allclose(capture.latest, before - float(t) / 1000 * velocity, atol=1e-5)
        assert torch.allclose(capture.latest, sample, atol=1e-5)


def test_linear_preview_factors_cover_16_channels() -> None:
    for family in ("sd3", "flux"):
        factors, bias = LATENT_RGB[family]
        assert len(factors) == 16 and all(len(row) == 3 for row in factors) and len(bias) == 3


def test_t5_can_be_left_out(make_job, events) -> None:
    with_t5 = Engine(EngineSettings(models_dir=None, device="cpu"))
    without = Engine(EngineSettings(models_dir=None, device="cpu", t5=False))
    job = make_job(model="tiny-sd3", **SMALL)
    kept, dropped = with_t5.run(job, {}, events), without.run(job, {}, events)
    assert kept.info["t5"] is True and dropped.info["t5"] is False
    assert without.load("tiny-sd3").pipeline("txt2img").text_encoder_3 is None
    assert not np.array_equal(kept.images[0], dropped.images[0])  # the prompt's T5 half is zeros now


def test_cancel_inside_the_transformer_stops_at_the_next_block(tiny_engine: Engine, make_job, make_events) -> None:
    model = tiny_engine.load("tiny-sd3")
    pipe = model.pipeline("txt2img")
    blocks = pipe.transformer.transformer_blocks
    events = make_events()
    finished: list[int] = []

    def cancel_in_block_0(_module, _args, _output) -> None:  # as if the user clicked during the first block
        finished.append(0)
        events.cancel.set()

    first = blocks[0].register_forward_hook(cancel_in_block_0)
    second = blocks[1].register_forward_hook(lambda *_: finished.append(1))
    try:
        with pytest.raises(JobCancelled):
            tiny_engine.run(make_job(model="tiny-sd3", steps=3, **SMALL), {}, events)
    finally:
        first.remove()
        second.remove()
    assert finished == [0]  # block 1 never ran: the cancel hook at its start raised
    assert events.of("result") == [] and events.of("progress") == []
    assert sum(len(m._forward_pre_hooks) for m in cancel_points(pipe)) == 0  # the hooks are gone again


def test_flow_samplers_all_have_a_flow_scheduler() -> None:
    fitting = [name for name, spec in SAMPLERS.items() if spec.flow is not None]
    assert fitting == ["Euler a", "Euler", "Heun"]
