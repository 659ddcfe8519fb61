"""The Ray Serve deployment of the engine: one replica per GPU (or a fraction of one), jobs streamed back.

A replica owns one ``Engine``; ``run`` is a streaming method: it runs the job on a thread and
yields its events as they happen (``("started", total, seed)``, ``("progress", ...)``,
``("preview", ...)``, ``("result", ...)``) and then exactly one final event (``("done", seeds, info,
images)``, ``("error", code, message, field)`` or ``("cancelled",)``). The first event names the
replica (``("replica", id, pid, node)``), so the gateway can log where a job runs. When the
gateway cancels the request, Ray Serve cancels this generator; the engine's cancel event is set
then and the engine stops at its next step callback.

Model affinity: the gateway sends each job with ``multiplexed_model_id`` = its model, and
``serve.multiplexed`` makes Ray route it to a replica that has loaded that model. The engine's own
cache holds the weights (within its byte budget); the multiplexed entry is only the routing key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, Rect
from ray import serve

from ..config import ServerConfig
from ..events import EngineError, JobCancelled, is_out_of_memory
from ..inputs import JobInputs
from ..worker import EngineLike

log = logging.getLogger(__name__)

MODELS_PER_REPLICA = 3  # routing entries per replica; the engine's cache decides what stays in memory
_END = object()


def build_engine(config: ServerConfig, factory: str | None) -> EngineLike:
    """The engine a replica runs: the real one, or ``module:function`` (the tests' seam, as in the server)."""
    from ..__main__ import load_engine_factory, real_engine_factory

    return load_engine_factory(factory)(config) if factory else real_engine_factory(config)


class _StreamEvents:
    """``events.JobEvents`` on the replica: called on the engine's thread, queued for the generator."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        self.cancel = threading.Event()
        self.sent: set[int] = set()  # batch items whose image already went out as a result event
        self._loop = loop
        self._queue = queue

    def put(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def started(self, total: int, seed: int | None) -> None:
        self.put(("started", total, seed))

    def progress(self, step: int, total: int, stage: str) -> None:
        self.put(("progress", step, total, stage))

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> None:
        self.put(("preview", step, total, np.array(rgb, dtype=np.uint8, copy=True), rect, index))

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None:
        self.sent.add(index)
        self.put(("result", index, rgba, seed))


def _final_event(engine: EngineLike, job: JobRequest, inputs: JobInputs, events: _StreamEvents) -> tuple[Any, ...]:
    """Run the job on this thread; its outcome as the stream's last event (what ``Worker`` does locally)."""
    try:
        output = engine.run(job, inputs, events)
    except JobCancelled:
        return ("cancelled",)
    except EngineError as exc:
        return ("error", exc.code.value, exc.message, exc.field)
    except Exception as exc:
        if is_out_of_memory(exc):
            return ("error", ErrorCode.OUT_OF_MEMORY.value, f"out of memory: {str(exc)[:200]}", None)
        log.exception("job %s: engine failed", job.id)
        return ("error", ErrorCode.INTERNAL.value, f"engine failed: {type(exc).__name__}: {str(exc)[:200]}", None)
    if events.cancel.is_set():
        return ("cancelled",)
    # images already streamed as results are not sent twice: the gateway has them
    images = {index: image for index, image in enumerate(output.images) if index not in events.sent}
    return ("done", tuple(output.seeds), dict(output.info), len(output.images), images)


class EngineReplica:
    """One engine on one replica; ``engine_deployment`` makes it a Ray Serve deployment."""

    def __init__(self, config: ServerConfig, factory: str | None = None) -> None:
        self._engine = build_engine(config, factory)

    def describe(self) -> Any:
        return self._engine.describe()

    @serve.multiplexed(max_num_models_per_replica=MODELS_PER_REPLICA)
    async def _model(self, model_id: str) -> str:
        load = getattr(self._engine, "load", None)  # test engines may have no models to load
        if load is not None:
            await asyncio.to_thread(load, model_id)
        return model_id

    def _identity(self) -> tuple[str, int, str]:
        import ray

        replica = serve.get_replica_context().replica_id
        return str(getattr(replica, "unique_id", replica)), os.getpid(), ray.util.get_node_ip_address()

    async def run(self, job: JobRequest, inputs: JobInputs) -> AsyncIterator[tuple[Any, ...]]:
        yield ("replica", *self._identity())
        operations = getattr(self._engine, "operations", {})
        if job.op in operations and operations[job.op].tasks:  # an op that runs a model: warm it (affinity)
            await self._model(serve.get_multiplexed_model_id())
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        events = _StreamEvents(loop, queue)

        def work() -> None:
            try:
                final = _final_event(self._engine, job, inputs, events)
            except BaseException as exc:  # the stream must end even if the outcome could not be built
                final = ("error", ErrorCode.INTERNAL.value, f"replica failed: {type(exc).__name__}", None)
            events.put(final)
            events.put(_END)

        thread = threading.Thread(target=work, name=f"job {job.id}", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not _END:
                yield item
        finally:  # cancelled by the gateway (or the stream dropped): the engine stops at its next step
            events.cancel.set()


def engine_deployment(
    config: ServerConfig,
    *,
    factory: str | None,
    replicas: int | None,
    min_replicas: int,
    max_replicas: int,
    gpus: float,
    cpus: float,
) -> Any:
    """The bound application: fixed ``replicas``, or autoscaling between ``min_replicas`` and ``max_replicas``.

    ``max_ongoing_requests=1``: a replica runs one job at a time (the engine's device lock would
    serialise more anyway), so Ray routes a job to an idle replica and the gateway's fair queue
    holds the rest.
    """
    options: dict[str, Any] = {
        "name": "engine",  # deploy.DEPLOYMENT
        "max_ongoing_requests": 1,
        "ray_actor_options": {"num_gpus": gpus, "num_cpus": cpus},
        "graceful_shutdown_timeout_s": 5,
    }
    if replicas is not None:
        options["num_replicas"] = replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": 1,
        }
    return serve.deployment(**options)(EngineReplica).bind(config, factory)


def app_builder(args: dict[str, Any]) -> Any:
    """The application for a Serve config file or a KubeRay RayService (``import_path: ...replica:app_builder``).

    ``args`` (strings, as Serve passes them): ``models``, ``device``, ``dtype``, ``replicas`` or
    ``min_replicas``/``max_replicas``, ``gpus_per_replica``, ``cpus_per_replica``. The gateway then
    runs with ``--attach`` and finds these replicas by name.
    """
    from pathlib import Path

    models = args.get("models")
    config = ServerConfig(models_dir=Path(models) if models else None, device=str(args.get("device", "auto")),
                          dtype=str(args.get("dtype", "auto")))
    replicas = args.get("replicas")
    return engine_deployment(
        config,
        factory=None,
        replicas=int(replicas) if replicas is not None else None,
        min_replicas=int(args.get("min_replicas", 1)),
        max_replicas=int(args.get("max_replicas", 1)),
        gpus=float(args.get("gpus_per_replica", 1)),
        cpus=float(args.get("cpus_per_replica", 1)),
    )
