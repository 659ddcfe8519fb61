"""Tiled img2img refine after the upscale: tile geometry, feathered masks, blending, seam fix."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from latentbrush.backend.events import EngineError, JobCancelled
from latentbrush.backend.upscale.refine import refine_image
from latentbrush.backend.upscale.refine_plan import (
    band_steps,
    feather,
    half_tile_steps,
    refine_steps,
    seam_band_width,
    tile_steps,
)
from latentbrush.backend.upscale.tiles import partition_spans
from latentbrush.protocol import ErrorCode, Size, UpscaleParams
from PIL import Image, ImageFilter

SIZE = Size(200, 150)  # 2 x 2 refine tiles of 100 x 75 with tile 128


def brighten(amount: int):
    def refine(rgb: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
        return np.clip(rgb.astype(np.int16) + amount, 0, 255).astype(np.uint8)

    return refine


def fill_per_tile(rgb: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
    """A refine whose answer depends only on the tile: the worst case for seams."""
    return np.full_like(rgb, 40 + 60 * index)


def smoothing(rgb: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
    """A refine that removes steps (what a denoiser does to a seam)."""
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(8)))


def flat(value: int = 100, size: Size = SIZE) -> np.ndarray:
    return np.full((size.height, size.width, 3), value, dtype=np.uint8)


def test_tile_steps_partition_the_image_with_padded_clamped_crops() -> None:
    steps = tile_steps(SIZE, 128, 24)
    assert len(steps) == 4
    cover = np.zeros((SIZE.height, SIZE.width), int)
    for step in steps:
        cover[step.y.span.start : step.y.span.end, step.x.span.start : step.x.span.end] += 1
        crop = step.crop
        assert crop.x == max(0, step.x.span.start - 24) and crop.x + crop.width == min(200, step.x.span.end + 24)
        assert crop.y == max(0, step.y.span.start - 24) and crop.y + crop.height == min(150, step.y.span.end + 24)
    assert np.all(cover == 1)


def test_tile_masks_are_feathered_inside_and_full_at_the_image_edge() -> None:
    step = tile_steps(SIZE, 128, 24)[0]  # top-left tile: x 0..100, y 0..75, crop 0..124 x 0..99
    mask = step.mask(8, SIZE)
    assert mask.shape == (99, 124)
    assert mask[0, 0] == pytest.approx(1.0) and mask[40, 50] == pytest.approx(1.0)  # image corner, middle
    assert mask[40, 99] == pytest.approx(0.5, abs=0.1) and mask[40, 100] == pytest.approx(0.5, abs=0.1)  # border
    assert mask[40, 123] == 0.0 and mask[98, 40] == 0.0  # the crop's inner edges
    assert np.all(np.diff(mask[40, 90:112]) <= 0), "falls off monotonically across the border"


def test_neighbouring_tile_masks_add_up_to_one() -> None:
    left, right = tile_steps(Size(200, 60), 100, 16)
    row = 30
    ml, mr = left.mask(8, Size(200, 60))[row], right.mask(8, Size(200, 60))[row]
    total = np.zeros(200)
    total[left.crop.x : left.crop.x + left.crop.width] += ml
    total[right.crop.x : right.crop.x + right.crop.width] += mr
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_feather_without_blur_is_the_profile() -> None:
    profile = np.array([0, 1, 1, 0], np.float32)
    np.testing.assert_array_equal(feather(profile, 0, False, False), profile)
    wide = np.array([0, 0, 0, 1, 1, 0, 0, 0], np.float32)
    assert feather(wide, 2, False, False).sum() == pytest.approx(2.0, abs=1e-5)  # mass is kept
    assert feather(np.ones(5, np.float32), 2, True, True) == pytest.approx(np.ones(5))  # image edges stay 1


def old_feather(profile: np.ndarray, blur: int, extend_start: bool, extend_end: bool) -> np.ndarray:
    """The hand-written float32 Gaussian that ``scipy.ndimage.gaussian_filter1d`` replaced."""
    if blur <= 0 or profile.size == 0:
        return profile.astype(np.float32)
    offsets = np.arange(-blur, blur + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (offsets / (blur / 2.0)) ** 2)
    kernel /= kernel.sum()
    start = np.full(blur, profile[0] if extend_start else 0.0, dtype=np.float32)
    end = np.full(blur, profile[-1] if extend_end else 0.0, dtype=np.float32)
    padded = np.concatenate([start, profile.astype(np.float32), end])
    return np.convolve(padded, kernel, mode="valid").astype(np.float32)


@pytest.mark.parametrize("length", [1, 2, 3, 17, 100, 333])
@pytest.mark.parametrize("blur", [0, 1, 2, 3, 8, 50, 256, 1000])  # 256 and 1000 reach past most profiles
def test_scipy_feather_matches_the_old_kernel(length: int, blur: int) -> None:
    """Equal to one float32 ulp near 1 (2**-23): the old code summed a float32 kernel in float32, scipy sums
    in float64, so bit equality is impossible; the difference is below what a uint8 blend can show."""
    rng = np.random.default_rng(length * 7 + blur)
    profiles = {
        "zeros": np.zeros(length, np.float32),
        "ones": np.ones(length, np.float32),
        "step": (np.arange(length) > length // 2).astype(np.float32),
        "random": rng.random(length).astype(np.float32),
    }
    for name, profile in profiles.items():
        for extend_start in (False, True):
            for extend_end in (False, True):
                new = feather(profile, blur, extend_start, extend_end)
                old = old_feather(profile, blur, extend_start, extend_end)
                assert new.dtype == np.float32 and new.shape == old.shape, name
                np.testing.assert_allclose(new, old, rtol=0, atol=2**-23, err_msg=f"{name} {extend_start} {extend_end}")
                if name == "zeros":
                    assert not new.any()
                if name == "ones" and extend_start and extend_end:
                    np.testing.assert_allclose(new, 1.0, rtol=0, atol=2**-23)


def test_a_uniform_refine_is_blended_without_a_trace_of_the_tiles() -> None:
    image = np.random.default_rng(0).integers(0, 200, (SIZE.height, SIZE.width, 3), dtype=np.uint8)
    steps = refine_steps(SIZE, UpscaleParams(refine_tile=128, refine_padding=16, refine_mask_blur=8))
    out = refine_image(image, steps, brighten(30), 8, threading.Event())
    assert np.abs(out.astype(int) - (image.astype(int) + 30)).max() <= 1


def max_step_across(image: np.ndarray, columns: list[int]) -> float:
    return max(float(np.abs(image[:, c].astype(int) - image[:, c - 1].astype(int)).max()) for c in columns)


def test_tile_specific_refines_meet_in_a_feather_not_a_step() -> None:
    size = Size(200, 50)
    steps = tile_steps(size, 100, 16)
    hard = refine_image(flat(size=size), steps, fill_per_tile, 0, threading.Event())
    assert max_step_across(hard, [100]) == 60  # without a feather: the tiles' own values meet head-on
    soft = refine_image(flat(size=size), steps, fill_per_tile, 8, threading.Event())
    assert max_step_across(soft, [100]) <= 10
    assert soft[25, 10, 0] == 40 and soft[25, 190, 0] == 100  # tile interiors hold their refine
    assert np.all(np.abs(np.diff(soft[25, :, 0].astype(int))) <= 10)


@pytest.mark.parametrize("seam_fix", ["band", "half_tile"])
def test_seam_fix_smooths_tile_borders_and_leaves_the_rest(seam_fix: str) -> None:
    size = Size(256, 192)
    params = UpscaleParams(refine_tile=128, refine_padding=16, refine_mask_blur=4, seam_fix=seam_fix)
    tiles = tile_steps(size, 128, 16)
    seamed = refine_image(flat(size=size), tiles, fill_per_tile, 0, threading.Event())  # hard seams
    fixes = refine_steps(size, params)[len(tiles) :]
    assert fixes and {f.kind for f in fixes} == {seam_fix}
    fixed = refine_image(seamed, fixes, smoothing, 4, threading.Event())
    xs = [s.start for s in partition_spans(size.width, 128)[1:]]
    ys = [s.start for s in partition_spans(size.height, 128)[1:]]
    assert max_step_across(fixed, xs) < max_step_across(seamed, xs) / 3
    assert max_step_across(fixed.transpose(1, 0, 2), ys) < max_step_across(seamed.transpose(1, 0, 2), ys) / 3
    # far from every border nothing changes
    np.testing.assert_array_equal(fixed[:20, :20], seamed[:20, :20])
    np.testing.assert_array_equal(fixed[-20:, -20:], seamed[-20:, -20:])


def test_band_steps_cover_each_border_once_per_tile_length() -> None:
    size = Size(300, 200)  # tiles: 3 columns (100), 2 rows (100)
    bands = band_steps(size, 128, 16, 8)
    width = seam_band_width(128, 8)
    assert width == 64
    vertical = [b for b in bands if b.x.seam is not None]
    horizontal = [b for b in bands if b.y.seam is not None]
    assert len(vertical) == 2 * 2 and len(horizontal) == 1 * 3
    assert {b.x.seam for b in vertical} == {100, 200} and {b.y.seam for b in horizontal} == {100}
    assert all(b.x.span.length == width for b in vertical)
    mask = vertical[0].mask(0, size)
    seam_col = vertical[0].x.seam - vertical[0].crop.x
    assert mask[50, seam_col] > 0.95 and mask[50, seam_col - 31] < 0.05


def test_half_tile_steps_are_centred_on_the_borders() -> None:
    steps = half_tile_steps(Size(300, 200), 128, 16)
    across_rows = [s for s in steps if s.y.seam is not None]
    across_columns = [s for s in steps if s.x.seam is not None]
    assert len(across_rows) == 3 and len(across_columns) == 2 * 2
    assert all(s.y.span == (50, 150) for s in across_rows)
    assert {s.x.span for s in across_columns} == {(50, 150), (150, 250)}


def test_refine_steps_order_tiles_then_seam_fix() -> None:
    size = Size(600, 400)  # 3 x 2 tiles of 200
    none = refine_steps(size, UpscaleParams(refine_tile=256, seam_fix="none"))
    band = refine_steps(size, UpscaleParams(refine_tile=256, seam_fix="band"))
    half = refine_steps(size, UpscaleParams(refine_tile=256, seam_fix="half_tile"))
    assert [s.kind for s in none] == ["tile"] * 6
    assert [s.kind for s in band] == ["tile"] * 6 + ["band"] * (2 * 2 + 1 * 3)
    assert [s.kind for s in half] == ["tile"] * 6 + ["half_tile"] * (1 * 3 + 2 * 2)
    assert all(s.crop.width <= 200 + 2 * 32 for s in none)  # default padding 32


def test_refine_gets_uint8_crops_masks_and_running_indices() -> None:
    calls = []

    def spy(rgb: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
        calls.append((rgb.shape, rgb.dtype, None if mask is None else (mask.shape, mask.dtype, int(mask.max())), index))
        return rgb

    steps = tile_steps(SIZE, 128, 24)
    refine_image(flat(), steps, spy, 8, threading.Event(), first_index=5)
    assert [c[3] for c in calls] == [5, 6, 7, 8]
    for (shape, dtype, mask, _), step in zip(calls, steps, strict=True):
        assert shape == (step.crop.height, step.crop.width, 3) and dtype == np.uint8
        assert mask == ((step.crop.height, step.crop.width), np.uint8, 255)


def test_a_wrong_answer_from_refine_is_an_engine_error() -> None:
    with pytest.raises(EngineError) as err:
        refine_image(flat(), tile_steps(SIZE, 128, 24), lambda rgb, m, i: rgb[:-1], 8, threading.Event())
    assert err.value.code == ErrorCode.INTERNAL and err.value.field == "job.upscale.refine"


def test_cancel_stops_between_refine_tiles() -> None:
    cancel = threading.Event()
    seen = []

    def refine(rgb: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
        seen.append(index)
        if index == 1:
            cancel.set()
        return rgb

    with pytest.raises(JobCancelled):
        refine_image(flat(), tile_steps(SIZE, 128, 24), refine, 8, cancel)
    assert seen == [0, 1]
