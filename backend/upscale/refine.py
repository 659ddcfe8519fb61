"""Run the refine steps of ``refine_plan`` through the engine's refine function.

Each step hands the refine function a uint8 crop of the working image and its feathered mask
(255 = refine) and composites the answer back through the same mask. The working image is
float32 so repeated partial composites do not accumulate rounding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from latentbrush.protocol import ErrorCode, Rect, Size
from latentbrush.protocol.geometry import slices

from ..events import EngineError, JobCancelled, RefineFn
from .preview_canvas import to_uint8
from .refine_plan import RefineStep

# (1-based step number, step count, crop box, refined crop as it now stands in the image)
StepDone = Callable[[int, int, Rect, np.ndarray], None]


def refine_image(
    rgb: np.ndarray,
    steps: tuple[RefineStep, ...],
    refine: RefineFn,
    blur: int,
    cancel: threading.Event,
    on_step: StepDone | None = None,
    first_index: int = 0,
) -> np.ndarray:
    """Applies ``steps`` in order to ``rgb`` (H x W x 3 uint8); returns the refined uint8 image.

    ``first_index`` offsets the tile index passed to ``refine`` (it numbers every call of a job).
    """
    size = Size(rgb.shape[1], rgb.shape[0])
    work = rgb.astype(np.float32)
    for number, step in enumerate(steps, start=1):
        if cancel.is_set():
            raise JobCancelled()
        crop = step.crop
        rows, cols = slices(crop)
        before = work[rows, cols]
        mask = step.mask(blur, size)
        refined = refine(to_uint8(before / 255.0), to_uint8(mask), first_index + number - 1)
        refined = _checked(refined, before.shape)
        work[rows, cols] = before + (refined.astype(np.float32) - before) * mask[..., None]
        if on_step is not None:
            on_step(number, len(steps), crop, to_uint8(work[rows, cols] / 255.0))
    return to_uint8(work / 255.0)


def _checked(refined: object, shape: tuple[int, ...]) -> np.ndarray:
    """The refine function is the engine's; a wrong answer is an engine bug, reported, not composited."""
    if not isinstance(refined, np.ndarray) or refined.shape != shape or refined.dtype != np.uint8:
        got = getattr(refined, "shape", type(refined).__name__), getattr(refined, "dtype", None)
        raise EngineError(ErrorCode.INTERNAL, f"refine returned {got}, expected uint8 {shape}", "job.upscale.refine")
    return refined
