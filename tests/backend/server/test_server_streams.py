"""Live streams (SPEC.md 9.11): the newest job of a stream supersedes the session's earlier ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from latentbrush.protocol import Cancel, ClientHello, QueryBlobs, QueryQueue
from server_fakes import FakeEngine
from server_harness import TOKEN, TestClient, job, pattern, running_server, submit


def run(coro) -> None:
    asyncio.run(coro)


@contextlib.asynccontextmanager
async def client_1_1(url: str, client_id: str | None = None) -> AsyncIterator[TestClient]:
    """A client whose hello says minor 1 (the harness's own hello is a 1.0 one)."""
    async with TestClient.connect(url, hello=False) as client:
        await client.send(ClientHello(protocol=1, client="test", token=TOKEN, client_id=client_id, minor=1))
        client.hello = await client.recv()
        yield client


@pytest.fixture
def engine() -> FakeEngine:
    held = FakeEngine()
    held.hold()
    yield held
    held.release()


def test_a_queued_job_of_the_stream_is_dropped_at_once(engine):
    async def scenario():
        async with running_server(engine) as server, client_1_1(server.url) as client:
            await client.send(submit(job("busy")))  # no stream: runs, held, ahead of the live jobs
            await client.wait_for("busy", "started")
            await client.send(submit(job("live1", stream="live-doc")))
            await client.wait_for("live1", "queued")
            await client.send(submit(job("live2", stream="live-doc")))
            final = (await client.finish("live1")).final
            assert final.TYPE == "cancelled" and final.reason == "superseded"
            assert client.traces["live1"].kinds == ["queued", "cancelled"]
            await client.wait_position("live2", 0)
            engine.release()
            assert (await client.finish("busy")).final.TYPE == "done"  # a job without stream is untouched
            assert (await client.finish("live2")).final.TYPE == "done"
            assert engine.runs == ["busy", "live2"]  # the superseded job never reached the engine

    run(scenario())


def test_a_running_job_of_the_stream_is_cancelled_and_the_newest_wins(engine):
    async def scenario():
        async with running_server(engine) as server, client_1_1(server.url) as client:
            await client.send(submit(job("live1", stream="s")))
            await client.wait_for("live1", "started")
            await client.send(submit(job("live2", stream="s")))
            await client.send(submit(job("live3", stream="s")))
            first = (await client.finish("live1")).final
            second = (await client.finish("live2")).final
            assert (first.TYPE, first.reason) == ("cancelled", "superseded")
            assert (second.TYPE, second.reason) == ("cancelled", "superseded")
            engine.release()
            assert (await client.finish("live3")).final.TYPE == "done"
            assert engine.runs == ["live1", "live3"]

    run(scenario())


def test_other_streams_jobs_without_stream_and_other_sessions_are_untouched(engine):
    async def scenario():
        async with (running_server(engine) as server, client_1_1(server.url) as a, client_1_1(server.url) as b):
            await a.send(submit(job("a-run", stream="s")))
            await a.wait_for("a-run", "started")
            await b.send(submit(job("b-q", stream="s")))  # the same stream name in another session
            await a.send(submit(job("a-other", stream="t")))
            await a.send(submit(job("a-plain")))
            await b.wait_for("b-q", "queued")
            await a.wait_for("a-plain", "queued")
            await a.send(submit(job("a-plain2")))  # no stream: supersedes nothing, not even a-plain
            await a.wait_for("a-plain2", "queued")
            engine.release()
            for client, job_id in ((a, "a-run"), (a, "a-other"), (a, "a-plain"), (a, "a-plain2"), (b, "b-q")):
                assert (await client.finish(job_id)).final.TYPE == "done", job_id

    run(scenario())


def test_results_sent_before_the_supersede_stay_valid():
    engine = FakeEngine(item_by_item=True)
    engine.lockstep()

    async def scenario():
        async with running_server(engine) as server, client_1_1(server.url) as client:
            await client.send(submit(job("b3", steps=2, batch=3, seed=40, stream="s")))
            await client.wait_for("b3", "started")
            engine.advance()  # item 0 finishes at its second step
            await client.wait_until(lambda: len(client.traces["b3"].results) == 1)
            await client.send(submit(job("next", steps=1, stream="s")))
            trace = await client.finish("b3")
            assert (trace.final.TYPE, trace.final.reason) == ("cancelled", "superseded")
            assert [(h.index, h.seed) for h, _ in trace.results] == [(0, 40)]
            assert (await client.finish("next")).final.TYPE == "done"

    run(scenario())


def test_a_1_0_client_hears_a_plain_cancelled_and_a_client_cancel_has_no_reason(engine):
    async def scenario():
        async with running_server(engine) as server:
            async with TestClient.connect(server.url) as old:  # the harness's hello: minor 0
                await old.send(submit(job("q1", stream="s")))
                await old.wait_for("q1", "started")
                await old.send(submit(job("q2", stream="s")))
                final = (await old.finish("q1")).final
                assert final.TYPE == "cancelled" and final.reason is None
                await old.send(Cancel("q2"))
                assert (await old.finish("q2")).final.reason is None
            async with client_1_1(server.url) as client:
                await client.send(submit(job("c1", stream="s")))
                await client.wait_for("c1", "started")
                await client.send(Cancel("c1"))
                await client.send(submit(job("c2", stream="s")))  # c1 was already told to stop: by the client
                assert (await client.finish("c1")).final.reason is None
                engine.release()
                assert (await client.finish("c2")).final.TYPE == "done"

    run(scenario())


def test_superseded_queued_jobs_do_not_count_towards_max_queue(engine):
    async def scenario():
        async with running_server(engine, max_queue=2) as server, client_1_1(server.url) as client:
            await client.send(submit(job("run", stream="s")))
            await client.wait_for("run", "started")
            await client.send(submit(job("q", stream="t")))
            await client.wait_for("q", "queued")
            await client.send(submit(job("q-next", stream="t")))  # replaces q: still two unfinished
            assert (await client.wait_for("q-next", "queued")).TYPE == "queued"
            assert (await client.finish("q")).final.reason == "superseded"
            await client.send(submit(job("full")))
            assert (await client.finish("full")).final.code == "queue_full"
            engine.release()

    run(scenario())


def test_the_streams_latest_blobs_stay_until_newer_ones_replace_them():
    size = 32
    one_blob = size * size * 4  # decoded RGBA bytes: the budget holds one blob besides the newest

    async def scenario():
        async with running_server(FakeEngine(), blob_cache_bytes=2 * one_blob) as server, \
                client_1_1(server.url) as client:
            async def have(key: str) -> bool:
                await client.send(QueryBlobs((key,)))
                return key in (await client.next_other()).have

            first = await client.upload_rgba(pattern(size, size, 1))
            await client.send(submit(job("f1", "img2img", size=size, image=first, strength=0.5, stream="s")))
            assert (await client.finish("f1")).final.TYPE == "done"
            for seed in (2, 3, 4):  # more uploads than the budget holds: only a pinned blob survives
                await client.upload_rgba(pattern(size, size, seed))
            assert await have(first)
            second = await client.upload_rgba(pattern(size, size, 5))
            await client.send(submit(job("f2", "img2img", size=size, image=second, strength=0.5, stream="s")))
            assert (await client.finish("f2")).final.TYPE == "done"
            for seed in (6, 7, 8):
                await client.upload_rgba(pattern(size, size, seed))
            assert await have(second)
            assert not await have(first)  # let go once the stream's newer job named other blobs
            await client.send(QueryQueue())
            assert (await client.next_other()).jobs == ()

    run(scenario())
