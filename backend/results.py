"""Finished images -> result frames (runs off the event loop; pure)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from latentbrush.protocol import JobRequest, Rect, ResultHeader, encode_frame, upscale_rect
from latentbrush.protocol.messages import RAW_FORMATS

from .events import JobOutput
from .images import encode_result, raw_frame


def check_output_image(index: int, image: Any) -> np.ndarray:
    """The engine promises H x W x 4 uint8; anything else is a bug reported as an internal error."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"engine returned image {index} as {dtype} {shape}, expected H x W x 4 uint8")
    return image


def result_rect(job: JobRequest) -> Rect:
    """Where results go (SPEC.md 10.2): the region, or for an upscale its rectangle in the upscaled canvas."""
    return upscale_rect(job) if job.op == "upscale" else job.region


def encode_result_frame(job: JobRequest, index: int, image: Any, seed: int | None) -> bytes | memoryview:
    """One ``ResultHeader`` frame in the job's ``result_format``, exactly ``result_rect``.

    Raw formats come back as a memoryview of one buffer the pixels were converted into (a 4096² result
    is 64 MiB: no intermediate copies); encoded ones as bytes.
    """
    rect = result_rect(job)
    pixels = check_output_image(index, image)
    if pixels.shape[:2] != (rect.height, rect.width):
        raise ValueError(
            f"engine returned image {index} of {pixels.shape[1]}x{pixels.shape[0]}, "
            f"the result rectangle is {rect.width}x{rect.height}"
        )
    fmt = job.result_format
    if fmt in RAW_FORMATS:
        height, width = pixels.shape[:2]
        header = ResultHeader(job_id=job.id, index=index, rect=rect, format=fmt, width=width, height=height,
                              seed=seed, stride=width * RAW_FORMATS[fmt])
        return raw_frame(encode_frame(header, b""), pixels, fmt)
    encoded = encode_result(pixels, fmt)
    header = ResultHeader(
        job_id=job.id,
        index=index,
        rect=rect,
        format=job.result_format,
        width=encoded.width,
        height=encoded.height,
        seed=seed,
        stride=encoded.stride,
    )
    return encode_frame(header, encoded.data)


def encode_results(
    job: JobRequest, output: JobOutput, skip: frozenset[int] = frozenset()
) -> dict[int, bytes | memoryview]:
    """Result frames of every image but those in ``skip`` (already sent while the job ran), by index."""
    return {
        index: encode_result_frame(job, index, image, output.seeds[index] if index < len(output.seeds) else None)
        for index, image in enumerate(output.images)
        if index not in skip
    }


def json_safe(info: dict[str, Any]) -> dict[str, Any]:
    """Provenance from the engine, reduced to what JSON can carry (numbers, strings, lists, dicts)."""
    try:
        return json.loads(json.dumps(info, default=str, allow_nan=False))
    except (TypeError, ValueError):
        return {str(k): str(v) for k, v in info.items()}
