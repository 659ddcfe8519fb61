"""run_upscale end to end with tiny random-weight spandrel models from files: sizes, events, alpha, refine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from latentbrush.backend.events import EngineError, JobCancelled, JobOutput
from latentbrush.backend.upscale import LANCZOS, UpscalerRegistry, run_upscale
from latentbrush.protocol import ErrorCode, Rect, Size, upscale_rect
from PIL import Image
from upscale_fakes import (
    FixedRegistry,
    OomModel,
    RecordingEvents,
    compact,
    descriptor,
    registry_at,
    smooth_image,
    upscale_job,
)


@pytest.fixture(scope="module")
def registry(models_dir: Path) -> UpscalerRegistry:
    return registry_at(models_dir)


def upscale(registry, job, image, events=None, refine=None, **kwargs) -> tuple[JobOutput, RecordingEvents]:
    events = events or RecordingEvents()
    return run_upscale(job, image, events, upscalers=registry, refine=refine, **kwargs), events


@pytest.mark.parametrize(
    ("upscaler", "region", "params", "size", "passes"),
    [
        ("4x-tiny-compact.safetensors", Size(40, 30), {"scale": 4}, Size(160, 120), 1),
        ("4x-tiny-compact.safetensors", Size(40, 30), {"scale": 2}, Size(80, 60), 1),  # model 4x, reduced
        ("x3-tiny", Size(33, 21), {"scale": 3}, Size(99, 63), 1),
        ("2x-tiny-compact.pth", Size(37, 23), {"scale": 2}, Size(74, 46), 1),  # odd sizes
        ("esrgan/2x-tiny-esrgan.pth", Size(25, 19), {"scale": 2.5}, Size(63, 48), 2),  # 62.5 rounds half up
        ("4x-tiny-compact.safetensors", Size(20, 15), {"scale": 8}, Size(160, 120), 2),  # 4x model for 8x
        ("4x-tiny-compact.safetensors", Size(41, 29), {"target": Size(101, 77)}, Size(101, 77), 1),
        ("2x-tiny-compact.pth", Size(16, 16), {"target": Size(100, 50)}, Size(100, 50), 3),
    ],
)
def test_output_has_the_exact_size(
    registry, upscaler: str, region: Size, params: dict, size: Size, passes: int
) -> None:
    image = smooth_image(region.height, region.width)
    job = upscale_job(Rect(0, 0, region.width, region.height), upscaler=upscaler, tile=64, overlap=8, **params)
    out, _ = upscale(registry, job, image)
    (result,) = out.images
    assert result.shape == (size.height, size.width, 4) and result.dtype == np.uint8
    assert out.info["upscaler"] == registry.resolve(upscaler)
    assert (out.info["width"], out.info["height"], out.info["passes"]) == (size.width, size.height, passes)
    assert np.all(result[..., 3] == 255)


def test_events_announce_every_step_and_preview_each(registry) -> None:
    image = smooth_image(70, 90)
    job = upscale_job(Rect(0, 0, 90, 70), upscaler="4x-tiny-compact", scale=4, tile=48, overlap=8)
    out, events = upscale(registry, job, image, seed=77)
    started = events.of("started")
    assert started == [("started", 6, None)]  # 3 x 2 tiles of 48 over 90 x 70; no refine, so no seed
    progress = events.of("progress")
    assert [p[1:] for p in progress] == [(i, 6, "upscale") for i in range(1, 7)]
    previews = events.of("preview")
    assert [p[1:3] for p in previews] == [(i, 6) for i in range(1, 7)]
    assert all(p[4] == upscale_rect(job) and p[5] == 0 and max(p[3].shape[:2]) <= 64 for p in previews)
    assert events.calls[0][0] == "started"
    # the last preview is close to the result, shrunk (tiles are pasted unblended, so not equal)
    final = np.asarray(Image.fromarray(out.images[0][..., :3]).resize(previews[-1][3].shape[1::-1], Image.BOX))
    assert np.abs(previews[-1][3].astype(int) - final.astype(int)).mean() < 3
    first = previews[0][3].astype(int)  # before any tile but the first: the source, stretched
    source = np.asarray(Image.fromarray(image[..., :3]).resize(first.shape[1::-1], Image.BOX)).astype(int)
    assert np.abs(first[-20:, -20:] - source[-20:, -20:]).mean() < 3
    assert out.seeds == ()


def test_previews_can_be_turned_off(registry) -> None:
    job = upscale_job(Rect(0, 0, 40, 40), preview_format="none", upscaler="4x-tiny-compact", scale=2, tile=32)
    _, events = upscale(registry, job, smooth_image(40, 40))
    assert events.of("preview") == [] and len(events.of("progress")) == 4


def test_lanczos_without_a_model(tmp_path: Path) -> None:
    image = smooth_image(30, 50)
    job = upscale_job(Rect(0, 0, 50, 30), upscaler="", scale=3)
    out, events = upscale(registry_at(tmp_path), job, image)  # nothing installed: "" means lanczos
    assert out.info["upscaler"] == LANCZOS and "passes" not in out.info
    expected = np.asarray(Image.fromarray(image[..., :3]).resize((150, 90), Image.Resampling.LANCZOS))
    assert np.abs(out.images[0][..., :3].astype(int) - expected.astype(int)).max() <= 1
    assert [p[1:] for p in events.of("progress")] == [(1, 1, "upscale")]


@pytest.mark.parametrize(("region", "scale", "size"), [(Size(7, 7), 1.5, Size(11, 11)), (Size(1, 1), 2.5, Size(3, 3)),
                                                  (Size(5, 7), 1.5, Size(8, 11))])
def test_a_side_ending_in_half_rounds_up_like_the_result_rectangle(
    tmp_path: Path, region: Size, scale: float, size: Size
) -> None:
    job = upscale_job(Rect(0, 0, region.width, region.height), upscaler="lanczos", scale=scale)
    out, _ = upscale(registry_at(tmp_path), job, smooth_image(region.height, region.width))
    rect = upscale_rect(job)
    assert out.images[0].shape[:2] == (size.height, size.width) == (rect.height, rect.width)


def test_best_installed_model_is_used_for_an_empty_name(registry) -> None:
    out, _ = upscale(registry, upscale_job(Rect(0, 0, 20, 20), upscaler="", scale=2), smooth_image(20, 20))
    assert out.info["upscaler"] == registry.names()[0] != LANCZOS


def test_region_inside_the_context_is_what_gets_upscaled(registry) -> None:
    context = smooth_image(60, 80, seed=4)
    region = Rect(110, 215, 30, 20)  # canvas coordinates; the context box starts at (100, 200)
    job = upscale_job(region, context=Rect(100, 200, 80, 60), upscaler="2x-tiny-compact.pth", scale=2)
    out, _ = upscale(registry, job, context)
    crop = np.ascontiguousarray(context[15:35, 10:40])
    alone, _ = upscale(registry, upscale_job(Rect(0, 0, 30, 20), upscaler="2x-tiny-compact.pth", scale=2), crop)
    np.testing.assert_array_equal(out.images[0], alone.images[0])


def test_alpha_is_resized_with_lanczos_and_opaque_stays_opaque(registry) -> None:
    alpha = np.zeros((24, 32), np.uint8)
    alpha[:, 16:] = 255
    alpha[5:10, 3:8] = 128
    image = smooth_image(24, 32, alpha=alpha)
    out, _ = upscale(registry, upscale_job(Rect(0, 0, 32, 24), upscaler="x3-tiny", scale=3), image)
    expected = np.asarray(Image.fromarray(alpha).resize((96, 72), Image.Resampling.LANCZOS))
    # ours resizes in float, Pillow's 8-bit path in fixed point: a level or two apart at most
    assert np.abs(out.images[0][..., 3].astype(int) - expected.astype(int)).max() <= 2
    opaque, _ = upscale(registry, upscale_job(Rect(0, 0, 32, 24), upscaler="x3-tiny", scale=3), smooth_image(24, 32))
    assert np.all(opaque.images[0][..., 3] == 255)


def test_colour_under_transparent_pixels_does_not_fringe_visible_edges(registry) -> None:
    # white, opaque on the right; the transparent left half stores black, as most painted layers do
    image = np.zeros((24, 32, 4), np.uint8)
    image[:, 16:] = 255
    out, _ = upscale(registry, upscale_job(Rect(0, 0, 32, 24), upscaler=LANCZOS, scale=3), image)
    rgba = out.images[0].astype(int)
    visible = rgba[..., 3] >= 8
    assert (visible & (rgba[..., 3] < 255)).any()  # the resampled edge, where alpha ramps up
    # resized premultiplied and divided back: the edge stays white instead of greying towards the hidden black
    assert rgba[..., :3][visible].min() >= 250


def test_refine_brightens_every_tile_without_seams_and_band_fix_touches_only_seams(registry) -> None:
    image = smooth_image(60, 70)
    params = {"upscaler": "4x-tiny-compact", "scale": 4, "tile": 64}
    plain, _ = upscale(registry, upscale_job(Rect(0, 0, 70, 60), **params), image)
    refine_args = {"refine": True, "refine_tile": 200, "refine_padding": 16, "refine_mask_blur": 8}
    calls = []

    def brighten(rgb: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
        calls.append(index)
        return np.clip(rgb.astype(np.int16) + 40, 0, 255).astype(np.uint8)

    job = upscale_job(Rect(0, 0, 70, 60), **params, **refine_args)
    out, events = upscale(registry, job, image, refine=brighten, seed=5)
    base = plain.images[0][..., :3].astype(int)
    unclipped = base <= 255 - 80  # near a border a later tile adds its 40 on top of part of the first's
    assert unclipped.mean() > 0.5
    got = out.images[0][..., :3].astype(int)
    assert np.abs(got - (base + 40))[unclipped].max() <= 1  # 2 x 2 tiles over 280 x 240, blended seamlessly
    assert out.info["refine_tiles"] == 4 and calls == [0, 1, 2, 3]
    stages = [p[3] for p in events.of("progress")]
    assert stages == ["upscale"] * (len(stages) - 4) + ["refine"] * 4
    assert events.of("started")[0][1] == len(stages) and out.seeds == (5,)

    # the band seam fix refines again, but only within its band (64 px) plus feather around each border
    banded, _ = upscale(
        registry, upscale_job(Rect(0, 0, 70, 60), **params, **refine_args, seam_fix="band"), image, refine=brighten
    )
    assert banded.info["refine_tiles"] == 4 + 4  # 2 bands along each of the 2 borders
    changed = np.any(banded.images[0] != out.images[0], axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.any()
    assert np.all((np.abs(xs - 140) <= 32 + 8) | (np.abs(ys - 120) <= 32 + 8))


def test_cancel_between_model_tiles(compact_model) -> None:
    model = OomModel(compact_model, max_side=1000)
    events = RecordingEvents(cancel_after=2)
    with pytest.raises(JobCancelled):
        upscale(FixedRegistry(model), upscale_job(Rect(0, 0, 96, 96), scale=2, tile=32), smooth_image(96, 96), events)
    assert len(model.seen) == 2 and len(events.of("progress")) == 2


def test_cancel_between_refine_tiles(registry) -> None:
    events = RecordingEvents(cancel_after=2)  # the Lanczos step, then the first refine tile
    job = upscale_job(Rect(0, 0, 64, 64), upscaler=LANCZOS, scale=8, refine=True, refine_tile=256)
    seen = []
    with pytest.raises(JobCancelled):
        upscale(registry, job, smooth_image(64, 64), events, refine=lambda rgb, m, i: seen.append(i) or rgb)
    assert seen == [0]


def test_out_of_memory_keeps_the_announced_step_count(compact_model) -> None:
    model = OomModel(compact_model, max_side=40)
    job = upscale_job(Rect(0, 0, 120, 100), scale=4, tile=64, overlap=8)
    out, events = upscale(FixedRegistry(model), job, smooth_image(100, 120))
    assert out.images[0].shape == (400, 480, 4)
    assert out.info["oom_retries"] == 1 and out.info["tile_limit"] == 32 and out.info["tile"] == 64
    total = events.of("started")[0][1]
    assert total == 4 and [p[1] for p in events.of("progress")] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def compact_model():
    return descriptor(compact(4))


def expect_error(registry, job, image, code: ErrorCode, field: str, **kwargs) -> None:
    events = RecordingEvents()
    with pytest.raises(EngineError) as err:
        run_upscale(job, image, events, upscalers=registry, refine=None, **kwargs)
    assert err.value.code == code and err.value.field == field
    assert events.of("started") == [], "refused before any work was announced"


def test_bad_requests_are_engine_errors_naming_the_field(registry) -> None:
    image = smooth_image(20, 20)
    region = Rect(0, 0, 20, 20)
    expect_error(registry, upscale_job(Rect(0, 0, 21, 20)), image, ErrorCode.SIZE_MISMATCH, "job.image")
    expect_error(
        registry, upscale_job(region, upscaler="nope"), image, ErrorCode.UNKNOWN_UPSCALER, "job.upscale.upscaler"
    )
    expect_error(registry, upscale_job(region, refine=True), image, ErrorCode.NOT_SUPPORTED, "job.upscale.refine")
    expect_error(
        registry, upscale_job(region, scale=8), image, ErrorCode.TOO_LARGE, "job.upscale.scale", max_pixels=5000
    )
    big = upscale_job(region, target=Size(100, 100))
    expect_error(registry, big, image, ErrorCode.TOO_LARGE, "job.upscale.target", max_pixels=5000)
