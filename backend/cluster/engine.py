"""The gateway's engine: an ``EngineLike`` whose ``run`` sends the job to the Ray Serve replicas.

The server calls ``run`` on one of its worker threads (one per replica, ``Worker(concurrency=N)``);
it streams the replica's events into the server's ``events`` object exactly as a local engine
would call it, so the protocol, previews and results are the server's as ever. ``check`` runs
on the gateway against a local ``Engine`` that never loads weights (it only reads the models
folder, which the gateway and the replicas share); ``describe`` asks a replica.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, ProtocolError

from ..events import EngineError, JobCancelled, JobOutput
from ..inputs import JobInputs
from ..worker import EngineLike
from .retry import RETRIES, ReplicaLost, with_retry

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.05  # how often a running job's cancel event is looked at (a step takes longer)


@dataclass(frozen=True)
class ReplicaInfo:
    """Where a job runs: Ray Serve's replica id, its process and node (for logs, and the fault tests)."""

    replica: str
    pid: int
    node: str


class StreamReader:
    """Applies one replica stream's events to the server's ``events``; ``feed`` returns the output at the end.

    One reader per job, kept across retries: a second attempt's ``started`` is not sent again
    (the client already has one), and result images collected so far stay collected.
    """

    def __init__(self, events: Any) -> None:
        self._events = events
        self._started = False
        self.images: dict[int, np.ndarray] = {}
        self.replica: ReplicaInfo | None = None

    def feed(self, item: tuple[Any, ...]) -> JobOutput | None:
        kind, args = item[0], item[1:]
        if kind == "replica":
            self.replica = ReplicaInfo(*args)
        elif kind == "started":
            if not self._started:
                self._started = True
                self._events.started(*args)
        elif kind == "progress":
            self._events.progress(*args)
        elif kind == "preview":
            self._events.preview(*args)
        elif kind == "result":
            index, rgba, seed = args
            self.images[index] = rgba
            self._events.result(index, rgba, seed)
        elif kind == "done":
            seeds, info, count, images = args
            self.images.update(images)
            missing = [index for index in range(count) if index not in self.images]
            if missing:
                raise EngineError(ErrorCode.INTERNAL, f"the replica sent no image for items {missing}")
            return JobOutput(tuple(self.images[i] for i in range(count)), seeds, info)
        elif kind == "error":
            code, message, field = args
            raise EngineError(ErrorCode(code), message, field)
        elif kind == "cancelled":
            raise JobCancelled()
        else:
            log.warning("unknown event %r from a replica: ignored", kind)
        return None


def _replica_faults() -> tuple[type[BaseException], ...]:
    """Ray's exceptions for "the process that ran this is gone" (not an error of the job itself)."""
    from ray import exceptions as ray_errors
    from ray.serve.exceptions import ReplicaUnavailableError

    return (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
            ray_errors.ObjectLostError, ReplicaUnavailableError)


def _cancellations() -> tuple[type[BaseException], ...]:
    import asyncio

    from ray.exceptions import TaskCancelledError

    return (TaskCancelledError, asyncio.CancelledError, concurrent.futures.CancelledError)


class ClusterEngine:
    """``EngineLike`` over a Ray Serve deployment handle of ``replica.EngineReplica``."""

    def __init__(self, handle: Any, checker: EngineLike, default_model: str = "", retries: int = RETRIES) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)
        self._checker = checker
        self._default_model = default_model
        self._retries = retries
        self._lock = threading.Lock()
        self._running: dict[str, ReplicaInfo] = {}

    def describe(self) -> Any:
        info = self._handle.describe.remote().result()
        if dataclasses.is_dataclass(info) and not isinstance(info, type) and hasattr(info, "device"):
            info = dataclasses.replace(info, device=f"{info.device} (Ray Serve replicas)")
        self._default_model = getattr(info, "default_model", "") or self._default_model
        return info

    def check(self, job: JobRequest) -> ProtocolError | None:
        return self._checker.check(job)

    def replica_of(self, job_id: str) -> ReplicaInfo | None:
        """The replica running ``job_id`` now (None: not running, or not started on one yet)."""
        with self._lock:
            return self._running.get(job_id)

    def run(self, job: JobRequest, inputs: JobInputs, events: Any) -> JobOutput:
        reader = StreamReader(events)

        def retrying(number: int, exc: ReplicaLost) -> None:
            log.warning("job %s: replica %s lost (%s); retrying on another replica", job.id, reader.replica, exc)

        try:
            output = with_retry(lambda number: self._attempt(job, inputs, events, reader), retries=self._retries,
                                cancelled=events.cancel.is_set, on_retry=retrying)
            where = {"replica": reader.replica.replica} if reader.replica is not None else {}
            return dataclasses.replace(output, info={**output.info, **where})  # provenance: which replica ran it
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _attempt(self, job: JobRequest, inputs: JobInputs, events: Any, reader: StreamReader) -> JobOutput:
        model = job.model or self._default_model
        stream = self._stream.options(multiplexed_model_id=model).run.remote(job, dict(inputs))
        done = threading.Event()
        watcher = threading.Thread(target=_cancel_when_asked, args=(events.cancel, done, stream),
                                   name=f"cancel {job.id}", daemon=True)
        watcher.start()
        try:
            for item in _items(stream):
                output = reader.feed(item)
                if reader.replica is not None and item[0] == "replica":
                    where = reader.replica
                    log.info("job %s on replica %s (pid %d, node %s)", job.id, where.replica, where.pid, where.node)
                    with self._lock:
                        self._running[job.id] = where
                if output is not None:
                    return output
            raise ReplicaLost("the replica's stream ended without an outcome")
        finally:
            done.set()
            watcher.join()


def _items(stream: Any) -> Iterator[tuple[Any, ...]]:
    """The stream's events; Ray's failures as ``ReplicaLost`` (retry) or ``JobCancelled``."""
    faults, cancellations = _replica_faults(), _cancellations()
    try:
        yield from stream
    except cancellations as exc:
        raise JobCancelled() from exc
    except faults as exc:
        raise ReplicaLost(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc


def _cancel_when_asked(cancel: threading.Event, done: threading.Event, stream: Any) -> None:
    """Cancel the Ray request once the job's cancel event is set; Ray Serve then cancels the replica's generator."""
    while not done.is_set():
        if cancel.wait(CANCEL_POLL_S):
            if not done.is_set():
                stream.cancel()
            return
