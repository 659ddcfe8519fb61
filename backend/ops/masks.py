"""Mask math for inpainting, as pure functions on H x W uint8 arrays (255 = repaint).

Grow and erode are square max/min filters (``scipy.ndimage``, O(pixels) for any radius); feather is a
triple box blur whose support is exactly the radius, so nothing spreads further than the user asked.
Pixels outside the image count as copies of the border pixel (``mode="nearest"``): a mask touching the
border is neither eroded nor blurred from outside, because the canvas continues beyond the context box.

Pipeline (krita-ai-diffusion's anchors): denoise mask = feather(grow(mask)); composite (alpha) mask =
feather(erode(denoise, blend // 2), blend), forced to 0 outside the grown mask so the canvas stays
bit-identical there. A 1.1 job with ``mask_outward`` caps the composite instead at the sent mask
grown by that many pixels (:func:`capped_alpha`): the painter's selection is the contract.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def _check_mask(mask: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be a 2-D uint8 array, got {mask.dtype} {mask.shape}")


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate by ``radius`` pixels (square structuring element)."""
    _check_mask(mask)
    if radius <= 0:
        return mask.copy()
    return ndimage.maximum_filter(mask, size=2 * radius + 1, mode="nearest")


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink by ``radius`` pixels (square structuring element); the dual of :func:`grow`."""
    _check_mask(mask)
    if radius <= 0:
        return mask.copy()
    return ndimage.minimum_filter(mask, size=2 * radius + 1, mode="nearest")


def blur(values: np.ndarray, radius: int) -> np.ndarray:
    """Approximately Gaussian blur (three box passes) whose support is exactly ``radius`` pixels; float64 out."""
    out = values.astype(np.float64)
    if radius <= 0:
        return out
    radii = [radius // 3 + (1 if i < radius % 3 else 0) for i in range(3)]
    for r in radii:
        if r:
            out = ndimage.uniform_filter(out, size=2 * r + 1, mode="nearest")
    return out


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """Soften the mask edge over ``radius`` pixels on each side (uint8 out)."""
    _check_mask(mask)
    if radius <= 0:
        return mask.copy()
    return np.clip(np.rint(blur(mask, radius)), 0, 255).astype(np.uint8)


def denoise_mask(mask: np.ndarray, grow_px: int, feather_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(grown mask, denoise mask): the area that may change, and the soft mask handed to the pipeline."""
    grown = grow(mask, grow_px)
    return grown, feather(grown, feather_px)


def composite_mask(denoise: np.ndarray, limit: np.ndarray, blend_px: int) -> np.ndarray:
    """Alpha for pasting the result back: erode by blend/2, feather by blend, and exactly 0 where ``limit`` is 0."""
    _check_mask(limit)
    alpha = feather(erode(denoise, blend_px // 2), blend_px)
    alpha[limit == 0] = 0
    return alpha


def capped_alpha(mask: np.ndarray, outward_px: int, blend_px: int) -> np.ndarray:
    """Alpha that never exceeds ``limit`` = the mask grown by ``outward_px``, pixel by pixel.

    The soft edge lies inside the limit: erode by blend/2, feather by blend/2 (support exactly
    blend/2), so a hard limit edge ramps from 0 at the edge to 255 at ``blend_px`` inside; a
    soft (feathered) mask keeps its own coverage as the ceiling.
    """
    limit = grow(mask, outward_px)
    half = blend_px // 2
    return np.minimum(limit, feather(erode(limit, half), half))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a uint8 mask (identity when the size already matches)."""
    _check_mask(mask)
    if mask.shape == (height, width):
        return mask.copy()
    return np.asarray(Image.fromarray(mask, "L").resize((width, height), Image.Resampling.BILINEAR))


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Lanczos resize of an H x W x 3 uint8 image (identity when the size already matches)."""
    if rgb.shape[:2] == (height, width):
        return rgb.copy()
    return np.asarray(Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.LANCZOS))
