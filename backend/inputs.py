"""A job's inputs on the server: role -> decoded pixels, from admission through the worker to the engine.

Admission looks every input's blob up (``lookup``); the job record holds the result; the worker converts
each to what the engine wants (``prepare``: RGBA for colour roles, one channel for mask roles) and hands the
mapping to ``Engine.run``. The protocol's ``input_refs`` makes the 1.0 ``image``/``mask`` fields and 1.1
``inputs`` one list, so nothing here knows which form a job came in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from latentbrush.protocol import ROLES, ErrorCode, JobInput, JobRequest, ProtocolError, check_blob, input_refs

from .images import as_mask, as_rgba, blob_size


@dataclass(frozen=True)
class InputPixels:
    """One input with its pixels: decoded as stored until ``prepare``, then H x W x 4 RGBA or H x W (mask)."""

    input: JobInput
    pixels: np.ndarray
    field: str  # where the job names it, for errors: "job.image", "job.inputs[2].blob"

    def param(self, name: str) -> Any:
        return self.input.param(name)


JobInputs = Mapping[str, tuple[InputPixels, ...]]  # role -> its inputs in job order


def lookup(job: JobRequest, blobs: Any) -> dict[str, tuple[InputPixels, ...]] | ProtocolError:
    """Every input's blob from ``blobs`` (``get(key) -> array | None``), size-checked; the first fault otherwise."""
    out: dict[str, tuple[InputPixels, ...]] = {}
    for ref in input_refs(job):
        pixels = blobs.get(ref.input.blob)
        field = f"job.{ref.blob_field}"
        if pixels is None:
            message = f"no blob {ref.input.blob} on this server; upload it first"
            return ProtocolError(ErrorCode.UNKNOWN_BLOB, message, field, job.id)
        width, height = blob_size(pixels)
        err = check_blob(job, ref.blob_field, width, height)
        if err is not None:
            return err
        out[ref.input.role] = (*out.get(ref.input.role, ()), InputPixels(ref.input, pixels, field))
    return out


def prepare(inputs: JobInputs) -> dict[str, tuple[InputPixels, ...]]:
    """The engine's view: colour roles as RGBA, mask roles as one channel (SPEC.md 8, 9.9)."""
    convert = {"image": as_rgba, "mask": as_mask}
    return {
        role: tuple(replace(item, pixels=convert[ROLES[role].kind](item.pixels)) for item in items)
        for role, items in inputs.items()
    }


def pixels(inputs: JobInputs, role: str) -> np.ndarray | None:
    """The pixels of the job's (first) input of ``role``, or None when it has none."""
    items = inputs.get(role, ())
    return items[0].pixels if items else None


def from_arrays(image: np.ndarray | None = None, mask: np.ndarray | None = None,
                blob: str = "sha256:" + "0" * 64) -> dict[str, tuple[InputPixels, ...]]:
    """An engine inputs mapping from an RGBA image and a mask, for callers outside the server (benchmarks)."""
    pairs = (("image", image), ("mask", mask))
    return {role: (InputPixels(JobInput(role, blob), array, f"job.{role}"),) for role, array in pairs
            if array is not None}
