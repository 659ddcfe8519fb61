"""The studio queue (``cluster/scheduler.py``): round robin between artists, live before batch, at its edges."""

from __future__ import annotations

from latentbrush.backend.cluster.scheduler import ArtistQueue
from latentbrush.backend.jobs import JobRecord
from server_harness import job

ARTIST = {"ana-1": "ana", "ana-2": "ana", "ben-1": "ben", "cat-1": "cat"}  # session -> artist


def record(job_id: str, session: str, stream: str | None = None) -> JobRecord:
    return JobRecord(job(job_id, stream=stream), session)


def queue_of(*records: JobRecord) -> ArtistQueue:
    queue = ArtistQueue(lambda r: ARTIST[r.client_id])
    for r in records:
        queue.push(r)
    return queue


def drain(queue: ArtistQueue) -> list[str]:
    out = []
    while (r := queue.pop_next()) is not None:
        out.append(r.job_id)
    return out


def test_an_empty_queue_gives_nothing():
    assert ArtistQueue(lambda r: "x").pop_next() is None and queue_of().order() == []


def test_artists_alternate_whatever_they_queued_first():
    queue = queue_of(*(record(f"a{i}", "ana-1") for i in range(3)), record("b0", "ben-1"), record("b1", "ben-1"))
    expected = ["a0", "b0", "a1", "b1", "a2"]
    assert [r.job_id for r in queue.order()] == expected  # what the queued positions announce...
    assert drain(queue) == expected  # ...is what runs


def test_two_sessions_of_one_artist_share_one_turn():
    queue = queue_of(record("a0", "ana-1"), record("a1", "ana-2"), record("a2", "ana-1"), record("b0", "ben-1"))
    assert drain(queue) == ["a0", "b0", "a1", "a2"]  # a second connection buys ana no second share


def test_a_newcomer_goes_before_an_artist_just_served():
    queue = queue_of(record("a0", "ana-1"), record("a1", "ana-1"))
    assert queue.pop_next().job_id == "a0"
    queue.push(record("c0", "cat-1"))
    assert drain(queue) == ["c0", "a1"]


def test_a_live_job_never_waits_behind_a_batch_job():
    queue = queue_of(record("a0", "ana-1"), record("b0", "ben-1"), record("b-live", "ben-1", stream="live"),
                     record("a1", "ana-1"))
    assert drain(queue) == ["b-live", "a0", "b0", "a1"]


def test_live_jobs_take_turns_between_artists_too():
    queue = queue_of(record("a-live1", "ana-1", "s"), record("a-live2", "ana-1", "t"), record("b-live", "ben-1", "s"))
    assert drain(queue) == ["a-live1", "b-live", "a-live2"]


def test_removing_a_job_keeps_the_rest_in_order_and_needs_its_session():
    queue = queue_of(record("x", "ana-1"), record("x", "ana-2"), record("b0", "ben-1"))
    assert queue.remove("ben-1", "x") is None  # job ids are per session
    removed = queue.remove("ana-2", "x")
    assert removed is not None and removed.client_id == "ana-2"
    assert [(r.client_id, r.job_id) for r in queue.order()] == [("ana-1", "x"), ("ben-1", "b0")]
    assert queue.remove("ana-1", "x") is not None and queue.remove("ben-1", "b0") is not None
    assert len(queue) == 0 and queue.pop_next() is None
