"""Live streams through the client core: the newest job of a stream wins (SPEC.md 9.11), on 1.1 and 1.0 servers."""

from __future__ import annotations

import numpy as np
import pytest
from latentbrush.plugin.core.controller import Controller
from latentbrush.plugin.core.planning import plan_whole_canvas
from latentbrush.plugin.core.requests import GenerationSettings, RequestError, build_request
from latentbrush.plugin.hosts.headless import HeadlessHost
from latentbrush.protocol.geometry import Size
from PIL import Image
from plugin_fake_server import result_color, wait_for
from test_controller import run  # a fake server and a connected client


def canvas_image(width=64, height=48) -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")


async def supersede_once(server, client, host, stream="live-doc1"):
    """A running live job, then a newer one of the same stream; returns both final records."""
    server.gated = True
    controller = Controller(host, client)
    first = await controller.submit(GenerationSettings(prompt="v1", seed=1, strength=0.5), "img2img", stream=stream)
    await wait_for(lambda: controller.history.get(first.job_id).state == "started", "the first job runs")
    second = await controller.submit(GenerationSettings(prompt="v2", seed=2, strength=0.5), "img2img", stream=stream)
    session = server.sessions[client.client_id]
    await wait_for(lambda: session.state(first.job_id) == "cancelling", "the first job told to stop")
    server.gate.set()
    return await controller.wait(first.job_id), await controller.wait(second.job_id)


@pytest.mark.parametrize("minor", [1, 0])
def test_a_newer_job_of_the_stream_supersedes_the_running_one(minor):
    host = HeadlessHost(canvas_image())

    async def test(server, client):
        first, second = await supersede_once(server, client, host)
        return first, second, list(server.submitted)

    first, second, submitted = run(test, minor=minor)
    assert (first.state, first.error, first.error_code) == ("cancelled", None, None)
    assert second.state == "done", second.error
    # a 1.1 server does the superseding; to a 1.0 one the job goes without a stream and the client cancels
    assert [job.stream for job in submitted] == (["live-doc1"] * 2 if minor else [None, None])
    [layer] = host.layers  # only the newest job's result
    assert layer.image.getpixel((0, 0)) == (*result_color(0, 2), 255)
    assert not host.preview_visible
    assert not any(s.text == "Cancelled" for s in host.statuses)  # the newer job reports, not the superseded one


def test_jobs_without_a_stream_or_of_another_stream_run_side_by_side():
    host = HeadlessHost(canvas_image())

    async def test(server, client):
        server.gated = True
        controller = Controller(host, client)
        settings = GenerationSettings(prompt="x", seed=4, strength=0.5)
        records = [await controller.submit(settings, "img2img"), await controller.submit(settings, "img2img"),
                   await controller.submit(settings, "img2img", stream="a"),
                   await controller.submit(settings, "img2img", stream="b")]
        server.gate.set()
        return [await controller.wait(r.job_id) for r in records]

    records = run(test)
    assert [r.state for r in records] == ["done"] * 4
    assert len(host.layers) == 4


def test_a_painters_cancel_of_a_live_job_still_says_cancelled():
    host = HeadlessHost(canvas_image())

    async def test(server, client):
        server.gated = True
        controller = Controller(host, client)
        record = await controller.submit(GenerationSettings(prompt="x", strength=0.5), "img2img", stream="live")
        await wait_for(lambda: controller.history.get(record.job_id).state == "started", "start")
        await controller.cancel(record.job_id)
        session = server.sessions[client.client_id]
        await wait_for(lambda: session.state(record.job_id) == "cancelling", "cancel received")
        server.gate.set()
        return await controller.wait(record.job_id)

    record = run(test)
    assert record.state == "cancelled" and host.statuses[-1].text == "Cancelled"


def test_build_request_carries_the_stream_and_checks_its_id():
    plan = plan_whole_canvas(Size(64, 64))
    settings = GenerationSettings(prompt="x")
    assert build_request("txt2img", plan, settings, job_id="j1").stream is None
    assert build_request("txt2img", plan, settings, job_id="j1", stream="live-7").stream == "live-7"
    with pytest.raises(RequestError) as refused:
        build_request("txt2img", plan, settings, job_id="j1", stream="live 7")
    assert refused.value.error.field == "stream"
