"""Pre-fill the hole before inpainting, so the old content under the mask does not steer the result.

Only what the model sees changes; the pixels outside the hole are returned untouched. ``telea`` uses OpenCV
when it is installed (it is optional) and is refused with a clear error otherwise.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from latentbrush.protocol import ErrorCode

from ..events import EngineError
from .masks import blur

CONCRETE_MODES = ("none", "blur", "color", "noise", "telea")
NEUTRAL_GREY = (127, 127, 127)


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


def neighbour_blur(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill the hole with blurred colours of the nearest known pixels (normalized convolution at growing radii)."""
    known = (hole == 0).astype(np.float64)
    out = rgb.astype(np.float64)
    todo = hole > 0
    if not known.any():
        out[todo] = NEUTRAL_GREY
        return out.astype(np.uint8)
    radius = 4
    while todo.any():
        weight = blur(known, radius)
        reached = todo & (weight > 1e-6)
        if reached.any():
            for c in range(3):
                channel = blur(rgb[..., c] * known, radius)
                out[..., c][reached] = channel[reached] / weight[reached]
            todo &= ~reached
        radius *= 2
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


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
