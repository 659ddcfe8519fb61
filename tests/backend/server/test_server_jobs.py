"""Queue, cancel, fairness, resume and back-pressure, with the fake engine over loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest
from latentbrush.protocol import Cancel, QueryQueue, Rect
from server_fakes import FakeEngine
from server_harness import HANG_GUARD_S, TestClient, job, running_server, submit
from websockets.exceptions import ConnectionClosed


def run(coro) -> None:
    asyncio.run(coro)


async def _ended(server, client_id: str, job_id: str) -> None:
    while server.job_state(client_id, job_id) not in ("done", "error", "cancelled"):
        await asyncio.sleep(0.01)


@pytest.fixture
def engine() -> FakeEngine:
    held = FakeEngine()
    held.hold()
    yield held
    held.release()


def test_cancel_queued_job_updates_positions(engine):
    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            for name in ("a", "b", "c"):
                await client.send(submit(job(name)))
            await client.wait_for("a", "started")
            await client.wait_position("b", 0)
            before = await client.wait_position("c", 1)
            await client.send(Cancel("b"))
            assert type((await client.finish("b")).final).TYPE == "cancelled"
            after = await client.wait_position("c", 0)
            assert after == [*before, 0]  # exactly one update, sent when the job ahead left
            engine.release()
            assert type((await client.finish("a")).final).TYPE == "done"
            assert type((await client.finish("c")).final).TYPE == "done"
            assert engine.runs == ["a", "c"]  # the cancelled job never reached the engine
            assert set(client.traces["b"].kinds) == {"queued", "cancelled"}

    run(scenario())


def test_cancel_running_job_then_serve_the_next(engine):
    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("run1", steps=50)))
            await client.send(submit(job("run2", steps=2)))
            await client.wait_for("run1", "started")
            await client.send(Cancel("run1"))
            trace = await client.finish("run1")
            assert trace.kinds[-1] == "cancelled" and trace.results == []
            engine.release()
            assert type((await client.finish("run2")).final).TYPE == "done"
            # cancelling a job that has ended does nothing; cancelling one never submitted is an error
            await client.send(Cancel("run1"))
            await client.send(Cancel("never"))
            error = await client.wait_for("never", "error")
            assert (error.code, error.field, error.job_id) == ("unknown_job", "job_id", "never")
            assert client.traces["run1"].kinds[-1] == "cancelled"

    run(scenario())


def test_fair_round_robin_between_clients(engine):
    async def scenario():
        async with (
            running_server(engine) as server,
            TestClient.connect(server.url) as greedy,
            TestClient.connect(server.url) as modest,
        ):
            for name in ("g1", "g2", "g3", "g4"):
                await greedy.send(submit(job(name)))
            await greedy.wait_for("g1", "started")
            await greedy.wait_position("g4", 2)
            await modest.send(submit(job("m1")))
            await modest.send(submit(job("m2")))
            # m1 overtakes g2..g4: the greedy client was just served
            await modest.wait_position("m1", 0)
            await modest.wait_position("m2", 2)
            await greedy.wait_position("g2", 1)
            await greedy.wait_position("g4", 4)
            engine.release()
            for name in ("g1", "g2", "g3", "g4"):
                assert type((await greedy.finish(name)).final).TYPE == "done"
            for name in ("m1", "m2"):
                assert type((await modest.finish(name)).final).TYPE == "done"
            assert engine.runs == ["g1", "m1", "g2", "m2", "g3", "g4"]

    run(scenario())


def test_duplicate_job_id_and_queue_full_per_client(engine):
    async def scenario():
        async with (
            running_server(engine, max_queue=2) as server,
            TestClient.connect(server.url) as client,
            TestClient.connect(server.url) as other,
        ):
            await client.send(submit(job("x1")))
            await client.wait_for("x1", "started")
            await client.send(submit(job("x1")))
            duplicate = await client.next_other()  # no job_id: the earlier job goes on
            assert (duplicate.code, duplicate.field, duplicate.job_id) == ("duplicate_job", "job.id", None)
            await client.send(submit(job("x2")))
            await client.send(submit(job("x3")))
            full = await client.finish("x3")
            assert (full.final.code, full.final.job_id) == ("queue_full", "x3")
            await other.send(submit(job("o1")))  # the limit is per client
            await other.wait_for("o1", "queued")
            engine.release()
            for name in ("x1", "x2"):
                assert type((await client.finish(name)).final).TYPE == "done"
            assert type((await other.finish("o1")).final).TYPE == "done"
            # a delivered job's id may be used again, and a rejected one too
            await client.send(submit(job("x2", steps=1)))
            await client.send(submit(job("x3", steps=1)))
            await client.wait_until(lambda: len(client.seen("x2", "done")) == 2 and bool(client.seen("x3", "done")))

    run(scenario())


def test_results_wait_for_a_client_that_reconnects(engine):
    async def scenario():
        async with running_server(engine) as server:
            async with TestClient.connect(server.url) as client:
                client_id = client.hello.client_id
                await client.send(submit(job("r1", steps=2, seed=5)))
                await client.send(submit(job("r2", steps=2)))
                await client.wait_for("r1", "started")
            # disconnected: both jobs finish with nobody listening
            engine.release()
            while len(engine.runs) < 2:
                await asyncio.sleep(0.01)
            async with TestClient.connect(server.url, client_id=client_id) as back:
                assert back.hello.resumed is True and back.hello.client_id == client_id
                first = await back.finish("r1")
                second = await back.finish("r2")
                assert first.final.seeds == (5,) and len(first.results) == 1
                assert len(second.results) == 1
            # delivered once: a third connection has nothing left to replay
            async with TestClient.connect(server.url, client_id=client_id) as third:
                await third.send(QueryQueue())
                assert (await third.next_other()).jobs == ()
                assert third.traces == {}

    run(scenario())


def test_results_over_the_retention_budget_expire(engine):
    async def scenario():
        async with running_server(engine, retention_bytes=100) as server:
            async with TestClient.connect(server.url) as client:
                client_id = client.hello.client_id
                await client.send(submit(job("kept", steps=1)))
                await client.wait_for("kept", "started")
            engine.release()
            # the engine returning is not the job ending: encoding and _finish run after it
            await asyncio.wait_for(_ended(server, client_id, "kept"), HANG_GUARD_S)
            async with TestClient.connect(server.url, client_id=client_id) as back:
                trace = await back.finish("kept")
                assert trace.results == [] and (trace.final.code, trace.final.job_id) == ("expired", "kept")
                # a connected client gets its results whatever the budget
                await back.send(submit(job("live", steps=1)))
                live = await back.finish("live")
                assert live.kinds[-1] == "done" and len(live.results) == 1

    run(scenario())


def test_expired_session_drops_its_jobs(engine, monkeypatch):
    monkeypatch.setattr("latentbrush.backend.service.IDLE_SESSION_TTL_S", 0.0)

    async def scenario():
        async with running_server(engine) as server:
            async with TestClient.connect(server.url) as client:
                client_id = client.hello.client_id
                await client.send(submit(job("gone-running")))
                await client.send(submit(job("gone-queued")))
                await client.wait_for("gone-running", "started")
            async with TestClient.connect(server.url, client_id=client_id) as back:
                assert back.hello.resumed is False and back.hello.client_id != client_id
                engine.release()
                await back.send(submit(job("fresh", steps=1)))
                assert (await back.finish("fresh")).kinds[-1] == "done"
                assert back.traces.keys() == {"fresh"}
            assert engine.runs == ["gone-running", "fresh"] and "gone-running" not in engine.completed

    run(scenario())


def test_running_job_keeps_streaming_to_the_new_connection(engine):
    async def scenario():
        async with running_server(engine) as server:
            async with TestClient.connect(server.url) as client:
                client_id = client.hello.client_id
                await client.send(submit(job("live", steps=3)))
                await client.wait_for("live", "started")
            async with TestClient.connect(server.url, client_id=client_id) as back:
                assert back.hello.resumed is True
                started = await back.wait_for("live", "started")  # the server repeats where the job stands
                assert started.total == 3
                engine.release()
                trace = await back.finish("live")
                assert trace.kinds[-1] == "done" and len(trace.results) == 1
                assert [m.step for m in trace.messages if type(m).TYPE == "progress"] == [1, 2, 3]

    run(scenario())


def test_new_connection_with_same_client_id_supersedes_the_old(engine):
    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as old:
            await old.send(submit(job("t1", steps=1)))
            await old.wait_for("t1", "started")
            async with TestClient.connect(server.url, client_id=old.hello.client_id) as new:
                assert new.hello.resumed is True
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await old.recv()
                assert closed.value.rcvd.code == 4000
                engine.release()
                assert type((await new.finish("t1")).final).TYPE == "done"

    run(scenario())


def test_slow_client_gets_fewer_previews_but_every_result():
    """A client that stops reading: previews are replaced, never queued without bound."""
    engine = FakeEngine(preview_size=(512, 512))  # 1 MiB per raw preview frame
    steps = 40

    async def scenario():
        async with running_server(engine, max_frame_bytes=64 * 1024 * 1024) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no kernel autotuning to 32 MB
            async with TestClient.connect(server.url, sock=sock, max_queue=2) as client:
                request = job("slow", size=512, steps=steps, preview_format="rgba8", preview_max_side=512)
                await client.send(submit(request))
                while not engine.completed:  # not reading while the whole job runs
                    await asyncio.sleep(0.01)
                trace = await client.finish("slow")
                assert trace.kinds[-1] == "done" and len(trace.results) == 1
                assert [m.step for m in trace.messages if type(m).TYPE == "progress"] == list(range(1, steps + 1))
                steps_seen = [h.step for h, _ in trace.previews]
                assert 0 < len(steps_seen) < steps
                assert steps_seen == sorted(steps_seen) and steps_seen[-1] == steps  # the newest, in order

    run(scenario())


def test_unknown_client_id_gets_a_fresh_session():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url, client_id="made-up") as client:
            assert client.hello.resumed is False and client.hello.client_id != "made-up"
            assert len(client.hello.client_id) >= 32

    run(scenario())


def test_region_outside_context_rejected_but_connection_serves_on():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("bad", context=Rect(0, 0, 32, 32), region=Rect(16, 16, 32, 32))))
            error = await client.wait_for("bad", "error")
            assert (error.code, error.field) == ("out_of_bounds", "job.region")
            await client.send(submit(job("good")))
            assert type((await client.finish("good")).final).TYPE == "done"

    run(scenario())


def test_each_batch_item_arrives_when_done_and_survives_a_cancel():
    """SPEC.md 9.7: results sent before ``cancelled`` stay valid, so they must be sent when each item is done."""
    engine = FakeEngine(item_by_item=True)
    engine.lockstep()

    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("b3", steps=2, batch=3, seed=40)))
            await client.wait_for("b3", "started")
            engine.advance()  # item 0 finishes at its second step
            await client.wait_until(lambda: len(client.traces["b3"].results) == 1)
            assert not client.seen("b3", "done")  # item 0 arrived while the job still runs
            await client.send(Cancel("b3"))
            trace = await client.finish("b3")
            assert trace.kinds[-1] == "cancelled"
            assert [(h.index, h.seed) for h, _ in trace.results] == [(0, 40)]

    run(scenario())


def test_streamed_and_final_results_are_sent_once_each():
    engine = FakeEngine(item_by_item=True)

    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("b2", steps=1, batch=2, seed=7)))
            trace = await client.finish("b2")
            assert [h.index for h, _ in trace.results] == [0, 1]
            assert trace.final.results == 2 and trace.final.seeds == (7, 8)

    run(scenario())


async def _victim_then_next(engine: FakeEngine) -> None:
    """The first job meets an injected fault and ends with ``internal``; the next one runs normally."""
    async with running_server(engine) as server, TestClient.connect(server.url) as client:
        await client.send(submit(job("victim", steps=1)))
        trace = await client.finish("victim")
        assert (trace.final.TYPE, trace.final.code) == ("error", "internal")
        await client.send(submit(job("next", steps=1)))
        assert (await client.finish("next")).kinds[-1] == "done"


def test_a_fault_outside_the_engine_ends_that_job_and_the_next_runs(monkeypatch):
    """The scheduler loop and the finishing step are supervised: a bug costs one job, never the queue."""
    from latentbrush.backend import service

    engine = FakeEngine()
    original = service.JobService._announce_positions
    calls = {"n": 0}

    def flaky_announce(self):
        calls["n"] += 1
        if calls["n"] == 2:  # the call as the first job starts running, outside worker.run
            raise RuntimeError("injected scheduler fault")
        original(self)

    monkeypatch.setattr(service.JobService, "_announce_positions", flaky_announce)

    run(_victim_then_next(engine))


def test_a_fault_while_finishing_ends_the_job_with_internal(monkeypatch):
    from latentbrush.backend import service

    engine = FakeEngine()
    original = service.JobService._log_end
    calls = {"n": 0}

    def flaky_log_end(self, record, how, seconds):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected finishing fault")
        original(self, record, how, seconds)

    monkeypatch.setattr(service.JobService, "_log_end", flaky_log_end)

    run(_victim_then_next(engine))
