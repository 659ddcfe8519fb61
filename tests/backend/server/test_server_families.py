"""SD3 and Flux end to end through a ``latentbrush-server`` process and its WebSocket: the built-in ``tiny-sd3`` and
``tiny-flux`` run every operation with step previews, the hello lists the samplers that fit them, and a sampler
that does not fit is ``bad_field`` on ``job.sampler``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from helpers.live_server import LiveServer, live_server
from latentbrush.protocol import Rect, Size
from server_harness import TestClient, circle_mask, job, pattern, submit

pytest.importorskip("latentbrush.backend.engine", reason="the diffusion engine is not installed")

SIDE = 64
COMMON = {"size": SIDE, "steps": 2, "seed": 5, "resolution": Size(SIDE, SIDE), "strength": 1.0,
          "preview_format": "jpeg", "region": Rect(0, 0, SIDE, SIDE)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    with live_server(tmp_path_factory.mktemp("family-server"), "--device", "cpu", env=env) as live:
        yield live


async def run_all(server: LiveServer) -> tuple[dict, object]:
    async with TestClient.connect(server.url, token=server.token) as client:
        image = await client.upload_rgba(pattern(SIDE, SIDE, seed=2), "png")
        mask = await client.upload_rgba(circle_mask(SIDE, SIDE), "gray8")
        requests = []
        for model in ("tiny-sd3", "tiny-flux"):
            requests += [
                job(f"{model}-txt2img", "txt2img", model=model, **COMMON),
                job(f"{model}-img2img", "img2img", model=model, image=image, **COMMON),
                job(f"{model}-inpaint", "inpaint", model=model, image=image, mask=mask, **COMMON),
            ]
        requests.append(job("misfit", "txt2img", model="tiny-flux", sampler="DPM++ 2M Karras", **COMMON))
        for request in requests:
            await client.send(submit(request))
        return {r.id: await client.finish(r.id) for r in requests}, client.hello


def test_sd3_and_flux_over_the_socket(server: LiveServer) -> None:
    traces, hello = asyncio.run(run_all(server))
    models = {m.name: m for m in hello.models}
    assert models["tiny-sd3"].samplers == ("Euler a", "Euler", "Heun")
    assert models["tiny-flux"].samplers == ("Euler a", "Euler")
    for model in ("tiny-sd3", "tiny-flux"):
        for op in ("txt2img", "img2img", "inpaint"):
            trace = traces[f"{model}-{op}"]
            assert trace.kinds[-1] == "done", (model, op, trace.final)
            assert [header.step for header, _ in trace.previews] == [1, 2]
            ((header, _payload),) = trace.results
            assert (header.width, header.height) == (SIDE, SIDE)
    misfit = traces["misfit"].final
    assert misfit.TYPE == "error" and misfit.code == "bad_field" and misfit.field == "job.sampler"
