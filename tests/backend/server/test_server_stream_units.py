"""streams.py on its own: which jobs a new one supersedes, and the pins a stream holds."""

from __future__ import annotations

import numpy as np
from latentbrush.backend.blobs import BlobCache
from latentbrush.backend.jobs import FairQueue, JobRecord
from latentbrush.backend.streams import MAX_STREAMS_PER_SESSION, StreamPins, superseded_by
from server_harness import job


def records(*streams: str | None) -> list[JobRecord]:
    queue = FairQueue()
    out = []
    for i, stream in enumerate(streams):
        record = JobRecord(job(f"j{i}", stream=stream), "client")
        queue.push(record)  # gives each its submission order
        out.append(record)
    return out


def test_only_unfinished_jobs_of_the_same_stream_are_superseded_oldest_first():
    older, other, plain, done, newest = records("s", "t", None, "s", "s")
    done.status = done.status.advance("cancelled")
    jobs = [newest, plain, other, done, older]
    assert superseded_by(newest, jobs) == [older]
    assert superseded_by(plain, jobs) == []  # a job without stream supersedes nothing


def blob(value: int) -> np.ndarray:
    return np.full((4, 4, 4), value, np.uint8)  # 64 bytes


def test_a_stream_keeps_its_latest_blobs_until_newer_ones_or_the_end():
    cache = BlobCache(budget_bytes=64)  # one blob besides the newest
    pins = StreamPins(cache)
    cache.put("a", blob(1))
    pins.hold("s", ("a",))
    for key in ("x", "y", "z"):
        cache.put(key, blob(2))
    assert "a" in cache and "x" not in cache
    cache.put("b", blob(3))
    pins.hold("s", ("b", "a"))  # a key the next job shares stays pinned throughout
    pins.hold("s", ("b",))
    cache.put("w", blob(4))
    assert "a" not in cache and "b" in cache
    pins.release()
    cache.put("v", blob(5))
    cache.put("u", blob(6))
    assert "b" not in cache and len(pins) == 0


def test_the_least_recent_stream_lets_go_beyond_the_cap():
    cache = BlobCache(budget_bytes=64)
    pins = StreamPins(cache)
    for i in range(MAX_STREAMS_PER_SESSION + 1):
        cache.put(f"k{i}", blob(i))
        pins.hold(f"s{i}", (f"k{i}",))
    assert len(pins) == MAX_STREAMS_PER_SESSION and pins.held("s0") == ()
    cache.put("new", blob(99))
    assert "k0" not in cache and f"k{MAX_STREAMS_PER_SESSION}" in cache
