"""Is a submitted job acceptable? Every check names the field at fault (SPEC.md "Job request").

Pure apart from reading the blob cache; the engine's own verdict (models, samplers, upscalers)
comes in as a function, so this runs the same with the real engine and with test fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from latentbrush.protocol import JobRequest, Limits, ProtocolError, check_job

from .blobs import BlobCache
from .inputs import JobInputs, lookup


def admit(
    job: JobRequest,
    limits: Limits,
    blobs: BlobCache,
    engine_check: Callable[[JobRequest], ProtocolError | None],
) -> JobInputs | ProtocolError:
    """The decoded inputs (role -> ``InputPixels``) of an acceptable job, or the first problem found.

    The order is SPEC.md 9.5 steps 3 to 5: fields across each other, then the engine's names,
    then the blobs (duplicate ids and the queue limit need the session: ``service.py``).
    """
    err = check_job(job, limits=limits)
    if err is not None:
        return err
    err = engine_check(job)
    if err is not None:
        return err if err.job_id else replace(err, job_id=job.id)
    return lookup(job, blobs)
