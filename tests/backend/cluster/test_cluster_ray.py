"""Jobs through the gateway's socket on a local Ray cluster: 2 CPU replicas of the built-in tiny model.

One Ray session (started in this process) and one deployment serve the whole module; each test
starts its own gateway in front of it. The replica-killing test runs last: Ray Serve replaces the
killed replica in the background.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from latentbrush.backend.cluster.artists import Artists
from latentbrush.backend.cluster.deploy import ReplicaPlan, connect, deploy
from latentbrush.backend.cluster.gateway import gateway
from latentbrush.backend.config import ServerConfig
from latentbrush.protocol import Cancel, Rect, Size
from server_harness import TOKEN, TestClient, job, submit

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'latentbrush[cluster]')")
pytest.importorskip("latentbrush.backend.engine", reason="the diffusion engine is not installed")

CONFIG = ServerConfig(host="127.0.0.1", port=0, device="cpu", hello_timeout_s=30.0)
SMALL = Size(64, 64)
ANA, BEN = "ana-token-0123456789abcdef", "ben-token-0123456789abcdef"


@pytest.fixture(scope="module")
def replicas() -> Iterator[Any]:
    import ray
    from ray import serve

    connect("local", num_cpus=2)
    try:
        yield deploy(CONFIG, ReplicaPlan(replicas=2, cpus=0.5))
    finally:
        serve.shutdown()
        ray.shutdown()


def quick(job_id: str, **fields: Any):
    return job(job_id, size=64, steps=fields.pop("steps", 3), seed=fields.pop("seed", 5), resolution=SMALL, **fields)


def test_jobs_run_side_by_side_on_two_replicas_with_previews(replicas):
    async def scenario():
        async with gateway(CONFIG, replicas, TOKEN, concurrency=2) as server, \
                TestClient.connect(server.url) as client:
            assert "Ray Serve" in client.hello.device and client.hello.default_model == "tiny"
            requests = [quick(f"j{i}", steps=4, preview_format="jpeg", region=Rect(8, 8, 48, 48)) for i in range(4)]
            batch = quick("batch", batch=2, preview_format="none")
            for request in (*requests, batch):
                await client.send(submit(request))
            return [await client.finish(r.id) for r in requests], await client.finish("batch")

    traces, batch = asyncio.run(scenario())
    assert batch.kinds[-1] == "done" and [h.index for h, _ in batch.results] == [0, 1]
    assert batch.final.seeds == (5, 6) and batch.previews == []  # each item's result streamed as it was done
    for trace in traces:
        assert trace.kinds[-1] == "done", trace.final
        assert [h.step for h, _ in trace.previews] == [1, 2, 3, 4]
        ((header, _),) = trace.results
        assert header.rect == Rect(8, 8, 48, 48) and trace.final.seeds == (5,)
    assert {trace.results[0][1] for trace in traces} == {traces[0].results[0][1]}  # same seed, same picture anywhere
    assert len({trace.final.info["replica"] for trace in traces}) == 2  # both replicas took jobs


def test_cancel_reaches_the_replica(replicas):
    async def scenario():
        async with gateway(CONFIG, replicas, TOKEN, concurrency=2) as server, \
                TestClient.connect(server.url) as client:
            await client.send(submit(quick("long", steps=150)))
            await client.wait_for("long", "progress")
            await client.send(Cancel("long"))
            trace = await client.finish("long")
            assert trace.kinds[-1] == "cancelled" and trace.results == []
            assert [m.step for m in trace.messages if type(m).TYPE == "progress"][-1] < 150
            for name in ("after-1", "after-2"):  # both replicas free again: the cancelled one stopped its job
                await client.send(submit(quick(name)))
            assert [(await client.finish(n)).kinds[-1] for n in ("after-1", "after-2")] == ["done", "done"]

    asyncio.run(scenario())


def test_two_artists_alternate_across_the_cluster(replicas, tmp_path):
    path = tmp_path / "artists.txt"
    path.write_text(f"ana {ANA}\nben {BEN}\n", encoding="utf-8")

    async def scenario():
        async with gateway(CONFIG, replicas, TOKEN, concurrency=2, tenants=Artists(path)) as server, \
                TestClient.connect(server.url, token=ANA) as ana, TestClient.connect(server.url, token=BEN) as ben:
            for blocker in ("a-block-1", "a-block-2"):  # ana fills both replicas
                await ana.send(submit(quick(blocker, steps=150)))
                await ana.wait_for(blocker, "started")
            for name in ("a2", "a3"):
                await ana.send(submit(quick(name)))
            await ana.wait_for("a3", "queued")
            for name in ("b0", "b1"):
                await ben.send(submit(quick(name)))
            await ben.wait_position("b1", 2)
            positions = {"a2": await ana.wait_position("a2", 1), "a3": await ana.wait_position("a3", 3),
                         "b0": await ben.wait_position("b0", 0)}
            assert {name: seen[-1] for name, seen in positions.items()} == {"b0": 0, "a2": 1, "a3": 3}
            for blocker in ("a-block-1", "a-block-2"):
                await ana.send(Cancel(blocker))
            finals = [(await ana.finish(n)).kinds[-1] for n in ("a-block-1", "a-block-2", "a2", "a3")]
            finals += [(await ben.finish(n)).kinds[-1] for n in ("b0", "b1")]
            assert finals == ["cancelled", "cancelled", "done", "done", "done", "done"]

    asyncio.run(scenario())


def test_a_restarted_gateway_still_delivers_a_finished_result(replicas, tmp_path):
    """The gateway with a spool: a result nobody collected survives the gateway's restart (SPEC.md 11)."""
    config = replace(CONFIG, spool_dir=tmp_path / "spool")

    async def scenario():
        async with gateway(config, replicas, TOKEN, concurrency=2) as server:
            async with TestClient.connect(server.url) as client:
                client_id = client.hello.client_id
                await client.send(submit(quick("kept", seed=11)))
                await client.wait_for("kept", "started")
            while server.job_state(client_id, "kept") != "done":  # finishes with nobody connected
                await asyncio.sleep(0.05)
        async with gateway(config, replicas, TOKEN, concurrency=2) as server:
            async with TestClient.connect(server.url) as other:  # what a connected client gets for that job
                await other.send(submit(quick("kept", seed=11)))
                reference = await other.finish("kept")
            async with TestClient.connect(server.url, client_id=client_id) as back:
                assert back.hello.resumed is True
                return await back.finish("kept"), reference

    trace, reference = asyncio.run(scenario())
    assert trace.kinds == ["done"] and trace.final.seeds == (11,)
    assert trace.results == reference.results and len(trace.results) == 1  # the same frame, byte for byte


def test_a_replica_killed_mid_job_costs_one_retry_on_another(replicas):
    async def scenario():
        async with gateway(CONFIG, replicas, TOKEN, concurrency=2) as server, \
                TestClient.connect(server.url) as client:
            await client.send(submit(quick("victim", steps=40, seed=3)))
            await client.wait_for("victim", "progress")
            running_on = server.engine.replica_of("victim")  # the gateway's ClusterEngine knows where
            assert running_on is not None
            os.kill(running_on.pid, signal.SIGKILL)  # the replica's process dies mid-job
            trace = await client.finish("victim")
            assert trace.kinds[-1] == "done", trace.final
            assert trace.final.info["replica"] != running_on.replica and trace.final.seeds == (3,)
            assert len(trace.results) == 1
            assert trace.kinds.count("started") == 1  # the client saw one job, not two

    asyncio.run(scenario())
