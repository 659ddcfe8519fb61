"""The plugin core against the real backend process (built-in tiny model) over real sockets.

Connections are broken on purpose through a TCP proxy: cut (the server keeps the session, the
client resumes) or cut after a server restart (the new process never heard of the job).
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from helpers.live_server import FAKE_ENGINE, live_server
from latentbrush.plugin.core import events as ev
from latentbrush.plugin.core.client import Client, ReconnectPolicy
from latentbrush.plugin.core.controller import Controller
from latentbrush.plugin.core.messages import painter_message
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.plugin.hosts.headless import HeadlessHost
from latentbrush.protocol.geometry import pad
from PIL import Image, ImageDraw
from plugin_fake_server import wait_for
from plugin_tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
JOB_TIMEOUT_S = 300  # only stops a hung test; no test relies on timing


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("backend")) as server:
        yield server


def scene(width=192, height=160):
    """Random opaque pixels (any change shows) and an elliptic selection in the middle."""
    rng = np.random.default_rng(11)
    canvas = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    canvas.putalpha(255)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((80, 60, 110, 90), fill=255)
    return canvas, mask


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, JOB_TIMEOUT_S))


def test_inpaint_leaves_every_pixel_outside_the_mask_reach_untouched(backend):
    canvas, mask = scene()
    host = HeadlessHost(canvas, mask=mask)

    async def main():
        client = Client(backend.url, token=backend.token)
        await client.connect()
        try:
            return await Controller(host, client).run(GenerationSettings(prompt="moon", steps=4, seed=5), "inpaint")
        finally:
            await client.close()

    record = run(main())
    assert record.state == "done", record.error
    assert record.seeds == (5,) and record.info.get("model")
    assert host.preview_count >= 1 and not host.preview_visible
    [layer] = host.layers
    assert layer.bounds == record.plan.region
    before = np.array(canvas)
    after = np.array(host.composite())
    alpha = np.array(host.layer_on_canvas(layer))[..., 3]
    assert np.array_equal(after[alpha == 0], before[alpha == 0])  # bit for bit where the layer is clear
    reach = pad(record.plan.mask_bounds, record.plan.grow + record.plan.feather + 1)
    outside = np.ones(alpha.shape, bool)
    outside[max(0, reach.y) : reach.bottom, max(0, reach.x) : reach.right] = False
    assert outside.any() and not alpha[outside].any()  # the denoise mask ends within grow + feather
    assert alpha[75, 95] == 255  # the middle of the selection is repainted


def test_dropped_connection_resumes_and_the_result_arrives(backend):
    canvas, mask = scene()
    host = HeadlessHost(canvas, mask=mask)

    async def main():
        proxy = TcpProxy(backend.port)
        await proxy.start()
        client = Client(proxy.url, token=backend.token, reconnect=FAST)
        seen: list[ev.ClientEvent] = []
        client.add_listener(seen.append)
        client.add_listener(lambda e: proxy.cut() if isinstance(e, ev.JobStarted) and proxy.connections == 1 else None)
        await client.connect()
        try:
            record = await Controller(host, client).run(GenerationSettings(prompt="x", steps=12, seed=8), "inpaint")
        finally:
            await client.close()
            await proxy.stop()
        return record, seen, client

    record, seen, client = run(main())
    assert record.state == "done", record.error
    assert len(host.layers) == 1 and record.seeds == (8,)
    back = [e for e in seen if isinstance(e, ev.ConnectionChanged) and e.state is ev.ConnectionState.CONNECTED
            and e.attempt]
    assert len(back) == 1 and back[0].resumed  # the server kept the session
    assert client.stats.reconnects == 1


def test_server_restart_reports_the_lost_job_and_serves_the_next(tmp_path):
    """A new server process (same port behind the proxy, same token) knows nothing of the old session.

    Uses the backend tests' fast fake engine: what matters here is the server process, not diffusion.
    """
    canvas, mask = scene()

    async def main():
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(live_server(tmp_path, engine_factory=FAKE_ENGINE))
            proxy = TcpProxy(first.port)
            await proxy.start()
            proxy.freeze_after('"type":"started"')  # the client hears the job start, then nothing more
            client = Client(proxy.url, token=first.token, reconnect=FAST)
            seen: list[ev.ClientEvent] = []
            client.add_listener(seen.append)
            await client.connect()
            controller = Controller(HeadlessHost(canvas, mask=mask), client)
            record = await controller.submit(GenerationSettings(prompt="x", steps=3), "inpaint")
            await wait_for(lambda: proxy.frozen, "job start", JOB_TIMEOUT_S)
            await asyncio.to_thread(stack.close)  # the server process ends, and its session with it
            second = await asyncio.to_thread(
                stack.enter_context, live_server(tmp_path, engine_factory=FAKE_ENGINE)  # same token file
            )
            proxy.target_port = second.port
            proxy.cut()
            lost = await controller.wait(record.job_id)
            again = await controller.run(GenerationSettings(prompt="y", steps=2, seed=4), "inpaint")
            await client.close()
            await proxy.stop()
            return record, lost, again, seen

    record, lost, again, seen = run(main())
    assert any(isinstance(e, ev.JobStarted) and e.job_id == record.job_id for e in seen)
    assert not any(isinstance(e, ev.JobResult) and e.job_id == record.job_id for e in seen)
    assert lost.state == "error" and lost.error_code == ev.LOST_JOB
    assert lost.error == painter_message(ev.LOST_JOB, "inpaint")  # plain words; the detail is in the log
    back = [e for e in seen if isinstance(e, ev.ConnectionChanged) and e.state is ev.ConnectionState.CONNECTED
            and e.attempt]
    assert back and not back[-1].resumed
    assert again.state == "done" and again.seeds == (4,)


def test_superseded_connection_gives_up_instead_of_fighting(backend):
    async def main():
        first = Client(backend.url, token=backend.token, reconnect=FAST)
        await first.connect()
        second = Client(backend.url, token=backend.token, reconnect=FAST)
        second.client_id = first.client_id  # the same session, as a second copy of the plugin would claim
        hello = await second.connect()
        await wait_for(lambda: first.state is ev.ConnectionState.FAILED, "first connection closed", 60)
        models = await second.query_models()  # the new connection owns the session and works
        await second.close()
        await first.close()
        return first, hello, models

    first, hello, models = run(main())
    assert hello.resumed and hello.client_id == first.client_id
    assert first.stats.reconnects == 0 and models.models
