"""The CPU-offload choice from free GPU memory (models/offload.py), as a pure function, and its place in job info."""

from __future__ import annotations

import pytest
from latentbrush.backend.engine import Engine
from latentbrush.backend.models.offload import MODEL, NONE, RESERVE_BYTES, SEQUENTIAL, choose_offload
from latentbrush.protocol import Rect, Size

GB = 10**9


@pytest.mark.parametrize(
    ("model", "largest", "free", "forced", "expected"),
    [
        (10 * GB, 6 * GB, None, False, NONE),  # CPU / MPS: nothing to offload to
        (10 * GB, 6 * GB, 80 * GB, False, NONE),  # fits whole
        (10 * GB, 6 * GB, 80 * GB, True, MODEL),  # --cpu-offload asked for it
        (33 * GB, 24 * GB, 36 * GB, False, MODEL),  # Flux dev bf16 with 36 GB free: one component at a time
        (33 * GB, 24 * GB, 16 * GB, False, SEQUENTIAL),  # not even the transformer fits: layer by layer
        (33 * GB, 24 * GB, 16 * GB, True, SEQUENTIAL),  # forced model offload cannot work there either
    ],
)
def test_offload_choice(model: int, largest: int, free: int | None, forced: bool, expected: str) -> None:
    assert choose_offload(model, largest, free, forced=forced) == expected


def test_the_reserve_for_activations_counts() -> None:
    weights = 8 * GB
    assert choose_offload(weights, weights // 2, weights + RESERVE_BYTES // 2) == MODEL
    assert choose_offload(weights, weights // 2, 2 * weights + RESERVE_BYTES) == NONE


def test_job_info_says_the_offload(tiny_engine: Engine, make_job, events) -> None:
    job = make_job(model="tiny-sd3", canvas=Size(64, 64), region=Rect(0, 0, 64, 64), resolution=Size(64, 64))
    assert tiny_engine.run(job, {}, events).info["offload"] == NONE  # the CPU engine keeps everything in place
