"""Run a spandrel upscaler over an image in feathered tiles; Lanczos resizes.

Images here are H x W x 3 float32 in [0, 1] (what spandrel models take), so passes chain without
rounding. ``ModelTiler`` runs one pass: a grid of ``tile`` x ``tile`` input tiles overlapping by
``overlap`` input pixels, blended with linear ramps in the (scaled) overlaps. When the model's
tiling hint is DISCOURAGED or INTERNAL the whole image goes in as one tile while it fits.

Out of memory (``events.is_out_of_memory``): the tile limit is halved and the failing tile is redone as a sub-grid of
half-size tiles, blended the same way; later tiles use the smaller limit straight away. Below
``MIN_TILE`` the job fails with OUT_OF_MEMORY.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from latentbrush.protocol import ErrorCode, Rect, Size
from latentbrush.protocol.geometry import scale, slices
from PIL import Image

from ..events import EngineError, JobCancelled, is_out_of_memory
from .plan import PassPlan
from .tiles import Accumulator, Span, TileGrid, fit_tile_size, tile_grid

MIN_TILE = 32  # below this the overlap dominates and the job is better failed than crawled through
_UNTILED_HINTS = ("DISCOURAGED", "INTERNAL")


class UpscaleModel(Protocol):
    """What we use of ``spandrel.ImageModelDescriptor`` (tests pass fakes with the same shape)."""

    scale: int
    size_requirements: Any  # spandrel.SizeRequirements: minimum, multiple_of, square
    tiling: Any  # spandrel.ModelTiling
    input_channels: int
    device: torch.device
    dtype: torch.dtype

    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


# (1-based tile number in this pass, tiles in this pass, output box, output tile pixels)
TileDone = Callable[[int, int, Rect, np.ndarray], None]


def free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def lanczos_resize(image: np.ndarray, size: Size) -> np.ndarray:
    """Lanczos resize of an H x W x C float32 image (per channel, in float: no 8-bit rounding)."""
    if image.shape[:2] == (size.height, size.width):
        return image
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
                (size.width, size.height), Image.Resampling.LANCZOS
            )
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


class ModelTiler:
    """Runs ``model`` over float RGB images in feathered tiles, halving the tile on out-of-memory."""

    def __init__(self, model: UpscaleModel, tile: int, overlap: int, cancel: threading.Event) -> None:
        self.model = model
        self.scale = int(model.scale)
        req = model.size_requirements
        self._minimum = int(getattr(req, "minimum", 0))
        self._multiple_of = int(getattr(req, "multiple_of", 1))
        self._square = bool(getattr(req, "square", False))
        self.tile = fit_tile_size(tile, self._minimum, self._multiple_of)
        self.overlap = overlap
        self.cancel = cancel
        self.untiled = getattr(model.tiling, "name", "SUPPORTED") in _UNTILED_HINTS
        self.limit: int | None = None if self.untiled else self.tile  # None: no limit until memory runs out
        self.oom_retries = 0

    def grid(self, width: int, height: int) -> TileGrid:
        """The top-level tiles of a pass, the ones progress is reported for (one when untiled).

        It stays the same after an out-of-memory shrink (the smaller limit splits each top-level
        tile into a sub-grid instead), so the step count announced at the start stays true.
        """
        if self.untiled:
            return TileGrid((Span(0, width),), (Span(0, height),))
        return self._grid(width, height, self.tile)

    def _grid(self, width: int, height: int, limit: int) -> TileGrid:
        return tile_grid(width, height, limit, self.overlap, self._multiple_of, self._square)

    def run(self, image: np.ndarray, on_tile: TileDone | None = None) -> np.ndarray:
        """One pass over ``image`` (H x W x 3 float32); returns (H*s) x (W*s) x 3 float32."""
        height, width = image.shape[:2]
        return self._blend(image, self.grid(width, height), on_tile)

    def _blend(self, image: np.ndarray, grid: TileGrid, on_tile: TileDone | None = None) -> np.ndarray:
        boxes = grid.boxes()
        acc = None if len(boxes) == 1 else Accumulator(image.shape[0] * self.scale, image.shape[1] * self.scale, 3)
        out = image
        for index, box in enumerate(boxes):
            self._check_cancel()
            rows, cols = slices(box)
            out = self._apply(image[rows, cols])
            if acc is not None:
                col, row = index % len(grid.columns), index // len(grid.columns)
                acc.add(scale(box, self.scale), out, grid.weight(col, row, self.scale))
            if on_tile is not None:
                on_tile(index + 1, len(boxes), scale(box, self.scale), out)
        return out if acc is None else acc.result()

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled()

    def _apply(self, image: np.ndarray) -> np.ndarray:
        """Upscale ``image`` whole if it fits the limit, else (or after out-of-memory) as a sub-grid."""
        height, width = image.shape[:2]
        if self.limit is None or max(height, width) <= self.limit:
            try:
                return self._call(image)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
            # shrink outside the handler: the exception's traceback keeps the failed call's tensors alive
            self._shrink(max(height, width))
        limit = self.limit if self.limit is not None else max(height, width)
        return self._blend(image, self._grid(width, height, limit))

    def _shrink(self, failed_side: int) -> None:
        """Halve the tile limit below the side that just ran out of memory (not below ``MIN_TILE``)."""
        free_device_memory(self.model.device)
        self.oom_retries += 1
        new = fit_tile_size(max(failed_side // 2, MIN_TILE), self._minimum, self._multiple_of)
        if new >= failed_side:
            raise EngineError(
                ErrorCode.OUT_OF_MEMORY,
                f"the upscaler ran out of {self.model.device} memory even on {failed_side} px tiles",
                "job.upscale.tile",
            )
        self.limit = new if self.limit is None else min(self.limit, new)

    def _call(self, image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        if self.model.input_channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = x.to(device=self.model.device, dtype=self.model.dtype)
        y = self.model(x)
        del x
        if y.shape[1] == 1:
            y = y.expand(-1, 3, -1, -1)
        # H x W x C made contiguous on the device: numpy on a strided view is several times slower
        out = y[0, :3].permute(1, 2, 0).float().contiguous().cpu().numpy()
        expected = (image.shape[0] * self.scale, image.shape[1] * self.scale, 3)
        if out.shape != expected:
            raise EngineError(
                ErrorCode.NOT_SUPPORTED,
                f"the upscaler returned {out.shape[1]}x{out.shape[0]} for a {image.shape[1]}x{image.shape[0]} "
                f"tile, not {self.scale}x",
                "job.upscale.upscaler",
            )
        return out


def upscale_with_model(
    image: np.ndarray,
    passes: tuple[PassPlan, ...],
    tiler: ModelTiler,
    on_tile: Callable[[int, int, int, Rect, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Runs ``passes`` (see ``plan.model_passes``); ``on_tile(pass_index, number, count, box, tile)``."""
    for index, plan in enumerate(passes):
        image = lanczos_resize(image, plan.input)
        callback = None if on_tile is None else (lambda n, c, b, t, i=index: on_tile(i, n, c, b, t))
        image = tiler.run(image, callback)
    return image
