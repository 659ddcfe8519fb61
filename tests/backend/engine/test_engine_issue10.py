"""Issue 10 defects on the engine: strength x steps < 1 runs one step; an upscale without refine has no seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from latentbrush.backend.engine import Engine
from latentbrush.backend.inputs import InputPixels
from latentbrush.protocol import JobInput, Rect, Size

FAKE_HASH = "sha256:" + "0" * 64


def run(engine: Engine, job: Any, events: Any, image: np.ndarray | None = None, mask: np.ndarray | None = None):
    inputs = {role: (InputPixels(JobInput(role, FAKE_HASH), pixels, f"job.{role}"),)
              for role, pixels in (("image", image), ("mask", mask)) if pixels is not None}
    return engine.run(job, inputs, events)


@pytest.mark.parametrize("op", ["img2img", "inpaint"])
def test_strength_times_steps_below_one_runs_one_step(tiny_engine, make_job, make_events, picture, op) -> None:
    mask = np.full((64, 64), 255, np.uint8) if op == "inpaint" else None
    job = make_job(op=op, image=True, mask=op == "inpaint" or None, strength=0.1, steps=4, canvas=Size(64, 64),
                   region=Rect(0, 0, 64, 64), resolution=Size(64, 64))
    assert tiny_engine.check(job) is None
    events = make_events()
    out = run(tiny_engine, job, events, picture(64, 64), mask)
    assert events.of("started") == [(1, 1234)]  # started.total is what runs
    assert [p[:2] for p in events.of("progress")] == [(1, 1)]
    assert len(out.images) == 1


def test_upscale_without_refine_reports_no_seed(tiny_engine, make_job, make_events, picture) -> None:
    job = make_job(op="upscale", image=True, resolution=None, canvas=Size(16, 16), region=Rect(0, 0, 16, 16),
                   seed=None)
    events = make_events()
    out = run(tiny_engine, job, events, picture(16, 16))
    assert [seed for _total, seed in events.of("started")] == [None]
    assert out.seeds == ()
