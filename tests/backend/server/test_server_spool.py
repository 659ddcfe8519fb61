"""The spool: finished, undelivered results survive a server restart (SPEC.md 11 Resume, Retention)."""

from __future__ import annotations

import asyncio
import logging
import socket
import stat
from pathlib import Path

import pytest
from latentbrush.backend.spool import SpoolError, decode_meta, encode_meta, entry_name
from latentbrush.protocol import Done, QueryQueue
from server_fakes import FakeEngine
from server_harness import HANG_GUARD_S, TestClient, job, running_server, submit


def run(coro) -> None:
    asyncio.run(coro)


def entries(spool: Path) -> list[Path]:
    return sorted(p for p in spool.iterdir() if not p.name.startswith(".")) if spool.exists() else []


async def _ended(server, client_id: str, job_id: str) -> None:
    while server.job_state(client_id, job_id) not in ("done", "error", "cancelled"):
        await asyncio.sleep(0.01)


async def _spooled(spool: Path) -> None:
    while not entries(spool):
        await asyncio.sleep(0.01)


async def leave_unread(server, engine: FakeEngine, job_ids: tuple[str, ...], **fields) -> str:
    """Submit ``job_ids``, disconnect while they run, and let them finish with nobody listening."""
    engine.hold()
    async with TestClient.connect(server.url) as client:
        client_id = client.hello.client_id
        for job_id in job_ids:
            await client.send(submit(job(job_id, **fields)))
        await client.wait_for(job_ids[0], "started")
    engine.release()
    for job_id in job_ids:
        await asyncio.wait_for(_ended(server, client_id, job_id), HANG_GUARD_S)
    return client_id


async def live_delivery(server, job_id: str, **fields):
    """What a connected client is sent for the same job: the reference a replay must match."""
    async with TestClient.connect(server.url) as client:
        await client.send(submit(job(job_id, **fields)))
        return await client.finish(job_id)


def test_a_restarted_server_resumes_the_session_and_replays_the_results(tmp_path):
    spool = tmp_path / "spool"

    async def scenario():
        async with running_server(FakeEngine(), spool_dir=spool) as server:
            client_id = await leave_unread(server, server.engine, ("r1", "r2"), steps=2, seed=7, batch=2)
            assert len(entries(spool)) == 2
        async with running_server(FakeEngine(), spool_dir=spool) as server:
            reference = await live_delivery(server, "r1", steps=2, seed=7, batch=2)
            async with TestClient.connect(server.url, client_id=client_id) as back:
                assert back.hello.resumed is True and back.hello.client_id == client_id
                first, second = await back.finish("r1"), await back.finish("r2")
                assert first.kinds == second.kinds == ["done"]  # only what it missed: frames, then done
                assert first.results == reference.results and len(first.results) == 2  # headers and bytes
                assert (first.final.results, first.final.seeds) == (2, (7, 8)) == (
                    reference.final.results, reference.final.seeds)
                await back.send(QueryQueue())
                assert (await back.next_other()).jobs == ()  # the done went out: the entries go
            assert entries(spool) == []
            async with TestClient.connect(server.url, client_id=client_id) as third:  # delivered once
                await third.send(QueryQueue())
                await third.next_other()
                assert third.traces == {}

    run(scenario())


def test_spool_entries_are_private(tmp_path):
    spool = tmp_path / "spool"

    async def scenario():
        async with running_server(FakeEngine(), spool_dir=spool) as server:
            await leave_unread(server, server.engine, ("p1",), steps=1)

    run(scenario())
    (folder,) = entries(spool)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert {f.name for f in files} == {"entry.json", "0.frame"}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_a_delivered_job_leaves_nothing_in_the_spool(tmp_path):
    spool = tmp_path / "spool"

    async def scenario():
        async with running_server(FakeEngine(), spool_dir=spool) as server:
            async with TestClient.connect(server.url) as client:
                await client.send(submit(job("seen", steps=1)))
                assert (await client.finish("seen")).kinds[-1] == "done"
                await client.send(QueryQueue())  # answered after the done was sent, so after its cleanup
                await client.next_other()
            assert entries(spool) == []

    run(scenario())


def test_unreadable_entries_are_dropped_and_the_server_serves_on(tmp_path, caplog):
    spool = tmp_path / "spool"

    async def scenario():
        async with running_server(FakeEngine(), spool_dir=spool) as server:
            client_id = await leave_unread(server, server.engine, ("kept",), steps=1)
        garbage = spool / entry_name("someone", "broken")
        garbage.mkdir()
        (garbage / "entry.json").write_bytes(b'{"format": 1, "client_id": "someone", "seq": ')  # cut short
        half = spool / ".tmp-half-written"
        half.mkdir()
        with caplog.at_level(logging.WARNING, logger="latentbrush.backend.spool"):
            async with running_server(FakeEngine(), spool_dir=spool) as server:
                assert not garbage.exists() and not half.exists()
                async with TestClient.connect(server.url, client_id=client_id) as back:
                    assert back.hello.resumed is True
                    assert (await back.finish("kept")).kinds == ["done"]
                    await back.send(submit(job("fresh", steps=1)))
                    assert (await back.finish("fresh")).kinds[-1] == "done"
                async with TestClient.connect(server.url, client_id="someone") as stranger:
                    assert stranger.hello.resumed is False
        assert "unreadable entry" in caplog.text

    run(scenario())


def test_loaded_results_over_the_retention_budget_expire_oldest_first(tmp_path):
    spool = tmp_path / "spool"

    async def scenario():
        async with running_server(FakeEngine(), spool_dir=spool) as server:
            client_id = await leave_unread(server, server.engine, ("old", "new"), steps=1)
        one_result = max(len(f.read_bytes()) for f in spool.glob("*/0.frame"))
        async with (
            running_server(FakeEngine(), spool_dir=spool, retention_bytes=one_result) as server,
            TestClient.connect(server.url, client_id=client_id) as back,
        ):
            assert back.hello.resumed is True
            old, new = await back.finish("old"), await back.finish("new")
            assert old.results == [] and (old.final.code, old.final.job_id) == ("expired", "old")
            assert new.kinds == ["done"] and len(new.results) == 1

    run(scenario())


def test_entry_round_trip_and_refusals():
    from latentbrush.backend.spool import SpoolEntry

    request = job("j1", steps=3, prompt="a fox")
    entry = SpoolEntry("client-1", 4, request, Done("j1", 1, (9,), {"model": "m"}), {0: b"\x00frame"})
    assert decode_meta(encode_meta(entry)) == ("client-1", 4, request, entry.final, [0])
    for bad in (b"", b"[]", b'{"format": 2}', encode_meta(entry).replace(b'"client-1"', b'"../x"'),
                encode_meta(SpoolEntry("client-1", 4, request, Done("other", 1), {}))):
        with pytest.raises(SpoolError):
            decode_meta(bad)


def test_a_result_stuck_on_a_connection_that_breaks_is_spooled(tmp_path):
    """The client stops reading; its 16 MiB raw result cannot go out; the socket breaks: then it is spooled."""
    spool = tmp_path / "spool"
    big = {"size": 2048, "steps": 1, "seed": 3, "result_format": "rgba8", "preview_format": "none"}
    limits = {"max_frame_bytes": 64 * 1024 * 1024, "spool_dir": spool}

    async def scenario():
        async with running_server(FakeEngine(), **limits) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            async with TestClient.connect(server.url, sock=sock) as client:
                client_id = client.hello.client_id
                await client.send(submit(job("stuck", **big)))
                await client.wait_for("stuck", "started")
                await asyncio.wait_for(_ended(server, client_id, "stuck"), HANG_GUARD_S)
                assert entries(spool) == []  # it is on its way to a connected client
                client.ws.transport.abort()
            await asyncio.wait_for(_spooled(spool), HANG_GUARD_S)  # the server notices, then spools what it held
        async with running_server(FakeEngine(), **limits) as server:
            reference = await live_delivery(server, "stuck", **big)
            async with TestClient.connect(server.url, client_id=client_id) as back:
                trace = await back.finish("stuck")
        assert trace.kinds == ["done"] and trace.results == reference.results
        assert len(trace.results[0][1]) == 2048 * 2048 * 4

    run(scenario())


def test_a_result_sent_while_the_job_ran_is_not_replayed_after_a_restart(tmp_path):
    spool = tmp_path / "spool"

    async def scenario():
        engine = FakeEngine(item_by_item=True)
        engine.lockstep()  # the second batch item waits for advance()
        async with running_server(engine, spool_dir=spool) as server:
            async with TestClient.connect(server.url) as client:
                client_id = client.hello.client_id
                await client.send(submit(job("b", steps=1, batch=2)))
                await client.wait_until(lambda: "b" in client.traces and len(client.traces["b"].results) == 1)
            engine.advance()
            await asyncio.wait_for(_ended(server, client_id, "b"), HANG_GUARD_S)
        async with (
            running_server(FakeEngine(), spool_dir=spool) as server,
            TestClient.connect(server.url, client_id=client_id) as back,
        ):
            trace = await back.finish("b")
            assert [h.index for h, _ in trace.results] == [1] and trace.final.results == 2

    run(scenario())


def test_a_frame_taken_by_a_connection_is_not_loaded_again(tmp_path):
    from latentbrush.backend.spool import Spool, SpoolEntry

    spool = Spool(tmp_path / "spool")
    entry = SpoolEntry("c", 1, job("j", batch=2), Done("j", 2), {0: b"zero", 1: b"one"})
    spool.save(entry)
    spool.drop_frame("c", "j", 0)
    (loaded,) = spool.load()
    assert loaded.frames == {1: b"one"} and loaded.request == entry.request
    spool.delete("c", "j")
    assert spool.load() == [] and list((tmp_path / "spool").iterdir()) == []


def test_an_unusable_spool_costs_only_the_restart_safety(tmp_path, caplog):
    not_a_folder = tmp_path / "spool"
    not_a_folder.write_text("in the way", encoding="utf-8")

    async def scenario():
        with caplog.at_level(logging.WARNING, logger="latentbrush.backend"):
            async with running_server(FakeEngine(), spool_dir=not_a_folder) as server:
                client_id = await leave_unread(server, server.engine, ("held",), steps=1)
                async with TestClient.connect(server.url, client_id=client_id) as back:  # still held in memory
                    assert back.hello.resumed is True
                    assert (await back.finish("held")).kinds == ["done"]
                    await back.send(QueryQueue())
                    await back.next_other()
        assert "cannot keep job held on disk" in caplog.text and "spool" in caplog.text

    run(scenario())
