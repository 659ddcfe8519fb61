"""Pre-fill modes: only the hole changes, every mode copes with empty, full and border-touching holes."""

from __future__ import annotations

import numpy as np
import pytest
from latentbrush.backend.events import EngineError
from latentbrush.backend.ops import prefill as prefill_module
from latentbrush.backend.ops.prefill import neighbour_blur, prefill, resolve_mode
from latentbrush.protocol import ErrorCode

MODES = ("none", "blur", "color", "noise", "telea")


def scene(width: int = 24, height: int = 16) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (200, 30, 30)  # red left half
    rgb[:, width // 2 :] = (30, 30, 200)  # blue right half
    return rgb


def hole_at(shape: tuple[int, int], ys: slice, xs: slice) -> np.ndarray:
    hole = np.zeros(shape, np.uint8)
    hole[ys, xs] = 255
    return hole


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "where", [(slice(4, 10), slice(8, 16)), (slice(0, 16), slice(0, 3)), (slice(7, 8), slice(5, 6))]
)
def test_outside_the_hole_is_untouched(mode: str, where: tuple[slice, slice]) -> None:
    rgb = scene()
    hole = hole_at(rgb.shape[:2], *where)
    out = prefill(rgb, hole, mode, seed=3)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out[hole == 0], rgb[hole == 0])


@pytest.mark.parametrize("mode", MODES)
def test_empty_hole_changes_nothing(mode: str) -> None:
    rgb = scene()
    np.testing.assert_array_equal(prefill(rgb, np.zeros(rgb.shape[:2], np.uint8), mode), rgb)


@pytest.mark.parametrize("mode", ["blur", "color", "noise"])
def test_full_hole_is_filled(mode: str) -> None:
    rgb = scene()
    out = prefill(rgb, np.full(rgb.shape[:2], 255, np.uint8), mode, seed=1)
    assert not np.array_equal(out, rgb)
    if mode in ("blur", "color"):  # nothing known: neutral grey
        assert (out == 127).all()


def test_blur_fills_from_the_nearest_side() -> None:
    rgb = scene(40, 10)
    hole = hole_at(rgb.shape[:2], slice(0, 10), slice(14, 26))  # covers the red/blue boundary
    out = neighbour_blur(rgb, hole)
    assert out[5, 14, 0] > out[5, 14, 2]  # left end of the hole leans red
    assert out[5, 25, 2] > out[5, 25, 0]  # right end leans blue
    assert (out[hole > 0] != 0).any()


def test_color_defaults_to_the_mean_around_the_hole_and_takes_an_explicit_colour() -> None:
    rgb = scene()
    hole = hole_at(rgb.shape[:2], slice(2, 6), slice(2, 6))  # inside the red half
    known_mean = rgb[hole == 0].mean(axis=0).round().astype(np.uint8)
    np.testing.assert_array_equal(prefill(rgb, hole, "color")[3, 3], known_mean)
    np.testing.assert_array_equal(prefill(rgb, hole, "color", color=(1, 2, 3))[3, 3], (1, 2, 3))


def test_noise_is_seeded() -> None:
    rgb = scene()
    hole = hole_at(rgb.shape[:2], slice(0, 8), slice(0, 8))
    np.testing.assert_array_equal(prefill(rgb, hole, "noise", seed=5), prefill(rgb, hole, "noise", seed=5))
    assert not np.array_equal(prefill(rgb, hole, "noise", seed=5), prefill(rgb, hole, "noise", seed=6))


def test_telea_without_opencv_is_a_clear_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefill_module, "telea_available", lambda: False)
    rgb = scene()
    with pytest.raises(EngineError) as info:
        prefill(rgb, hole_at(rgb.shape[:2], slice(0, 4), slice(0, 4)), "telea")
    assert info.value.code == ErrorCode.NOT_SUPPORTED and info.value.field == "job.prefill"


def test_unknown_mode_names_the_field() -> None:
    with pytest.raises(EngineError) as info:
        prefill(scene(), np.full((16, 24), 255, np.uint8), "auto")
    assert info.value.field == "job.prefill"


def test_auto_resolution() -> None:
    assert resolve_mode("auto", inpaint_model=True, strength=1.0) == "none"
    assert resolve_mode("auto", inpaint_model=False, strength=0.5) == "none"
    assert resolve_mode("auto", inpaint_model=False, strength=1.0) == "blur"
    assert resolve_mode("noise", inpaint_model=True, strength=1.0) == "noise"
