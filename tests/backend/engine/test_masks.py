"""Mask math at the edges: 1-px masks, masks touching borders, odd sizes, empty and full masks."""

from __future__ import annotations

import numpy as np
import pytest
from latentbrush.backend.ops import masks

SHAPES = [(1, 1), (1, 7), (7, 1), (5, 9), (16, 16), (31, 17)]


def brute_max(a: np.ndarray, r: int) -> np.ndarray:
    """Reference square max filter with replicated borders."""
    h, w = a.shape
    out = np.empty_like(a)
    for y in range(h):
        for x in range(w):
            out[y, x] = a[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].max()
    return out


def random_mask(shape: tuple[int, int], seed: int, density: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(shape) < density, 255, 0).astype(np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("radius", [0, 1, 2, 5, 40])
def test_grow_matches_brute_force(shape: tuple[int, int], radius: int) -> None:
    for seed in range(3):
        mask = random_mask(shape, seed)
        np.testing.assert_array_equal(masks.grow(mask, radius), brute_max(mask, radius))


@pytest.mark.parametrize("shape", SHAPES)
def test_grow_and_erode_work_on_grey_values(shape: tuple[int, int]) -> None:
    grey = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(masks.grow(grey, 2), brute_max(grey, 2))
    np.testing.assert_array_equal(masks.erode(grey, 2), 255 - brute_max(255 - grey, 2))


def test_single_pixel_grows_to_a_square() -> None:
    mask = np.zeros((9, 11), np.uint8)
    mask[4, 5] = 255
    grown = masks.grow(mask, 2)
    expected = np.zeros_like(mask)
    expected[2:7, 3:8] = 255
    np.testing.assert_array_equal(grown, expected)
    assert not masks.erode(mask, 1).any()  # a 1-px mask erodes away


def test_mask_touching_the_border_is_not_eroded_from_outside() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[:, :4] = 255  # left band touching the left, top and bottom borders
    eroded = masks.erode(mask, 1)
    assert (eroded[:, :3] == 255).all()  # only the inner edge moved
    assert not eroded[:, 3:].any()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("value", [0, 255])
def test_uniform_masks_are_fixed_points(shape: tuple[int, int], value: int) -> None:
    mask = np.full(shape, value, np.uint8)
    for out in (masks.grow(mask, 3), masks.erode(mask, 3), masks.feather(mask, 7),
                masks.composite_mask(mask, mask, 6)):
        np.testing.assert_array_equal(out, mask)


def test_feather_spreads_exactly_radius_pixels() -> None:
    mask = np.zeros((41, 41), np.uint8)
    mask[20, 20] = 255
    mask[15:26, 15:26] = 255
    for radius in (1, 2, 3, 7, 10):
        soft = masks.blur(mask, radius)
        reach = masks.grow(mask, radius) > 0
        # nothing beyond the radius (scipy's running sums leave float64 dust of ~1e-14 there) ...
        assert (np.abs(soft[~reach]) < 1e-9).all(), radius
        assert (soft[reach] > 1e-9).all(), radius  # ... and everything within it is touched
        assert not masks.feather(mask, radius)[~reach].any(), radius  # the uint8 feather is exactly 0 there


def test_blur_preserves_mass_away_from_borders() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 25:35] = 255
    assert masks.blur(mask, 9).sum() == pytest.approx(mask.astype(np.float64).sum())


def test_feather_is_monotone_and_symmetric() -> None:
    mask = np.zeros((1, 21), np.uint8)
    mask[0, 10:] = 255
    row = masks.feather(mask, 6)[0].astype(int)
    assert (np.diff(row) >= 0).all()
    assert row[0] == 0 and row[-1] == 255
    assert row[10] + row[9] == pytest.approx(255, abs=2)  # the half-way point sits on the edge


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("grow", "feather", "blend"), [(0, 0, 0), (1, 2, 3), (4, 0, 8), (0, 5, 1), (10, 10, 10)])
def test_composite_alpha_is_zero_outside_the_grown_mask(
    shape: tuple[int, int], grow: int, feather: int, blend: int
) -> None:
    for seed in range(2):
        mask = random_mask(shape, seed, density=0.1)
        grown, soft = masks.denoise_mask(mask, grow, feather)
        alpha = masks.composite_mask(soft, grown, blend)
        assert alpha.dtype == np.uint8 and alpha.shape == shape
        assert not alpha[grown == 0].any()
        np.testing.assert_array_equal(grown, brute_max(mask, grow))


def test_composite_alpha_is_opaque_deep_inside() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[8:56, 8:56] = 255
    grown, soft = masks.denoise_mask(mask, 4, 4)
    alpha = masks.composite_mask(soft, grown, 8)
    assert (alpha[20:44, 20:44] == 255).all()
    assert 0 < alpha[8, 32] < 255  # soft at the original edge


def test_composite_without_blend_is_the_grown_mask() -> None:
    mask = random_mask((20, 30), 4)
    grown, soft = masks.denoise_mask(mask, 2, 0)
    np.testing.assert_array_equal(masks.composite_mask(soft, grown, 0), grown)


def test_masks_must_be_2d_uint8() -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        masks.grow(np.zeros((4, 4), np.float32), 1)
    with pytest.raises(ValueError, match="2-D uint8"):
        masks.feather(np.zeros((4, 4, 1), np.uint8), 1)


def test_resize_helpers() -> None:
    mask = random_mask((13, 7), 2)
    assert masks.resize_mask(mask, 7, 13) is not mask
    np.testing.assert_array_equal(masks.resize_mask(mask, 7, 13), mask)
    assert masks.resize_mask(mask, 70, 130).shape == (130, 70)
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(masks.resize_rgb(rgb, 11, 9), rgb)
    assert masks.resize_rgb(rgb, 33, 27).shape == (27, 33, 3)
    full = np.full((10, 10), 255, np.uint8)
    assert (masks.resize_mask(full, 3, 5) == 255).all()


# ------------------------------------------------------------------ scipy.ndimage against the hand-written filters
# The filters above used to be hand-written (van Herk/Gil-Werman max, cumulative-sum box); they are now
# scipy.ndimage calls. These references are the old code, kept to show the outputs did not change.


def _old_max_along_rows(a: np.ndarray, radius: int) -> np.ndarray:
    k = 2 * radius + 1
    n = a.shape[0]
    tail = radius + (-(n + 2 * radius)) % k
    padded = np.pad(a, ((radius, tail), (0, 0)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // k, k, -1)
    prefix = np.maximum.accumulate(blocks, axis=1).reshape(padded.shape)
    suffix = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].reshape(padded.shape)
    return np.maximum(suffix[:n], prefix[k - 1 : k - 1 + n])


def old_grow(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return _old_max_along_rows(_old_max_along_rows(mask, radius).T, radius).T.copy()


def _old_box_along_rows(a: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(a, ((radius + 1, radius), (0, 0)), mode="edge")
    acc = np.cumsum(padded, axis=0)
    k = 2 * radius + 1
    return (acc[k:] - acc[:-k]) / k


def old_blur(values: np.ndarray, radius: int) -> np.ndarray:
    out = values.astype(np.float64)
    if radius <= 0:
        return out
    for r in [radius // 3 + (1 if i < radius % 3 else 0) for i in range(3)]:
        if r:
            out = _old_box_along_rows(_old_box_along_rows(out, r).T, r).T
    return out


def old_feather(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    return np.clip(np.rint(old_blur(mask, radius)), 0, 255).astype(np.uint8)


def edge_case_masks(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    band = np.zeros(shape, np.uint8)
    band[shape[0] // 4 : shape[0] // 2 + 1, shape[1] // 3 :] = 255  # touches the right border
    dot = np.zeros(shape, np.uint8)
    dot[shape[0] // 2, shape[1] // 2] = 255
    return {
        "empty": np.zeros(shape, np.uint8),
        "full": np.full(shape, 255, np.uint8),
        "random": random_mask(shape, 3),
        "grey": rng.integers(0, 256, shape, dtype=np.uint8),
        "band": band,
        "dot": dot,
    }


@pytest.mark.parametrize("shape", [*SHAPES, (3, 200), (129, 257)])
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4, 7, 17, 40, 300])  # 40 and 300 exceed the small images
def test_scipy_filters_give_the_old_output(shape: tuple[int, int], radius: int) -> None:
    for name, mask in edge_case_masks(shape).items():
        grown, eroded = masks.grow(mask, radius), masks.erode(mask, radius)
        assert grown.dtype == eroded.dtype == np.uint8 and grown.shape == eroded.shape == shape
        np.testing.assert_array_equal(grown, old_grow(mask, radius), err_msg=name)
        np.testing.assert_array_equal(eroded, 255 - old_grow(255 - mask, radius), err_msg=name)
        np.testing.assert_array_equal(masks.feather(mask, radius), old_feather(mask, radius), err_msg=name)
        # the float64 blur sums in another order: equal to ~1e-11 (of 255), never enough to move a rounded value
        np.testing.assert_allclose(masks.blur(mask, radius), old_blur(mask, radius), rtol=0, atol=1e-9, err_msg=name)


def test_filters_do_not_alias_their_input() -> None:
    mask = random_mask((9, 9), 5)
    for out in (masks.grow(mask, 0), masks.erode(mask, 0), masks.grow(mask, 2), masks.erode(mask, 2)):
        assert out is not mask and not np.shares_memory(out, mask)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Chebyshev distance of every pixel to the nearest non-zero pixel (the square grow's metric)."""
    from scipy import ndimage

    return ndimage.distance_transform_cdt(mask == 0, metric="chessboard")


@pytest.mark.parametrize("outward", [0, 1, 5, 30])
@pytest.mark.parametrize("blend", [0, 1, 6, 25, 50])
def test_capped_alpha_never_exceeds_the_grown_selection(outward: int, blend: int) -> None:
    for name, mask in edge_case_masks((61, 83)).items():
        alpha = masks.capped_alpha(mask, outward, blend)
        assert alpha.dtype == np.uint8 and alpha.shape == mask.shape
        assert (alpha <= masks.grow(mask, outward)).all(), name
        if mask.any():
            assert not alpha[_distance_to(mask) > outward].any(), name  # nothing past outward changes


def test_capped_alpha_honours_a_soft_selection_and_ramps_inside_a_hard_one() -> None:
    feathered = np.zeros((40, 120), np.uint8)
    feathered[:, 40:80] = 255
    feathered[:, 20:40] = np.linspace(0, 255, 20, endpoint=False).astype(np.uint8)  # a 20 px soft edge
    # blend 0: the selection's own coverage is the alpha, exactly
    np.testing.assert_array_equal(masks.capped_alpha(feathered, 0, 0), feathered)

    hard = np.zeros((40, 120), np.uint8)
    hard[:, 40:80] = 255
    row = masks.capped_alpha(hard, 0, 10)[20]
    assert not row[:40].any() and not row[80:].any()  # not one pixel outside the selection
    assert row[40] < 64 and row[79] < 64  # the soft edge starts near 0 at the selection's edge...
    assert (row[50:70] == 255).all()  # ...and is fully opaque blend (10) px inside it
    assert (np.diff(row[40:51].astype(int)) >= 0).all()  # a monotonic ramp


def test_capped_alpha_blends_outward_only_as_far_as_asked() -> None:
    hard = np.zeros((40, 120), np.uint8)
    hard[:, 40:80] = 255
    row = masks.capped_alpha(hard, 8, 10)[20]
    assert not row[:32].any() and not row[88:].any() and row[34] > 0  # reaches 8 px out, no further
    assert (row[42:78] == 255).all()
