"""The capacity model's simulation (``bench/capacity_sim.py``) at its edges: the gateway's policy, in time."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "capacity_sim.py"


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("capacity_sim", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_one_gpu_serves_two_artists_one_after_the_other(sim):
    arrivals = [sim.Arrival(0.0, "ana", "inpaint", False), sim.Arrival(0.0, "ben", "inpaint", False)]
    result = sim.simulate(arrivals, 1, lambda a: 2.0)
    assert result.waits["batch"] == [0.0, 2.0] and result.utilisation == 1.0


def test_a_live_frame_overtakes_queued_batch_jobs(sim):
    arrivals = [sim.Arrival(0.0, "ana", "upscale", False), sim.Arrival(1.0, "ana", "inpaint", False),
                sim.Arrival(2.0, "ben", "live", True, "ben-1")]
    result = sim.simulate(arrivals, 1, lambda a: {"upscale": 5.0, "inpaint": 1.0, "live": 0.5}[a.kind])
    assert result.waits["live"] == [3.0]  # started when the upscale ended, before ana's inpaint
    assert result.waits["batch"] == [0.0, 4.5]


def test_a_newer_frame_of_a_stream_supersedes_the_older_ones(sim):
    arrivals = [sim.Arrival(0.0, "ana", "upscale", False), sim.Arrival(1.0, "ben", "live", True, "s"),
                sim.Arrival(2.0, "ben", "live", True, "s"), sim.Arrival(6.0, "ben", "live", True, "s")]
    result = sim.simulate(arrivals, 1, lambda a: 5.0 if a.kind == "upscale" else 2.0)
    # the frame of t=1 was still queued at t=2: dropped; the one of t=2 ran from t=5 and was cancelled at t=6
    assert result.superseded == 2 and result.waits["live"] == [3.0, 0.0]
    assert result.busy_s == pytest.approx(5.0 + 1.0 + 2.0)


def test_the_trace_keeps_each_artists_rates(sim):
    profile = sim.Profile((sim.Kind("inpaint", 1.0, 10.0),))
    arrivals = sim.trace(3, 10_000.0, profile, random.Random(1))
    assert {a.artist for a in arrivals} == {"artist0", "artist1", "artist2"}
    assert 2700 < len(arrivals) < 3300  # about 1000 each: one per 10 s on average
    assert arrivals == sorted(arrivals, key=lambda a: a.at)
