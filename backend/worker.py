"""The one thread that owns the GPU: it runs engine calls and marshals their events to the loop.

Every engine call (construction, ``run``) happens on a single dedicated thread, so CUDA state
and model weights are never touched from two threads. Preview arrays are handed to a second
thread for encoding, so JPEG work overlaps the next denoising step instead of delaying it; the
worker only waits for that thread when it falls more than a few previews behind (bounded memory,
and a fast client still sees every step). Engine events reach the event loop through
``loop.call_soon_threadsafe`` and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, PreviewHeader, ProtocolError, Rect, encode_frame

from .events import EngineError, JobCancelled, JobOutput, is_out_of_memory
from .images import encode_preview
from .inputs import JobInputs, prepare
from .jobs import JobRecord
from .results import encode_result_frame

log = logging.getLogger(__name__)

MAX_PREVIEWS_IN_FLIGHT = 3  # previews submitted for encoding but not yet encoded, per job


class EngineLike(Protocol):
    """The seam of ``engine.py`` (docs/INTERNALS.md "Backend")."""

    def describe(self) -> Any: ...

    def check(self, job: JobRequest) -> ProtocolError | None: ...

    def run(self, job: JobRequest, inputs: JobInputs, events: Any) -> JobOutput: ...


class JobListener(Protocol):
    """Loop-side receiver of a running job's events (always called on the event loop thread)."""

    def on_started(self, record: JobRecord, total: int, seed: int | None) -> None: ...

    def on_progress(self, record: JobRecord, step: int, total: int, stage: str) -> None: ...

    def on_preview(self, record: JobRecord, index: int, frame: bytes) -> None: ...

    def on_result(self, record: JobRecord, index: int, frame: bytes) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """How one engine run ended: exactly one of output, error, cancelled."""

    output: JobOutput | None = None
    error: ProtocolError | None = None
    cancelled: bool = False
    seconds: float = 0.0


def preview_frame(job: JobRequest, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> bytes:
    encoded = encode_preview(rgb, job.preview_format, job.preview_max_side)
    header = PreviewHeader(
        job_id=job.id,
        step=step,
        total=total,
        rect=rect,
        format=job.preview_format,
        width=encoded.width,
        height=encoded.height,
        index=index,
    )
    return encode_frame(header, encoded.data)


class _LoopEvents:
    """``events.JobEvents`` for one job: called on the worker thread, delivers on the loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, record: JobRecord, listener: JobListener, encoder: ThreadPoolExecutor
    ) -> None:
        self.cancel: threading.Event = record.cancel
        self._loop = loop
        self._record = record
        self._job = record.request
        self._listener = listener
        self._encoder = encoder
        self._in_flight: deque[Future[None]] = deque()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, self._record, *args)
        except RuntimeError:
            pass  # the loop closed during shutdown; nobody is listening any more

    def started(self, total: int, seed: int | None) -> None:
        self._post(self._listener.on_started, total, seed)

    def progress(self, step: int, total: int, stage: str) -> None:
        self._post(self._listener.on_progress, step, total, stage)

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> None:
        if self._job.preview_format == "none":
            return
        pixels = np.array(rgb, dtype=np.uint8, copy=True)  # the engine may reuse its buffer next step
        self._encode(self._listener.on_preview, index, preview_frame, self._job, step, total, pixels, rect, index)

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None:
        """Batch item ``index`` is finished: encode and send it now, not when the whole batch is (SPEC.md 9.7)."""
        # no copy, unlike a preview: the engine hands over a finished image it never writes again
        self._encode(self._listener.on_result, index, encode_result_frame, self._job, index, rgba, seed)

    def _encode(self, deliver: Callable[..., None], index: int, encode: Callable[..., bytes], *args: Any) -> None:
        # Encoding and posting happen in one encoder task, so once ``flush`` returns every frame
        # is already queued on the loop, ahead of the job's outcome. The encoder is one thread:
        # frames reach the loop in the order the engine produced them.
        def work() -> None:
            try:
                frame = encode(*args)
            except Exception as exc:  # a result that failed here is encoded again with the outcome
                log.warning("job %s: encoding a frame of item %d failed: %s", self._job.id, index, exc)
                return
            self._post(deliver, index, frame)

        self._in_flight.append(self._encoder.submit(work))
        while len(self._in_flight) > MAX_PREVIEWS_IN_FLIGHT:
            self._in_flight.popleft().exception()  # wait: the encoder fell behind

    def flush(self) -> None:
        """Wait for every submitted preview, so all of them reach the loop before the outcome."""
        while self._in_flight:
            self._in_flight.popleft().exception()


class Worker:
    """Owns the engine and its thread. ``start`` builds the engine on that thread.

    ``concurrency`` > 1 is for engines that run each job elsewhere (``cluster/engine.py``: one
    blocking call per Ray replica); a local GPU engine keeps the default single thread.
    """

    def __init__(self, engine_factory: Callable[[], EngineLike], concurrency: int = 1) -> None:
        self._factory = engine_factory
        self._thread = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="latentbrush-worker")
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentbrush-previews")
        self._engine: EngineLike | None = None

    @property
    def engine(self) -> EngineLike:
        if self._engine is None:
            raise RuntimeError("Worker.start() has not run")
        return self._engine

    async def start(self) -> Any:
        """Build the engine on the worker thread; return its ``describe()``."""
        loop = asyncio.get_running_loop()
        self._engine = await loop.run_in_executor(self._thread, self._factory)
        return await loop.run_in_executor(self._thread, self._engine.describe)

    def check(self, job: JobRequest) -> ProtocolError | None:
        return self.engine.check(job)

    async def run(self, record: JobRecord, listener: JobListener) -> Outcome:
        loop = asyncio.get_running_loop()
        events = _LoopEvents(loop, record, listener, self._encoder)
        return await loop.run_in_executor(self._thread, self._run_blocking, record, events)

    def _run_blocking(self, record: JobRecord, events: _LoopEvents) -> Outcome:
        job = record.request
        start = time.perf_counter()
        try:
            if record.cancel.is_set():
                return Outcome(cancelled=True)
            # Blobs are stored as decoded; the engine wants RGBA images and single-channel masks.
            output = self.engine.run(job, prepare(record.inputs), events)
            if record.cancel.is_set():
                return Outcome(cancelled=True, seconds=time.perf_counter() - start)
            return Outcome(output=output, seconds=time.perf_counter() - start)
        except JobCancelled:
            return Outcome(cancelled=True, seconds=time.perf_counter() - start)
        except EngineError as exc:
            return Outcome(error=ProtocolError(exc.code, exc.message, exc.field), seconds=time.perf_counter() - start)
        except Exception as exc:
            if is_out_of_memory(exc):
                log.warning("job %s: out of memory: %s", job.id, exc)
                error = ProtocolError(ErrorCode.OUT_OF_MEMORY, f"out of memory: {str(exc)[:200]}")
            else:
                log.exception("job %s: engine failed", job.id)
                error = ProtocolError(ErrorCode.INTERNAL, f"engine failed: {type(exc).__name__}: {str(exc)[:200]}")
            return Outcome(error=error, seconds=time.perf_counter() - start)
        finally:
            events.flush()

    async def describe(self) -> Any:
        """A fresh ``describe()`` (the models folder may have changed).

        It reads metadata only, so it runs beside a job instead of waiting minutes behind it.
        """
        return await asyncio.to_thread(self.engine.describe)

    def close(self) -> None:
        """Wait for the running engine call to end (callers set its cancel event first)."""
        self._thread.shutdown(wait=True)
        self._encoder.shutdown(wait=True)
