"""The one step reporter: numbers a job's steps 1..total and sends a preview and progress for each.

Diffusion maps the pipeline's callbacks onto it (``CallbackSteps``: one callback per timestep, order-2
samplers make about two per step); the upscaler calls ``step`` once per model tile and refine call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from latentbrush.protocol import Rect

from ..events import JobEvents


class StepReporter:
    """Step ``done`` of ``total``; each step sends its preview (when there is one) over ``rect``, then progress."""

    def __init__(self, events: JobEvents, total: int, rect: Rect, *, previews: bool = True) -> None:
        self.events, self.total, self.rect, self.previews = events, total, rect, previews
        self.done = 0

    def step(self, stage: str, rgb: np.ndarray | None = None, index: int = 0, *, to: int | None = None) -> None:
        """Steps up to ``to`` (default: the next one) are done; ``rgb`` (h x w x 3) shows the job now."""
        self.done = self.done + 1 if to is None else to
        if rgb is not None and self.previews:
            self.events.preview(self.done, self.total, rgb, self.rect, index)
        self.events.progress(self.done, self.total, stage)


class CallbackSteps:
    """Maps one image's pipeline callbacks onto ``per_image`` steps of ``reporter`` (batch item ``index``).

    ``picture`` makes a step's preview from what the pipeline hook hands over (the x0 capture); it is called
    only when previews are wanted, so a step whose preview is not sent costs no decode.
    """

    def __init__(self, reporter: StepReporter, per_image: int, index: int,
                 picture: Callable[[Any], np.ndarray | None] | None) -> None:
        self.reporter, self.per_image, self.index, self.picture = reporter, per_image, index, picture
        self._done = 0

    def __call__(self, i: int, callbacks: int, captured: Any = None) -> None:
        step = min(self.per_image, ((i + 1) * self.per_image) // callbacks) if callbacks else self.per_image
        if step <= self._done:
            return
        self._done = step
        rgb = self.picture(captured) if self.picture is not None and self.reporter.previews else None
        self.reporter.step("denoise", rgb, self.index, to=self.index * self.per_image + step)
