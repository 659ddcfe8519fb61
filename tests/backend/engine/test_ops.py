"""txt2img / img2img / inpaint through Engine.run on the built-in tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine
from latentbrush.backend.events import EngineError, JobOutput
from latentbrush.backend.ops import masks
from latentbrush.backend.ops.diffusion import processing_size
from latentbrush.protocol import ErrorCode, Rect, Size, UpscaleParams
from latentbrush.protocol.messages import MAX_SEED

# numpy 2 warns about torch tensors inside diffusers' schedulers (np.array(tensor)); not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)

CONTEXT = Rect(20, 10, 128, 96)
REGION = Rect(40, 30, 64, 48)  # inside CONTEXT


def inpaint_mask() -> np.ndarray:
    """A blob inside the region of CONTEXT, plus nothing elsewhere."""
    mask = np.zeros((CONTEXT.height, CONTEXT.width), np.uint8)
    mask[24:60, 26:78] = 255  # context coordinates; the region spans x 20..84, y 20..68
    return mask


def region_of(array: np.ndarray) -> np.ndarray:
    x, y = REGION.x - CONTEXT.x, REGION.y - CONTEXT.y
    return array[y : y + REGION.height, x : x + REGION.width]


def test_txt2img_gives_an_opaque_region_with_previews_every_step(tiny_engine: Engine, make_job, events) -> None:
    out = tiny_engine.run(make_job(steps=3), {}, events)
    assert isinstance(out, JobOutput)
    (image,) = out.images
    assert image.shape == (128, 128, 4) and image.dtype == np.uint8
    assert (image[..., 3] == 255).all()
    assert image[..., :3].std() > 0  # not a blank image
    assert out.seeds == (1234,)
    assert events.of("started") == [(3, 1234)]
    assert events.of("progress") == [(1, 3, "denoise"), (2, 3, "denoise"), (3, 3, "denoise")]
    assert [p[0] for p in events.previews] == [1, 2, 3]
    for _step, total, rgb, rect, index in events.previews:
        assert total == 3 and index == 0 and rect == Rect(0, 0, 128, 128)
        assert rgb.dtype == np.uint8 and rgb.shape == (128, 128, 3)  # the region's size (latent: 16 px)
    assert out.info["model"] == "tiny" and out.info["sampler"] == "Euler" and out.info["resolution"] == [128, 128]


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "DPM2 a"])  # ancestral ones draw noise every step
def test_same_seed_same_pixels_and_other_seed_other_pixels(
    tiny_engine: Engine, make_job, make_events, sampler: str
) -> None:
    first = tiny_engine.run(make_job(seed=7, sampler=sampler), {}, make_events())
    torch.manual_seed(12345)  # the global RNG must play no part
    again = tiny_engine.run(make_job(seed=7, sampler=sampler), {}, make_events())
    other = tiny_engine.run(make_job(seed=8, sampler=sampler), {}, make_events())
    np.testing.assert_array_equal(first.images[0], again.images[0])
    assert not np.array_equal(first.images[0], other.images[0])


def test_batch_uses_consecutive_seeds(tiny_engine: Engine, make_job, events, make_events) -> None:
    out = tiny_engine.run(make_job(batch=2, seed=MAX_SEED), {}, events)
    assert out.seeds == (MAX_SEED, 0)  # wraps around the 32-bit range
    assert len(out.images) == 2 and not np.array_equal(out.images[0], out.images[1])
    assert events.of("started") == [(4, MAX_SEED)]
    assert [(p[0], p[4]) for p in events.previews] == [(1, 0), (2, 0), (3, 1), (4, 1)]
    single = tiny_engine.run(make_job(seed=0), {}, make_events())
    np.testing.assert_array_equal(single.images[0], out.images[1])  # batch item i == a run with seed + i


def test_no_seed_picks_and_reports_one(tiny_engine: Engine, make_job, events, make_events) -> None:
    out = tiny_engine.run(make_job(seed=None), {}, events)
    (seed,) = out.seeds
    assert 0 <= seed <= MAX_SEED
    assert events.of("started") == [(2, seed)]
    replay = tiny_engine.run(make_job(seed=seed), {}, make_events())
    np.testing.assert_array_equal(replay.images[0], out.images[0])


def test_preview_none_skips_previews_but_not_progress(tiny_engine: Engine, make_job, events) -> None:
    tiny_engine.run(make_job(preview_format="none"), {}, events)
    assert events.previews == []
    assert len(events.of("progress")) == 2


def test_preview_max_side_caps_previews(tiny_engine: Engine, make_job, events) -> None:
    tiny_engine.run(make_job(preview_max_side=16, resolution=Size(256, 128)), {}, events)
    assert {p[2].shape for p in events.previews} == {(16, 16, 3)}  # the region's aspect, not the processing size's


def test_img2img_runs_strength_times_steps(tiny_engine: Engine, make_job, events, picture) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    job = make_job(op="img2img", image=True, canvas=Size(200, 200), context=CONTEXT, region=REGION, steps=4,
                   strength=0.5, resolution=None)
    out = tiny_engine.run(job, engine_inputs(image, None), events)
    assert out.images[0].shape == (REGION.height, REGION.width, 4)
    assert (out.images[0][..., 3] == 255).all()
    assert events.of("started")[0][0] == 2 and len(events.previews) == 2
    assert events.previews[0][3] == REGION
    # native 256 px at the context's aspect ratio, multiples of 8
    assert out.info["resolution"] == [296, 224]


@pytest.mark.parametrize("model", ["tiny", "tiny-inpaint"])
def test_inpaint_keeps_everything_outside_the_mask(tiny_engine: Engine, make_job, events, picture, model) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    mask = inpaint_mask()
    job = make_job(op="inpaint", model=model, image=True, mask=True, canvas=Size(200, 200), context=CONTEXT,
                   region=REGION, mask_grow=3, mask_feather=4, mask_blend=6, steps=2)
    out = tiny_engine.run(job, engine_inputs(image, mask), events)
    (result,) = out.images
    assert result.shape == (REGION.height, REGION.width, 4)
    grown = region_of(masks.grow(mask, 3))
    alpha, rgb, original = result[..., 3], result[..., :3], region_of(image)[..., :3]
    assert not alpha[grown == 0].any()  # exactly 0 outside the grown mask
    np.testing.assert_array_equal(rgb[alpha == 0], original[alpha == 0])
    inner = region_of(masks.erode(masks.grow(mask, 3), 4 + 6 // 2 + 6)) > 0  # past feather, erosion and blend
    assert inner.any() and (alpha[inner] == 255).all()
    assert (rgb[inner] != original[inner]).any()  # and something was painted inside
    assert out.info["task"] == "inpaint"
    assert out.info["prefill"] == ("none" if model == "tiny-inpaint" else "blur")
    assert len(events.previews) == 2 and all(p[3] == REGION for p in events.previews)


def test_mask_outward_caps_the_result_at_the_selection(tiny_engine: Engine, make_job, events, picture) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    mask = inpaint_mask()
    job = make_job(op="inpaint", image=True, mask=True, canvas=Size(200, 200), context=CONTEXT, region=REGION,
                   mask_grow=12, mask_feather=16, mask_blend=8, mask_outward=0, steps=2)
    (result,) = tiny_engine.run(job, engine_inputs(image, mask), events).images
    alpha, rgb, original = result[..., 3], result[..., :3], region_of(image)[..., :3]
    selection = region_of(mask)
    # the grown, feathered denoise mask reaches 28 px out, the result's alpha not one pixel past the mask
    assert (alpha <= selection).all() and not alpha[selection == 0].any()
    np.testing.assert_array_equal(rgb[alpha == 0], original[alpha == 0])
    inner = region_of(masks.erode(mask, 8)) > 0
    assert inner.any() and (alpha[inner] == 255).all()


def test_masked_previews_show_the_original_outside_the_mask(tiny_engine: Engine, make_job, events) -> None:
    image = np.empty((CONTEXT.height, CONTEXT.width, 4), np.uint8)
    image[...] = (10, 200, 30, 255)
    mask = np.zeros((CONTEXT.height, CONTEXT.width), np.uint8)
    mask[:, :8] = 255  # far from the region, so the whole region preview is backdrop
    job = make_job(op="inpaint", image=True, mask=True, canvas=Size(200, 200), context=CONTEXT, region=REGION,
                   resolution=Size(CONTEXT.width, CONTEXT.height))
    tiny_engine.run(job, engine_inputs(image, mask), events)
    for _, _, rgb, _, _ in events.previews:
        assert (rgb == (10, 200, 30)).all()


def test_txt2img_takes_no_image(tiny_engine: Engine, make_job) -> None:
    # the protocol refuses it (bad_field); the engine, asked directly, names the same field
    job = make_job(op="txt2img", image=True, mask=True, canvas=Size(200, 200), context=CONTEXT, region=REGION)
    error = tiny_engine.check(job)
    assert error is not None and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, "job.image")


@pytest.mark.parametrize(("fields", "named"), [  # LoRAs are implemented: tests/backend/lora/test_lora_jobs.py
    ({"refiner": "tiny-sdxl-refiner"}, "job.refiner"),  # refiners: tests/backend/engine/test_refiner.py
])
def test_loras_and_refiner_are_refused_until_implemented(tiny_engine: Engine, make_job, events, fields,
                                                          named) -> None:
    # SPEC.md 9.13: an SDXL refiner for the (SD 1.5-shaped) tiny model is refused, never silently ignored
    job = make_job(op="txt2img", canvas=Size(64, 64), region=Rect(0, 0, 64, 64), steps=1, **fields)
    error = tiny_engine.check(job)
    assert error is not None and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, named)
    with pytest.raises(EngineError) as raised:
        tiny_engine.run(job, {}, events)
    assert (raised.value.code, raised.value.field) == (ErrorCode.NOT_SUPPORTED, named)
    assert tiny_engine.check(dataclasses.replace(job, loras=(), refiner=None)) is None  # an empty list is no LoRA


def test_img2img_with_mask_changes_only_the_mask(tiny_engine: Engine, make_job, events, picture) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    mask = inpaint_mask()
    job = make_job(op="img2img", image=True, mask=True, canvas=Size(200, 200), context=CONTEXT, region=REGION,
                   strength=0.6, steps=4)
    out = tiny_engine.run(job, engine_inputs(image, mask), events)
    result = out.images[0]
    outside = region_of(mask) == 0
    assert not result[..., 3][outside].any()
    np.testing.assert_array_equal(result[..., :3][outside], region_of(image)[..., :3][outside])
    assert out.info["prefill"] == "none" and len(events.previews) == 2


def test_prefill_choice_reaches_the_model(tiny_engine: Engine, make_job, make_events, picture) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    base = make_job(op="inpaint", image=True, mask=True, canvas=Size(200, 200), context=CONTEXT, region=REGION,
                    strength=0.7, steps=3)
    inputs = engine_inputs(image, inpaint_mask())
    outs = {mode: tiny_engine.run(dataclasses.replace(base, prefill=mode), inputs, make_events())
            for mode in ("none", "noise")}
    assert outs["noise"].info["prefill"] == "noise"
    assert not np.array_equal(outs["none"].images[0], outs["noise"].images[0])


def test_run_checks_inputs(tiny_engine: Engine, make_job, events, picture) -> None:
    job = make_job(op="img2img", image=True, canvas=Size(200, 200), context=CONTEXT, region=REGION)
    with pytest.raises(EngineError) as info:
        tiny_engine.run(job, engine_inputs(picture(10, 10), None), events)
    assert info.value.code == ErrorCode.SIZE_MISMATCH and info.value.field == "job.image"
    with pytest.raises(EngineError) as info:
        tiny_engine.run(job, {}, events)
    assert info.value.field == "job.image"
    with pytest.raises(EngineError) as info:
        tiny_engine.run(make_job(model="nope"), {}, events)
    assert info.value.code == ErrorCode.UNKNOWN_MODEL
    assert events.calls == []


def test_check_names_the_problem(tiny_engine: Engine, make_job) -> None:
    assert tiny_engine.check(make_job()) is None
    assert tiny_engine.check(make_job(model="tiny-inpaint", op="img2img", image=True)) is None
    assert tiny_engine.check(make_job(op="img2img", image=True, strength=0.1, steps=5)) is None  # runs one step
    cases = {
        "job.model": (make_job(model="no-such-model"), ErrorCode.UNKNOWN_MODEL),
        "job.sampler": (make_job(sampler="Heun++"), ErrorCode.UNKNOWN_SAMPLER),
    }
    for field, (job, code) in cases.items():
        error = tiny_engine.check(job)
        assert error is not None and error.field == field and error.code == code, field
    upscale = make_job(op="upscale", image=True, upscale=UpscaleParams(upscaler="no-such-upscaler"))
    error = tiny_engine.check(upscale)
    assert error is not None and error.code == ErrorCode.UNKNOWN_UPSCALER and error.field == "job.upscale.upscaler"


def test_describe(tiny_engine: Engine) -> None:
    info = tiny_engine.describe()
    assert info.device == "cpu" and info.dtype == "float32"
    assert [m.name for m in info.models][:2] == ["tiny", "tiny-inpaint"]  # then the tiny SDXL pair (and more)
    assert info.default_model == "tiny" and info.models[1].inpaint and info.models[0].resolution == 256
    assert "Euler a" in info.samplers and "DPM++ 2M Karras" in info.samplers
    assert "lanczos" in info.upscalers


@pytest.mark.parametrize(("width", "height"), [(1000, 500), (100, 80), (4000, 100), (512, 512), (37, 1999)])
def test_processing_size_keeps_native_area_aspect_and_multiples_of_8(width: int, height: int) -> None:
    w, h = processing_size(width, height, 512, None)
    assert w % 8 == 0 and h % 8 == 0 and min(w, h) >= 64
    assert max(w, h) <= 2 * 512 + 8  # extreme aspect ratios are capped
    if max(width, height) / min(width, height) < 4:
        assert abs(w * h - 512 * 512) / (512 * 512) < 0.1
        assert abs(w / h - width / height) / (width / height) < 0.1
    assert processing_size(width, height, 512, Size(300, 203)) == (304, 200)
