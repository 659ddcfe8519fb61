"""Issue 10: a new operation and a new input role are data plus one function, added here in the test alone.

Each goes through the protocol's checks, admission (blob lookup and size check), the job record, the worker
thread and the engine's operation lookup, as a real job does (docs/INTERNALS.md "Adding an operation").
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from latentbrush.backend import admission
from latentbrush.backend.blobs import BlobCache
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import JobOutput
from latentbrush.backend.inputs import JobInputs, pixels
from latentbrush.backend.jobs import JobRecord
from latentbrush.backend.ops.operation import Operation
from latentbrush.backend.ops.registry import OPERATIONS as ENGINE_OPERATIONS
from latentbrush.backend.worker import Worker
from latentbrush.protocol import (
    OPERATIONS,
    ROLES,
    ErrorCode,
    JobInput,
    JobRequest,
    Limits,
    ProtocolError,
    Rect,
    Size,
    check_job,
)
from latentbrush.protocol.inputs import Role
from latentbrush.protocol.operations import OpSpec

LIMITS = Limits(max_frame_bytes=1 << 20, max_pixels=1 << 20, max_queue=4, max_batch=4, max_steps=50)
IMAGE, TINT, SMALL = ("sha256:" + c * 64 for c in "123")


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_started(self, record: JobRecord, total: int, seed: int | None) -> None:
        self.events.append(("started", (total, seed)))

    def on_progress(self, record: JobRecord, step: int, total: int, stage: str) -> None:
        self.events.append(("progress", (step, total, stage)))

    def on_preview(self, record: JobRecord, index: int, frame: bytes) -> None:
        self.events.append(("preview", index))

    def on_result(self, record: JobRecord, index: int, frame: bytes) -> None:
        self.events.append(("result", index))


def invert(_services: Any, job: JobRequest, inputs: JobInputs, events: Any) -> JobOutput:
    """The toy operation: the region, inverted, and tinted by an optional ``tint`` input (a colour role)."""
    image = pixels(inputs, "image")
    tint = pixels(inputs, "tint")
    events.started(1, None)
    out = image.copy()
    out[..., :3] = 255 - out[..., :3]
    if tint is not None:
        weight = inputs["tint"][0].param("weight")
        out[..., :3] = np.clip(out[..., :3] * (1 - weight) + tint[..., :3] * weight, 0, 255).astype(np.uint8)
    events.progress(1, 1, "invert")
    return JobOutput((out,), (), {"op": job.op})


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The four edits a new operation with a new role makes, as the test's own data."""
    monkeypatch.setitem(ROLES, "tint", Role("tint", "image", {"weight": 0.5}))  # protocol/inputs.py
    monkeypatch.setitem(OPERATIONS, "invert", OpSpec("invert", needs=frozenset({"image"}),
                                                     takes=frozenset({"tint"})))  # protocol/operations.py
    toy_op = Operation(name="invert", needs=frozenset({"image"}), roles=frozenset({"image", "tint"}), checks=(),
                       run=invert)  # backend/ops/op_invert.py + its line in registry.MODULES
    return Engine(EngineSettings(device="cpu"), operations={**ENGINE_OPERATIONS, "invert": toy_op})


def toy_job(*inputs: JobInput, op: str = "invert") -> JobRequest:
    return JobRequest(id="toy-1", op=op, canvas=Size(8, 8), region=Rect(2, 2, 4, 4), context=Rect(0, 0, 8, 8),
                      inputs=inputs, preview_format="none")


def blobs() -> BlobCache:
    cache = BlobCache(1 << 20)
    cache.put(IMAGE, np.full((8, 8, 4), 200, np.uint8))
    cache.put(TINT, np.zeros((8, 8, 3), np.uint8))  # stored as decoded: RGB; the worker makes it RGBA
    cache.put(SMALL, np.zeros((4, 4, 3), np.uint8))
    return cache


async def run_through_worker(engine: Engine, job: JobRequest) -> tuple[Any, Listener]:
    admitted = admission.admit(job, LIMITS, blobs(), engine.check)
    assert not isinstance(admitted, ProtocolError), admitted
    record = JobRecord(job, "client-1", admitted)
    assert record.blob_keys == tuple(dict.fromkeys(i.blob for i in job.inputs))
    worker = Worker(lambda: engine)
    await worker.start()
    listener = Listener()
    try:
        return await worker.run(record, listener), listener
    finally:
        worker.close()


def test_a_toy_operation_and_role_run_end_to_end(toy: Engine) -> None:
    job = toy_job(JobInput("image", IMAGE), JobInput("tint", TINT, weight=0.25))
    assert check_job(job, limits=LIMITS) is None
    outcome, listener = asyncio.run(run_through_worker(toy, job))
    assert outcome.error is None and outcome.output is not None
    (image,) = outcome.output.images
    assert image.shape == (8, 8, 4) and int(image[0, 0, 0]) == round(55 * 0.75)
    assert ("started", (1, None)) in listener.events and ("progress", (1, 1, "invert")) in listener.events


def test_the_toy_role_is_checked_like_any_role(toy: Engine) -> None:
    bad = check_job(toy_job(JobInput("image", IMAGE), JobInput("tint", TINT, start=0.5)))
    assert bad is not None and (bad.code, bad.field) == (ErrorCode.BAD_FIELD, "job.inputs[1].start")
    missing = check_job(toy_job(JobInput("tint", TINT)))
    assert missing is not None and (missing.code, missing.field) == (ErrorCode.MISSING_FIELD, "job.inputs")
    not_taken = check_job(toy_job(JobInput("image", IMAGE), JobInput("tint", TINT), op="img2img"))
    assert not_taken is not None and (not_taken.code, not_taken.field) == (ErrorCode.BAD_FIELD, "job.inputs[1].role")
    wrong_size = admission.admit(toy_job(JobInput("image", IMAGE), JobInput("tint", SMALL)), LIMITS, blobs(), toy.check)
    assert isinstance(wrong_size, ProtocolError)
    assert (wrong_size.code, wrong_size.field) == (ErrorCode.SIZE_MISMATCH, "job.inputs[1].blob")


def test_a_role_the_protocol_allows_but_an_operation_does_not_implement_is_not_supported() -> None:
    # every role of protocol 1.1 is implemented now; a server whose img2img lacks regions is the case
    without = replace(ENGINE_OPERATIONS["img2img"], roles=ENGINE_OPERATIONS["img2img"].roles - {"region"})
    engine = Engine(EngineSettings(device="cpu"), operations={**ENGINE_OPERATIONS, "img2img": without})
    job = JobRequest(id="c1", op="img2img", canvas=Size(8, 8), region=Rect(0, 0, 8, 8),
                     inputs=(JobInput("image", IMAGE), JobInput("region", IMAGE, weight=0.5)))
    assert check_job(job, limits=LIMITS) is None  # valid protocol 1.1
    error = admission.admit(job, LIMITS, blobs(), engine.check)
    assert isinstance(error, ProtocolError)
    assert (error.code, error.field, error.job_id) == (ErrorCode.NOT_SUPPORTED, "job.inputs[1].role", "c1")
