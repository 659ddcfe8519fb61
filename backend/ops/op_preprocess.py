"""preprocess: the control image a preprocessor makes of a picture, returned as the job's result (SPEC.md 9.1).

A painter looks at it and paints over it before using it as a control ("make control image from canvas"):
the same preprocessor a control input names would run on the server at generation time, so what the
painter edits is exactly what the ControlNet would have seen. Takes one ``control`` input with a
``preprocessor``; no model, no steps. Preprocessors that find things (pose keypoints) put them in the info.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, ProtocolError, Rect, input_refs

from ..control.models import flatten
from ..events import EngineError, JobEvents, JobOutput
from ..inputs import JobInputs
from .cancel import raise_if_cancelled
from .operation import Operation, Services

PAPER = 255  # a transparent part of a layer is white paper to an edge or line detector


def _control_ref(job: JobRequest) -> tuple[str, str]:
    """(preprocessor, where) of the job's one control input; the protocol guarantees there is exactly one."""
    for ref in input_refs(job):
        if ref.input.role == "control":
            return ref.input.param("preprocessor"), f"job.{ref.where}.preprocessor"
    raise EngineError(ErrorCode.MISSING_FIELD, "preprocess needs the control input", "job.inputs")


def check_preprocessor(services: Services, job: JobRequest) -> ProtocolError | None:
    name, where = _control_ref(job)
    if name not in services.controls.preprocessors:
        offered = ", ".join(repr(p) for p in services.controls.preprocessors if p)
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"no preprocessor {name!r} here (offered: {offered})", where)
    return None


def crop_to_region(picture: np.ndarray, context: Rect, region: Rect) -> np.ndarray:
    """The region's part of a context-sized picture, as an opaque RGBA layer."""
    x, y = region.x - context.x, region.y - context.y
    rgb = picture[y : y + region.height, x : x + region.width]
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def run(services: Services, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
    started = time.perf_counter()
    name, where = _control_ref(job)
    preprocessor = services.controls.preprocessors.get(name)
    items = inputs.get("control", ())
    if preprocessor is None or not items:  # check() refused both before the job was queued
        raise EngineError(ErrorCode.NOT_SUPPORTED, f"no preprocessor {name!r} here", where)
    context = job.context or job.region
    rgba = items[0].pixels
    if rgba.shape[:2] != (context.height, context.width):
        message = f"{rgba.shape[1]}x{rgba.shape[0]} does not match the context {context.width}x{context.height}"
        raise EngineError(ErrorCode.SIZE_MISMATCH, message, items[0].field)
    raise_if_cancelled(events.cancel)
    events.started(1, None)
    annotation = preprocessor.annotate(flatten(rgba, PAPER))
    raise_if_cancelled(events.cancel)  # a slow preprocessor: a cancel meanwhile sends no result
    events.progress(1, 1, "preprocess")
    result = crop_to_region(annotation.image, context, job.region)
    events.result(0, result, None)
    info: dict[str, Any] = {"op": job.op, "preprocessor": name, "seconds": round(time.perf_counter() - started, 3)}
    if annotation.data:
        info["annotation"] = dict(annotation.data)
    return JobOutput((result,), (), info)


OPERATION = Operation(
    name="preprocess",
    needs=frozenset({"control"}),
    roles=frozenset({"control"}),
    checks=(check_preprocessor,),
    run=run,
)
