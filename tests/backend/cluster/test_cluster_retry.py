"""Retry after a lost replica, and the gateway's reading of a replica's event stream, without Ray."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from latentbrush.backend.cluster.engine import ReplicaInfo, StreamReader
from latentbrush.backend.cluster.retry import ReplicaLost, with_retry
from latentbrush.backend.events import EngineError, JobCancelled
from latentbrush.protocol import ErrorCode, Rect


def attempts_failing(times: int):
    tried: list[int] = []

    def attempt(number: int) -> str:
        tried.append(number)
        if len(tried) <= times:
            raise ReplicaLost(f"replica {number} died")
        return f"done on try {number}"

    return attempt, tried


def test_a_lost_replica_costs_one_retry():
    attempt, tried = attempts_failing(1)
    retried = []
    assert with_retry(attempt, on_retry=lambda n, exc: retried.append((n, str(exc)))) == "done on try 1"
    assert tried == [0, 1] and retried == [(0, "replica 0 died")]


def test_a_second_loss_is_a_clear_error_not_a_third_try():
    attempt, tried = attempts_failing(2)
    with pytest.raises(EngineError) as raised:
        with_retry(attempt)
    assert tried == [0, 1]
    assert raised.value.code == ErrorCode.INTERNAL and "retried on another worker" in raised.value.message


def test_a_job_cancelled_meanwhile_is_not_tried_again():
    attempt, tried = attempts_failing(1)
    with pytest.raises(JobCancelled):
        with_retry(attempt, cancelled=lambda: True)
    assert tried == [0]


def test_errors_of_the_job_itself_are_not_retried():
    tried = []

    def attempt(number: int) -> None:
        tried.append(number)
        raise EngineError(ErrorCode.UNKNOWN_MODEL, "no model 'x'", "job.model")

    with pytest.raises(EngineError):
        with_retry(attempt)
    assert tried == [0]


class Recorder:
    """The server's side of ``events.JobEvents``: what the worker would forward to the client."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.calls: list[tuple] = []

    def started(self, total, seed):
        self.calls.append(("started", total, seed))

    def progress(self, step, total, stage):
        self.calls.append(("progress", step))

    def preview(self, step, total, rgb, rect, index):
        self.calls.append(("preview", step, rgb.shape))

    def result(self, index, rgba, seed):
        self.calls.append(("result", index, seed))


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 4), value, np.uint8)


def test_a_stream_becomes_the_same_calls_and_output_as_a_local_run():
    events = Recorder()
    reader = StreamReader(events)
    stream = [("replica", "r1", 42, "10.0.0.2"), ("started", 2, 7), ("progress", 1, 2, "denoise"),
              ("preview", 1, 2, np.zeros((2, 2, 3), np.uint8), Rect(0, 0, 4, 4), 0), ("result", 0, image(1), 7),
              ("done", (7, 8), {"model": "tiny"}, 2, {1: image(2)})]
    outputs = [reader.feed(item) for item in stream]
    assert outputs[:-1] == [None] * 5 and reader.replica == ReplicaInfo("r1", 42, "10.0.0.2")
    assert events.calls == [("started", 2, 7), ("progress", 1), ("preview", 1, (2, 2, 3)), ("result", 0, 7)]
    output = outputs[-1]
    assert [int(i[0, 0, 0]) for i in output.images] == [1, 2] and output.seeds == (7, 8)


def test_a_retried_stream_starts_once_and_keeps_the_images_it_had():
    events = Recorder()
    reader = StreamReader(events)
    reader.feed(("started", 2, 7))
    reader.feed(("result", 0, image(1), 7))  # then the replica died; the retry streams from the start
    reader.feed(("started", 2, 7))
    output = reader.feed(("done", (7, 8), {}, 2, {1: image(2)}))
    assert [c[0] for c in events.calls] == ["started", "result"]
    assert len(output.images) == 2


def test_final_events_end_the_job_as_a_local_engine_would():
    with pytest.raises(EngineError) as raised:
        StreamReader(Recorder()).feed(("error", "out_of_memory", "out of memory", None))
    assert raised.value.code == ErrorCode.OUT_OF_MEMORY
    with pytest.raises(JobCancelled):
        StreamReader(Recorder()).feed(("cancelled",))
    with pytest.raises(EngineError, match=r"no image for items \[1\]"):
        StreamReader(Recorder()).feed(("done", (), {}, 2, {0: image(0)}))
