"""Per-artist tokens and the studio queue in the real server, through the socket (the fake engine, no Ray)."""

from __future__ import annotations

import asyncio

import pytest
from latentbrush.backend.cluster.artists import Artists
from latentbrush.backend.server import LatentbrushServer
from server_fakes import FakeEngine
from server_harness import TOKEN, TestClient, job, submit, test_config
from websockets.exceptions import InvalidStatus

ANA, BEN = "ana-token-0123456789abcdef", "ben-token-0123456789abcdef"


@pytest.fixture
def artists_file(tmp_path):
    path = tmp_path / "artists.txt"
    path.write_text(f"ana {ANA}\nben {BEN}\n", encoding="utf-8")
    return path


def studio(engine: FakeEngine, artists: Artists) -> LatentbrushServer:
    return LatentbrushServer(test_config(), lambda: engine, TOKEN, tenants=artists)


async def wait_running(engine: FakeEngine) -> None:
    while not engine.running.is_set():  # the first job waits at the fake engine's gate
        await asyncio.sleep(0.01)


def test_two_artists_alternate_and_live_jobs_go_first(artists_file):
    engine = FakeEngine()
    engine.hold()

    async def scenario():
        async with studio(engine, Artists(artists_file)) as server, \
                TestClient.connect(server.url, token=ANA) as ana, TestClient.connect(server.url, token=BEN) as ben:
            await ana.send(submit(job("a0")))
            await wait_running(engine)
            for name in ("a1", "a2", "a3"):
                await ana.send(submit(job(name)))
            await ana.wait_for("a3", "queued")
            for name in ("b0", "b1"):
                await ben.send(submit(job(name)))
            await ben.send(submit(job("b-live", stream="canvas")))
            await ben.wait_for("b-live", "queued")
            engine.release()
            for name in ("a1", "a2", "a3"):
                assert (await ana.finish(name)).kinds[-1] == "done"
            for name in ("b0", "b1", "b-live"):
                assert (await ben.finish(name)).kinds[-1] == "done"

    asyncio.run(scenario())
    assert engine.runs == ["a0", "b-live", "a1", "b0", "a2", "b1", "a3"]


def test_the_cap_counts_all_of_an_artists_connections(artists_file):
    engine = FakeEngine()
    engine.hold()

    async def scenario():
        async with studio(engine, Artists(artists_file, max_queue=2)) as server, \
                TestClient.connect(server.url, token=ANA) as one, TestClient.connect(server.url, token=ANA) as two, \
                TestClient.connect(server.url, token=BEN) as ben:
            await one.send(submit(job("a0")))
            await one.send(submit(job("a1")))
            await one.wait_for("a1", "queued")
            await two.send(submit(job("a2")))
            refused = await two.wait_for("a2", "error")
            assert refused.code == "queue_full" and "ana has 2 unfinished jobs" in refused.message
            await ben.send(submit(job("b0")))  # another artist is not held back by ana's cap
            await ben.wait_for("b0", "queued")
            engine.release()
            assert (await ben.finish("b0")).kinds[-1] == "done"
            assert [(await one.finish(name)).kinds[-1] for name in ("a0", "a1")] == ["done", "done"]

    asyncio.run(scenario())


def test_editing_the_file_revokes_a_token_for_new_connections(artists_file):
    async def scenario():
        async with studio(FakeEngine(), Artists(artists_file)) as server:
            async with TestClient.connect(server.url, token=BEN) as ben:
                assert type(ben.hello).TYPE == "hello"
            async with TestClient.connect(server.url, token=TOKEN) as other:  # the gateway's own token is no artist's
                assert type(other.hello).TYPE == "error" and other.hello.code == "unauthorized"
            artists_file.write_text(f"ana {ANA}\n# ben left\n", encoding="utf-8")
            async with TestClient.connect(server.url, token=BEN) as ben:
                assert type(ben.hello).TYPE == "error" and ben.hello.code == "unauthorized"
            with pytest.raises(InvalidStatus) as refused:
                async with TestClient.connect(server.url, hello=False,
                                              additional_headers={"Authorization": f"Bearer {BEN}"}):
                    pass
            assert refused.value.response.status_code == 401
            async with TestClient.connect(server.url, token="",
                                          additional_headers={"Authorization": f"Bearer {ANA}"}) as ana:
                assert type(ana.hello).TYPE == "hello"
                await ana.send(submit(job("a0")))
                assert (await ana.finish("a0")).kinds[-1] == "done"

    asyncio.run(scenario())
