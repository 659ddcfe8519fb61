"""A fake diffusion engine with the seam of ``backend/engine.py``: fast, deterministic, controllable.

It reports ``started``, then per step ``progress`` and one ``preview`` per batch item, and returns
RGBA images derived from the input pixels and the seed, so tests can check exactly what arrived:

* colour = ``rgb_for(seed + index)`` everywhere; alpha = the mask (inpaint) or 255;
* a preview of step ``s`` is a solid ``(s, 255 - s, index)`` image of ``preview_size`` over the region.

Tests steer it: after ``hold()`` every run waits before its first step until ``release()`` or its
cancel event, so a test can act while a job is known to be running; after ``lockstep()`` each
further step waits for one ``advance()``, so a test can pace the engine to its own reading.
``make_engine`` is the factory the server subprocess loads with ``--engine-factory``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np
from latentbrush.backend.events import JobCancelled, JobEvents, JobOutput
from latentbrush.backend.inputs import JobInputs, pixels
from latentbrush.protocol import (
    ControlInfo,
    ErrorCode,
    JobRequest,
    ModelInfo,
    ProtocolError,
    ReferenceInfo,
    SamplerPreset,
    upscale_rect,
    upscale_size,
)

DEFAULT_SEED = 1234
MODELS = (
    ModelInfo("fake-sd", "sd15", False, 512, "builtin"),
    ModelInfo("fake-inpaint", "sd15", True, 512, "builtin"),
)
SAMPLERS = ("Euler a", "Euler", "DDIM", "DPM++ 2M Karras")
UPSCALERS = ("fake-2x",)


@dataclass(frozen=True)
class FakeEngineInfo:
    device: str = "fake"
    dtype: str = "float32"
    models: tuple[ModelInfo, ...] = MODELS
    upscalers: tuple[str, ...] = UPSCALERS
    samplers: tuple[str, ...] = SAMPLERS
    default_model: str = "fake-sd"
    controls: tuple[ControlInfo, ...] = ()
    preprocessors: tuple[str, ...] = ()
    references: tuple[ReferenceInfo, ...] = ()
    reference_modes: tuple[str, ...] = ()
    presets: dict[str, SamplerPreset] = field(default_factory=dict)


def rgb_for(seed: int) -> tuple[int, int, int]:
    """The solid colour of a fake result for ``seed``."""
    return seed % 251, (seed // 251) % 251, (seed * 7) % 251


@dataclass
class FakeEngine:
    preview_size: tuple[int, int] | None = None  # (width, height); None = the context's size
    item_by_item: bool = False  # a batch runs one item after the other, each result sent when done (real engine)
    runs: list[str] = field(default_factory=list)  # job ids in the order they started running
    completed: list[str] = field(default_factory=list)  # job ids whose run returned normally
    checks: int = 0
    _hold: threading.Event = field(default_factory=threading.Event)
    _gate: threading.Event = field(default_factory=threading.Event)
    running: threading.Event = field(default_factory=threading.Event)  # set while a run waits at the gate
    _steps: threading.Semaphore | None = None  # lockstep mode: one release per step after the first

    def describe(self) -> FakeEngineInfo:
        return FakeEngineInfo()

    def check(self, job: JobRequest) -> ProtocolError | None:
        self.checks += 1
        if job.model and job.model not in {m.name for m in MODELS}:
            return ProtocolError(ErrorCode.UNKNOWN_MODEL, f"no model {job.model!r}", "job.model")
        if job.sampler not in SAMPLERS:
            return ProtocolError(ErrorCode.UNKNOWN_SAMPLER, f"no sampler {job.sampler!r}", "job.sampler")
        if job.upscale is not None and job.upscale.upscaler not in ("", "lanczos", *UPSCALERS):
            return ProtocolError(ErrorCode.UNKNOWN_UPSCALER, "no such upscaler", "job.upscale.upscaler")
        return None

    # ------------------------------------------------------------------------- test controls

    def hold(self) -> None:
        """From now on every run waits at its first step until ``release()`` (or its cancel)."""
        self._gate.clear()
        self._hold.set()

    def release(self) -> None:
        self._hold.clear()
        self._gate.set()

    def lockstep(self) -> None:
        """From now on each step after the first waits for one ``advance()``."""
        self._steps = threading.Semaphore(0)

    def advance(self) -> None:
        if self._steps is not None:
            self._steps.release()

    def _wait_for_step(self, events: JobEvents) -> None:
        while self._steps is not None and not self._steps.acquire(timeout=0.005):
            if events.cancel.is_set():
                raise JobCancelled()

    def _wait_at_gate(self, events: JobEvents) -> None:
        if not self._hold.is_set():
            return
        self.running.set()
        try:
            while not self._gate.is_set():
                if events.cancel.wait(0.005):
                    raise JobCancelled()
        finally:
            self.running.clear()

    # ------------------------------------------------------------------------- the seam

    def run(self, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
        image, mask = pixels(inputs, "image"), pixels(inputs, "mask")
        self.runs.append(job.id)
        seed = DEFAULT_SEED if job.seed is None else job.seed
        rect = upscale_rect(job) if job.op == "upscale" else job.region
        if self.item_by_item:
            return self._run_item_by_item(job, image, mask, seed, events)
        events.started(job.steps, seed)
        self._wait_at_gate(events)
        width, height = self.preview_size or (rect.width, rect.height)
        for step in range(1, job.steps + 1):
            if step > 1:
                self._wait_for_step(events)
            if events.cancel.is_set():
                raise JobCancelled()
            events.progress(step, job.steps, "denoise")
            for index in range(job.batch):
                rgb = np.empty((height, width, 3), dtype=np.uint8)
                rgb[...] = (step % 256, (255 - step) % 256, index)
                events.preview(step, job.steps, rgb, rect, index)
        images = tuple(self._result(job, image, mask, seed + i) for i in range(job.batch))
        self.completed.append(job.id)
        return JobOutput(images, tuple(seed + i for i in range(job.batch)), {"model": job.model or "fake-sd"})

    def _run_item_by_item(
        self, job: JobRequest, image: np.ndarray | None, mask: np.ndarray | None, seed: int, events: JobEvents
    ) -> JobOutput:
        total = job.steps * job.batch
        events.started(total, seed)
        self._wait_at_gate(events)
        images = []
        for index in range(job.batch):
            for step in range(1, job.steps + 1):
                overall = index * job.steps + step
                if overall > 1:
                    self._wait_for_step(events)
                if events.cancel.is_set():
                    raise JobCancelled()
                events.progress(overall, total, "denoise")
            images.append(self._result(job, image, mask, seed + index))
            events.result(index, images[-1], seed + index)
        self.completed.append(job.id)
        return JobOutput(tuple(images), tuple(seed + i for i in range(job.batch)), {"model": job.model or "fake-sd"})

    @staticmethod
    def _result(job: JobRequest, image: np.ndarray | None, mask: np.ndarray | None, seed: int) -> np.ndarray:
        if job.op == "upscale":
            size = upscale_size(job)
            height, width = size.height, size.width
        else:
            height, width = job.region.height, job.region.width
        out = np.empty((height, width, 4), dtype=np.uint8)
        out[..., :3] = rgb_for(seed)
        out[..., 3] = 255
        if mask is not None and job.op == "inpaint":
            context = job.context or job.region
            x, y = job.region.x - context.x, job.region.y - context.y
            out[..., 3] = mask[y : y + height, x : x + width]
        return out


def make_engine(config: object = None) -> FakeEngine:
    """``--engine-factory`` entry: previews of ``LATENTBRUSH_FAKE_PREVIEW`` px (default 64) squared."""
    side = int(os.environ.get("LATENTBRUSH_FAKE_PREVIEW", "64"))
    return FakeEngine(preview_size=(side, side))


def broken_engine(config: object = None) -> FakeEngine:
    """``--engine-factory`` entry for an engine that cannot start (a missing driver, say)."""
    raise RuntimeError("no usable GPU driver (fake)")
