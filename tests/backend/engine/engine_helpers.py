"""Helpers for the engine tests: the inputs mapping ``Engine.run`` takes, from the old image/mask pair."""

from __future__ import annotations

import numpy as np
from latentbrush.backend.inputs import InputPixels
from latentbrush.protocol import JobInput

FAKE_HASH = "sha256:" + "0" * 64


def engine_inputs(image: np.ndarray | None, mask: np.ndarray | None = None) -> dict[str, tuple[InputPixels, ...]]:
    """role -> inputs, as the worker hands them to the engine (RGBA image, one-channel mask)."""
    pairs = (("image", image), ("mask", mask))
    return {role: (InputPixels(JobInput(role, FAKE_HASH), pixels, f"job.{role}"),) for role, pixels in pairs
            if pixels is not None}
