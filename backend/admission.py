"""Is a submitted job acceptable? Every check names the field at fault (SPEC.md "Job request").

Pure apart from reading the blob cache; the engine's own verdict (models, samplers, upscalers)
comes in as a function, so this runs the same with the real engine and with test fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, Limits, ProtocolError, check_blob, check_job

from .blobs import BlobCache
from .images import blob_size


def _blob_for(blobs: BlobCache, job: JobRequest, name: str) -> np.ndarray | ProtocolError | None:
    key = getattr(job, name)
    if key is None:
        return None
    pixels = blobs.get(key)
    if pixels is None:
        message = f"no blob {key} on this server; upload it first"
        return ProtocolError(ErrorCode.UNKNOWN_BLOB, message, f"job.{name}", job.id)
    width, height = blob_size(pixels)
    return check_blob(job, name, width, height) or pixels


def admit(
    job: JobRequest,
    limits: Limits,
    blobs: BlobCache,
    engine_check: Callable[[JobRequest], ProtocolError | None],
) -> tuple[np.ndarray | None, np.ndarray | None] | ProtocolError:
    """(image, mask) decoded blobs for an acceptable job, or the first problem found.

    The order is SPEC.md 9.5 steps 3 to 5: fields across each other, then the engine's names,
    then the blobs (duplicate ids and the queue limit need the session: ``service.py``).
    """
    err = check_job(job, limits=limits)
    if err is not None:
        return err
    err = engine_check(job)
    if err is not None:
        return err if err.job_id else replace(err, job_id=job.id)
    image = _blob_for(blobs, job, "image")
    if isinstance(image, ProtocolError):
        return image
    mask = _blob_for(blobs, job, "mask")
    if isinstance(mask, ProtocolError):
        return mask
    return image, mask
