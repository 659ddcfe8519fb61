"""Checks across the fields of a job request, which the per-field type walk cannot express.

SPEC.md "Job request" is normative; the order of checks here decides which error a request
with several faults gets, and the conformance vectors rely on it:
geometry, inputs (``inputs.py``), the operation table (``operations.py``), upscale tiling,
formats, then server limits.
"""

from __future__ import annotations

from collections.abc import Collection

from .errors import ErrorCode, ProtocolError
from .geometry import Size, upscale_rect, upscale_size
from .inputs import FREE_SIZE_ROLES, check_inputs, input_refs
from .messages import PREVIEW_FORMATS, PREVIEW_NONE, RESULT_FORMATS, JobRequest, Limits, Rect
from .operations import check_operation

__all__ = ["check_blob", "check_job", "upscale_rect", "upscale_size"]  # upscale_*: from geometry

def _error(code: ErrorCode, message: str, field: str, job: JobRequest) -> ProtocolError:
    return ProtocolError(code, message, field, job.id)


def _check_geometry(job: JobRequest) -> ProtocolError | None:
    canvas = Rect(0, 0, job.canvas.width, job.canvas.height)
    context = job.context or job.region
    for inner, outer, field, outer_name in (
        (job.region, canvas, "job.region", "canvas"),
        (context, canvas, "job.context", "canvas"),
        (job.region, context, "job.region", "context"),
    ):
        if not outer.contains(inner):
            return _error(ErrorCode.OUT_OF_BOUNDS, f"rectangle is not inside the {outer_name}", field, job)
    return None


def _check_upscale(job: JobRequest) -> ProtocolError | None:
    if job.upscale is not None:
        if job.upscale.seam_fix != "none" and not job.upscale.refine:
            return _error(ErrorCode.BAD_FIELD, "seam fix needs refine", "job.upscale.seam_fix", job)
        if job.upscale.unblur is not None and not job.upscale.refine:
            return _error(ErrorCode.BAD_FIELD, "unblur needs refine", "job.upscale.unblur", job)
        if 2 * job.upscale.overlap >= job.upscale.tile:
            return _error(ErrorCode.BAD_FIELD, "overlap must be less than half the tile", "job.upscale.overlap", job)
        if 2 * job.upscale.refine_padding >= job.upscale.refine_tile:
            return _error(
                ErrorCode.BAD_FIELD, "padding must be less than half the tile", "job.upscale.refine_padding", job
            )
    return None


def _check_formats(
    job: JobRequest, preview_formats: Collection[str], result_formats: Collection[str]
) -> ProtocolError | None:
    if job.preview_format != PREVIEW_NONE and job.preview_format not in preview_formats:
        return _error(ErrorCode.NOT_SUPPORTED, "preview format not offered by the server", "job.preview_format", job)
    if job.result_format not in result_formats:
        return _error(ErrorCode.NOT_SUPPORTED, "result format not offered by the server", "job.result_format", job)
    return None


def _check_limits(job: JobRequest, max_pixels: int | None, limits: Limits | None) -> ProtocolError | None:
    if limits is not None:
        if job.steps > limits.max_steps:
            return _error(ErrorCode.TOO_LARGE, f"more than {limits.max_steps} steps", "job.steps", job)
        if job.batch > limits.max_batch:
            return _error(ErrorCode.TOO_LARGE, f"batch larger than {limits.max_batch}", "job.batch", job)
        max_pixels = limits.max_pixels if max_pixels is None else max_pixels
    if max_pixels is None:
        return None
    sizes: list[tuple[str, Rect | Size]] = [("job.context", job.context or job.region), ("job.region", job.region)]
    if job.resolution is not None:
        sizes.append(("job.resolution", job.resolution))
    if job.op == "upscale":
        sizes.append(("job.upscale", upscale_size(job)))
    for field, size in sizes:
        if size.width * size.height > max_pixels:
            return _error(ErrorCode.TOO_LARGE, f"more than {max_pixels} pixels", field, job)
    return None


def check_job(
    job: JobRequest,
    max_pixels: int | None = None,
    *,
    limits: Limits | None = None,
    preview_formats: Collection[str] = PREVIEW_FORMATS,
    result_formats: Collection[str] = RESULT_FORMATS,
) -> ProtocolError | None:
    """Checks across fields (SPEC.md "Job request"); the first fault found, or None.

    ``limits`` (the server hello's) adds the step and batch limits and supplies ``max_pixels``
    when that is not given; ``preview_formats``/``result_formats`` are those the server offers.
    """
    return (
        _check_geometry(job)
        or check_inputs(job)
        or check_operation(job)
        or _check_upscale(job)
        or _check_formats(job, preview_formats, result_formats)
        or _check_limits(job, max_pixels, limits)
    )


def check_blob(job: JobRequest, name: str, width: int, height: int) -> ProtocolError | None:
    """A stored blob used by the job (``name``: its path below ``job``, as ``InputRef.blob_field`` gives it)
    must be exactly the context's size, except a reference's (``FREE_SIZE_ROLES``: upload limits only)."""
    if any(ref.blob_field == name and ref.input.role in FREE_SIZE_ROLES for ref in input_refs(job)):
        return None
    context = job.context or job.region
    if (width, height) != (context.width, context.height):
        return _error(
            ErrorCode.SIZE_MISMATCH,
            f"blob is {width}x{height}, the context is {context.width}x{context.height}",
            f"job.{name}",
            job,
        )
    return None
