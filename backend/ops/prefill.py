"""Pre-fill the hole before inpainting, so the old content under the mask does not steer the result.

Only what the model sees changes; the pixels outside the hole are returned untouched. ``telea`` uses OpenCV
when it is installed (it is optional) and is refused with a clear error otherwise.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from latentbrush.protocol import ErrorCode
from PIL import Image

from ..events import EngineError
from .masks import blur

CONCRETE_MODES = ("none", "blur", "color", "noise", "telea")
NEUTRAL_GREY = (127, 127, 127)
WORK_SIDE = 128  # neighbour blur works at this size: its result is smooth anyway


def telea_available() -> bool:
    return importlib.util.find_spec("cv2") is not None


def resolve_mode(mode: str, *, inpaint_model: bool, strength: float) -> str:
    """The concrete mode for ``auto``.

    A 9-channel inpaint model sees the hole blanked out already, and at strength < 1 the user wants the old
    content refined, so both keep it; a plain model repainting from scratch gets the neighbour blur, which
    keeps the old object's colours out of the VAE's view of the hole's surroundings.
    """
    if mode != "auto":
        return mode
    if inpaint_model or strength < 0.99:
        return "none"
    return "blur"


def _resize_plane(plane: np.ndarray, width: int, height: int, method: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(plane.astype(np.float32), "F").resize((width, height), method))


def neighbour_blur(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill the hole with blurred colours of the nearest known pixels (normalized convolution at growing radii).

    The fill is smooth by design, so it is computed at most WORK_SIDE pixels across and scaled back up:
    milliseconds instead of seconds on a 1024 px context.
    """
    inside = hole > 0
    out = rgb.copy()
    if inside.all():
        out[...] = NEUTRAL_GREY
        return out
    height, width = hole.shape
    scale = min(1.0, WORK_SIDE / max(height, width))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    known = (~inside).astype(np.float32)
    weight = _resize_plane(known, w, h, Image.Resampling.BOX).astype(np.float64)
    colour = [_resize_plane(rgb[..., c] * known, w, h, Image.Resampling.BOX).astype(np.float64) for c in range(3)]
    fill = np.zeros((h, w, 3))
    todo = np.ones((h, w), bool)
    radius = 0
    while todo.any():
        spread = blur(weight, radius)
        reached = todo & (spread > 1e-6)
        for c in range(3):
            fill[..., c][reached] = blur(colour[c], radius)[reached] / spread[reached]
        todo &= ~reached
        radius = max(1, radius * 2)
    full = np.dstack([_resize_plane(fill[..., c], width, height, Image.Resampling.BILINEAR) for c in range(3)])
    out[inside] = np.clip(np.rint(full[inside]), 0, 255).astype(np.uint8)
    return out


def prefill(
    rgb: np.ndarray, hole: np.ndarray, mode: str, *, color: tuple[int, ...] | None = None, seed: int = 0
) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) with the pixels where ``hole`` > 0 replaced according to ``mode``."""
    if mode not in CONCRETE_MODES:
        raise EngineError(ErrorCode.BAD_FIELD, f"unknown prefill mode {mode!r}", "job.prefill")
    if mode == "none" or not hole.any():
        return rgb.copy()
    inside = hole > 0
    if mode == "blur":
        return neighbour_blur(rgb, hole)
    out = rgb.copy()
    if mode == "color":
        if color is None:  # the average colour around the hole is the least surprising default
            known = rgb[~inside]
            color = tuple(int(v) for v in known.mean(axis=0).round()) if len(known) else NEUTRAL_GREY
        out[inside] = np.asarray(color, dtype=np.uint8)
    elif mode == "noise":
        noise = np.random.default_rng(seed).integers(0, 256, size=rgb.shape, dtype=np.uint8)
        out[inside] = noise[inside]
    else:  # telea
        if not telea_available():
            raise EngineError(
                ErrorCode.NOT_SUPPORTED,
                "prefill 'telea' needs OpenCV (pip install opencv-python-headless); use 'blur' instead",
                "job.prefill",
            )
        import cv2

        filled = cv2.inpaint(np.ascontiguousarray(rgb), inside.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        out[inside] = filled[inside]
    return out
