"""A small RGB picture of the upscale in progress, updated tile by tile, sent as preview frames."""

from __future__ import annotations

import numpy as np
from latentbrush.protocol import Rect, Size, round_half_up
from latentbrush.protocol.geometry import scaled_size
from PIL import Image

PREVIEW_OVERSAMPLING = 4  # source pixels per preview pixel (per side) kept before the box filter


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 (rounded); uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    scaled = image * np.float32(255.0)  # one temporary, then in place: these arrays reach gigabytes
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def preview_size(full: Size, max_side: int) -> Size:
    """``full`` shrunk so its longer side is at most ``max_side`` (never enlarged)."""
    factor = min(1.0, max_side / max(full.width, full.height))
    return scaled_size(full, factor)


class PreviewCanvas:
    """Preview-sized RGB image of the final output; tiles from any working resolution are pasted in."""

    def __init__(self, base: np.ndarray, full: Size, max_side: int) -> None:
        self.size = preview_size(full, max_side)
        self._rgb = _resize(to_uint8(base), self.size)

    def paste(self, pixels: np.ndarray, box: Rect, space: Size) -> None:
        """Shows ``pixels``, which cover ``box`` of an image of size ``space``, at the matching place."""
        fx, fy = self.size.width / space.width, self.size.height / space.height
        x0 = min(self.size.width - 1, round_half_up(box.x * fx))
        y0 = min(self.size.height - 1, round_half_up(box.y * fy))
        x1 = min(self.size.width, max(x0 + 1, round_half_up(box.right * fx)))
        y1 = min(self.size.height, max(y0 + 1, round_half_up(box.bottom * fy)))
        # a whole 8192 px output shrinks to a few hundred: keep every k-th pixel first (still >= 4 samples per
        # preview pixel for the box filter), or converting and filtering it all costs more than the model
        k = max(1, min(pixels.shape[1] // (x1 - x0), pixels.shape[0] // (y1 - y0)) // PREVIEW_OVERSAMPLING)
        self._rgb[y0:y1, x0:x1] = _resize(to_uint8(pixels[::k, ::k]), Size(x1 - x0, y1 - y0))

    def frame(self) -> np.ndarray:
        return self._rgb.copy()


def _resize(rgb: np.ndarray, size: Size) -> np.ndarray:
    if rgb.shape[:2] == (size.height, size.width):
        return rgb.copy()
    resample = Image.Resampling.BOX if rgb.shape[1] >= size.width else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((size.width, size.height), resample)).copy()
