"""SDXL base + refiner (SPEC.md 9.13) through a real ``latentbrush-server`` process and its socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from helpers.live_server import LiveServer, live_server
from latentbrush.protocol import Size
from server_harness import TestClient, job, submit

pytest.importorskip("latentbrush.backend.engine", reason="the diffusion engine is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("refiner-server")
    with live_server(tmp, "--device", "cpu", env={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}) as live:
        yield live


def test_a_refined_job_through_the_socket(server: LiveServer) -> None:
    async def scenario():
        async with TestClient.connect(server.url, token=server.token) as client:
            bases = {m.name: m.base for m in client.hello.models}
            assert bases["tiny-sdxl"] == "tiny-sdxl" and bases["tiny-sdxl-refiner"] == "tiny-sdxl-refiner"
            common = {"size": 64, "steps": 4, "seed": 3, "resolution": Size(64, 64), "model": "tiny-sdxl",
                      "preview_format": "jpeg"}
            await client.send(submit(job("refined", refiner="tiny-sdxl-refiner", refiner_at=0.5, **common)))
            refined = await client.finish("refined")
            await client.send(submit(job("refused", model="tiny", refiner="tiny-sdxl-refiner", size=64)))
            refused = await client.finish("refused")
            return refined, refused

    refined, refused = asyncio.run(scenario())
    assert refined.kinds[-1] == "done", refined.final
    started = next(m for m in refined.messages if type(m).TYPE == "started")
    assert started.total == 4  # both stages' steps
    assert [m.step for m in refined.messages if type(m).TYPE == "progress"] == [1, 2, 3, 4]
    assert [h.step for h, _ in refined.previews] == [1, 2, 3, 4]
    assert refined.final.info["refiner"] == {"model": "tiny-sdxl-refiner", "at": 0.5, "handoff_step": 2, "steps": 2}
    assert refused.kinds[-1] == "error"
    assert (refused.final.code, refused.final.field) == ("not_supported", "job.refiner")
