"""The values that cross the seam between the worker thread and the diffusion engine.

The worker implements :class:`JobEvents`; the engine calls it from the worker thread while a
job runs and raises :class:`JobCancelled` or :class:`EngineError` to end a job early.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from latentbrush.protocol import ErrorCode, Rect

# (tile RGB HxWx3 uint8, optional mask HxW uint8 (255 = refine), tile index) -> refined RGB tile of the
# same size. The engine builds one per upscale job, bound to the job's model, prompt, sampler, seed,
# strength and cancel event; the upscaler calls it once per refine tile.
RefineFn = Callable[[np.ndarray, "np.ndarray | None", int], np.ndarray]


@runtime_checkable
class JobEvents(Protocol):
    """What the engine reports while a job runs. All calls happen on the worker thread."""

    cancel: threading.Event

    def started(self, total: int, seed: int | None) -> None:
        """Work is starting: ``total`` steps (or tiles) will be reported; ``seed`` of the first image."""

    def progress(self, step: int, total: int, stage: str) -> None:
        """``step`` (1-based) of ``total`` is done; stage is "denoise", "upscale", "refine" or "decode"."""

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> None:
        """``rgb`` (h x w x 3 uint8) is the current estimate, to be shown stretched over canvas ``rect``."""

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None:
        """Batch item ``index`` is finished (the same image ``JobOutput.images[index]`` will hold):
        the client gets it now, so a cancel of a later item keeps it."""


def is_out_of_memory(exc: BaseException) -> bool:
    """The one out-of-memory test of the backend: host ``MemoryError``, ``torch.cuda.OutOfMemoryError``
    (matched by name, so this module needs no torch) and the plain RuntimeError MPS and older CUDA raise."""
    if isinstance(exc, MemoryError) or any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class JobCancelled(Exception):
    """Raised inside the engine as soon as it sees ``events.cancel`` set."""


class EngineError(Exception):
    """A job failed for a reason the client should hear about (named field where there is one)."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(f"{code.value}{f' ({field})' if field else ''}: {message}")
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class JobOutput:
    """Finished images (each H x W x 4 RGBA uint8 covering ``job.region``), their seeds and provenance."""

    images: tuple[np.ndarray, ...]
    seeds: tuple[int, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
