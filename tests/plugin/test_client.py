"""The protocol client against a scriptable in-process server (plugin_fake_server.py)."""

from __future__ import annotations

import asyncio

import pytest
from latentbrush.plugin.core import events as ev
from latentbrush.plugin.core.client import Blob, Client, ConnectError, ReconnectPolicy, RequestRefused
from latentbrush.protocol import JobRequest, Rect, Size
from plugin_fake_server import FakeServer, result_color, solid, wait_for

FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)


def run(test, **server_options):
    """Run ``test(server)`` on a fresh loop with a started fake server."""

    async def main():
        server = FakeServer(**server_options)
        await server.start()
        try:
            return await asyncio.wait_for(test(server), 60)
        finally:
            await server.stop()

    return asyncio.run(main())


def job(job_id: str, **fields) -> JobRequest:
    base = {"id": job_id, "op": "txt2img", "canvas": Size(64, 64), "region": Rect(0, 0, 32, 16),
            "preview_format": "rgba8", "result_format": "rgba8", "seed": 5}
    base.update(fields)
    return JobRequest(**base)


class Recorder:
    def __init__(self, client: Client) -> None:
        self.events: list[ev.ClientEvent] = []
        client.add_listener(self.events.append)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def final(self, job_id: str):
        found = [e for e in self.events if isinstance(e, ev.FINAL_EVENTS) and e.job_id == job_id]
        return found[0] if found else None


def test_handshake_assigns_client_id_and_lists_models():
    async def test(server):
        client = Client(server.url, token=server.token)
        hello = await client.connect()
        models = await client.query_models()
        await client.close()
        assert hello.client_id and client.client_id == hello.client_id
        assert [m.name for m in models.models] == ["fake"]
        assert server.hellos[0].client_id is None  # a fresh client does not claim a session
        assert client.state is ev.ConnectionState.CLOSED

    run(test)


def test_wrong_token_is_a_fatal_connect_error():
    async def test(server):
        client = Client(server.url, token="not-the-token")
        with pytest.raises(ConnectError) as info:
            await client.connect()
        assert info.value.fatal and "unauthorized" in str(info.value)
        assert client.state is ev.ConnectionState.FAILED

    run(test)


def test_unreachable_server_is_a_connect_error():
    async def test(server):
        url = server.url
        await server.stop()
        with pytest.raises(ConnectError) as info:
            await Client(url, token="x", open_timeout=2).connect()
        assert not info.value.fatal and url in str(info.value)

    run(test)


def test_upload_skips_blobs_the_server_has():
    async def test(server):
        client = Client(server.url, token=server.token)
        await client.connect()
        image = Blob(solid("rgba8", 8, 4, (1, 2, 3)), "rgba8", 8, 4)
        mask = Blob(b"\xff" * 32, "gray8", 8, 4)
        first = await client.upload([image, mask])
        second = await client.upload([image])
        await client.close()
        assert first == [image.hash, mask.hash] and second == [image.hash]
        assert server.uploads == 2
        assert (client.stats.blobs_uploaded, client.stats.blobs_skipped) == (2, 1)

    run(test)


def test_job_events_arrive_in_order_with_payloads():
    async def test(server):
        client = Client(server.url, token=server.token)
        rec = Recorder(client)
        await client.connect()
        position = await client.submit(job("j1", batch=2))
        await wait_for(lambda: rec.final("j1"), "job end")
        await client.close()
        kinds = [type(e).__name__ for e in rec.events if getattr(e, "job_id", None) == "j1"]
        assert position == 0
        steps = ["JobProgress", "JobPreview"] * 3
        assert kinds == ["JobQueued", "JobStarted", *steps, "JobResult", "JobResult", "JobDone"]
        results = rec.of(ev.JobResult)
        assert [r.header.seed for r in results] == [5, 6]
        assert results[1].payload[:4] == bytes((*result_color(1, 6), 255))
        assert len(results[0].payload) == 32 * 16 * 4
        assert rec.final("j1").seeds == (5, 6)
        assert client.active_jobs == {}

    run(test, steps=3)


def test_refused_submit_raises_with_the_field():
    async def test(server):
        client = Client(server.url, token=server.token)
        rec = Recorder(client)
        await client.connect()
        with pytest.raises(RequestRefused) as info:
            await client.submit(job("j2", model="no-such-model"))
        queue = await client.query_queue()  # the connection still works
        await client.close()
        assert info.value.error.field == "job.model" and info.value.error.code == "unknown_model"
        assert info.value.error.job_id == "j2"
        assert not rec.of(ev.JobFailed)  # reported once, to the caller
        assert queue.jobs == () and client.active_jobs == {}

    run(test)


def test_dropped_connection_resumes_and_delivers_the_result():
    async def test(server):
        server.gated = True
        client = Client(server.url, token=server.token, reconnect=FAST)
        rec = Recorder(client)
        await client.connect()
        first_id = client.client_id
        await client.submit(job("j3"))
        await wait_for(lambda: rec.of(ev.JobStarted), "job start")
        await server.drop_connections()
        server.gate.set()  # the job runs on while the client is away
        await wait_for(lambda: rec.final("j3"), "job end after reconnect")
        await client.close()
        states = [e.state for e in rec.of(ev.ConnectionChanged)]
        assert ev.ConnectionState.RECONNECTING in states
        reconnected = [e for e in rec.of(ev.ConnectionChanged) if e.state is ev.ConnectionState.CONNECTED and e.attempt]
        assert reconnected and reconnected[0].resumed
        assert server.hellos[-1].client_id == first_id
        assert isinstance(rec.final("j3"), ev.JobDone)
        assert len([r for r in rec.of(ev.JobResult) if r.job_id == "j3"]) == 1
        assert client.stats.reconnects == 1

    run(test, steps=4)


def test_server_restart_reports_the_lost_job():
    async def test(server):
        server.gated = True
        client = Client(server.url, token=server.token, reconnect=FAST)
        rec = Recorder(client)
        await client.connect()
        await client.submit(job("j4"))
        await wait_for(lambda: rec.of(ev.JobStarted), "job start")
        await server.restart()
        await wait_for(lambda: rec.final("j4"), "lost job reported")
        # the client works again on the new server
        await client.submit(job("j5"))
        server.gate.set()
        await wait_for(lambda: rec.final("j5"), "second job")
        await client.close()
        lost = rec.final("j4")
        assert isinstance(lost, ev.JobFailed) and lost.code == ev.LOST_JOB and "submit it again" in lost.message
        assert isinstance(rec.final("j5"), ev.JobDone)

    run(test)


def test_cancel_mid_job():
    async def test(server):
        server.gated = True
        client = Client(server.url, token=server.token)
        rec = Recorder(client)
        await client.connect()
        await client.submit(job("j6"))
        await wait_for(lambda: rec.of(ev.JobStarted), "job start")
        await client.cancel("j6")
        session = server.sessions[client.client_id]
        await wait_for(lambda: session.state("j6") == "cancelling", "cancel received")
        server.gate.set()
        await wait_for(lambda: rec.final("j6"), "cancel")
        await client.close()
        assert isinstance(rec.final("j6"), ev.JobCancelled)
        assert not rec.of(ev.JobResult)

    run(test)


def test_broken_listener_is_reported_and_does_not_stop_the_client():
    async def test(server):
        client = Client(server.url, token=server.token)

        def broken(event):
            if isinstance(event, ev.JobStarted):
                raise RuntimeError("listener bug")

        client.add_listener(broken)
        rec = Recorder(client)
        await client.connect()
        await client.submit(job("j7"))
        await wait_for(lambda: rec.final("j7"), "job end")
        await client.close()
        failures = rec.of(ev.ClientFailure)
        assert len(failures) == 1 and "listener bug" in failures[0].message
        assert isinstance(rec.final("j7"), ev.JobDone)

    run(test)


def test_gives_up_after_max_attempts_and_fails_active_jobs():
    async def test(server):
        server.gated = True
        client = Client(server.url, token=server.token,
                        reconnect=ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3))
        rec = Recorder(client)
        await client.connect()
        await client.submit(job("j8"))
        await wait_for(lambda: rec.of(ev.JobStarted), "job start")
        await server.stop()
        await wait_for(lambda: client.state is ev.ConnectionState.FAILED, "give up")
        await client.close()
        lost = rec.final("j8")
        assert isinstance(lost, ev.JobFailed) and lost.code == ev.CONNECTION_LOST
        attempts = [e.attempt for e in rec.of(ev.ConnectionChanged) if e.state is ev.ConnectionState.RECONNECTING]
        assert max(attempts) == 3
        failed = [e for e in rec.of(ev.ConnectionChanged) if e.state is ev.ConnectionState.FAILED]
        assert failed[-1].max_attempts == 3

    run(test)


def test_backoff_doubles_up_to_the_cap_and_counts_down_in_ticks():
    policy = ReconnectPolicy(initial_delay=0.5, max_delay=4.0, factor=2.0, tick=1.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.countdown(1) == (0.5,)
    assert policy.countdown(3) == (2.0, 1.0)
    assert policy.countdown(4) == (4.0, 3.0, 2.0, 1.0)
    assert ReconnectPolicy(initial_delay=2.5, tick=1.0).countdown(1) == (2.5, 1.5, 0.5)
    assert ReconnectPolicy().max_attempts is not None  # the default gives up (then a Reconnect button)


def test_reconnecting_events_count_down_to_each_attempt():
    policy = ReconnectPolicy(initial_delay=0.03, max_delay=0.06, max_attempts=3, tick=0.01, job_grace=None)

    async def test(server):
        client = Client(server.url, token=server.token, reconnect=policy)
        rec = Recorder(client)
        await client.connect()
        await server.stop()
        await wait_for(lambda: client.state is ev.ConnectionState.FAILED, "give up")
        await client.close()
        waiting = [(e.attempt, e.retry_in) for e in rec.of(ev.ConnectionChanged)
                   if e.state is ev.ConnectionState.RECONNECTING]
        expected = [(n, left) for n in (1, 2, 3) for left in policy.countdown(n)]
        assert waiting == expected
        assert all(e.max_attempts == 3 for e in rec.of(ev.ConnectionChanged)
                   if e.state is ev.ConnectionState.RECONNECTING)

    run(test)


def test_a_job_ends_when_the_link_stays_down_past_the_grace_and_is_cancelled_once_back():
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.05, max_attempts=None, job_grace=0.01, tick=0.05)

    async def test(server):
        server.gated = True
        client = Client(server.url, token=server.token, reconnect=policy)
        rec = Recorder(client)
        await client.connect()
        await client.submit(job("g1"))
        await wait_for(lambda: rec.of(ev.JobStarted), "job start")
        # the grace timer (10 ms) is due before the first attempt (50 ms): the job ends while the link is down
        await server.drop_connections()
        await wait_for(lambda: rec.final("g1"), "the job given up")
        assert client.active_jobs == {}
        await wait_for(lambda: client.connected, "reconnect")
        session = server.sessions[client.client_id]
        await wait_for(lambda: session.state("g1") == "cancelling", "the server told to cancel")
        server.gate.set()
        await wait_for(lambda: session.state("g1") in (None, "cancelled"), "cancelled on the server")
        await client.close()
        lost = rec.final("g1")
        assert isinstance(lost, ev.JobFailed) and lost.code == ev.CONNECTION_LOST
        assert [e for e in rec.events if getattr(e, "job_id", None) == "g1"][-1] is lost  # nothing after

    run(test)


def test_cancel_while_disconnected_ends_the_job_at_once():
    policy = ReconnectPolicy(initial_delay=5.0, max_attempts=2, job_grace=None)

    async def test(server):
        server.gated = True
        client = Client(server.url, token=server.token, reconnect=policy)
        rec = Recorder(client)
        await client.connect()
        await client.submit(job("c1"))
        await wait_for(lambda: rec.of(ev.JobStarted), "job start")
        await server.drop_connections()
        await wait_for(lambda: client.state is ev.ConnectionState.RECONNECTING, "link down")
        await client.cancel("c1")  # no NotConnected: the job ends here
        assert isinstance(rec.final("c1"), ev.JobCancelled) and client.active_jobs == {}
        await client.close()

    run(test)


def test_a_server_of_another_major_version_is_refused_by_the_client():
    """The client checks the server hello's version (it used to accept any) and says what to do."""
    async def test(server):
        server.protocol = 2
        client = Client(server.url, token=server.token)
        with pytest.raises(ConnectError) as info:
            await client.connect()
        assert info.value.fatal and "version_mismatch" in str(info.value)
        assert "matching versions" in str(info.value)
        assert client.state is ev.ConnectionState.FAILED

    run(test)


def test_a_1_0_server_gets_1_0_messages():
    """Minor negotiation: image/mask inputs travel in the 1.0 fields and queries carry no request_id."""
    from latentbrush.protocol import JobInput

    async def test(server):
        server.minor = 0
        client = Client(server.url, token=server.token)
        await client.connect()
        assert client.minor == 0
        image = Blob(solid("rgba8", 32, 16, (9, 9, 9)), "rgba8", 32, 16)
        request = job("old", op="img2img", strength=0.5, inputs=(JobInput("image", image.hash),))
        recorder = Recorder(client)
        await client.submit(request, [image])
        await wait_for(lambda: recorder.final("old") is not None, "the job ends")
        await client.query_queue()
        await client.close()
        assert server.submitted[0].image == image.hash and server.submitted[0].inputs is None
        assert not any('"request_id"' in text for text in server.texts)
        assert isinstance(recorder.final("old"), ev.JobDone)

    run(test)


def test_a_1_1_server_gets_request_ids_and_named_inputs():
    from latentbrush.protocol import JobInput

    async def test(server):
        client = Client(server.url, token=server.token)
        await client.connect()
        assert client.minor == 1
        image = Blob(solid("rgba8", 32, 16, (9, 9, 9)), "rgba8", 32, 16)
        await client.submit(job("new", op="img2img", strength=0.5, inputs=(JobInput("image", image.hash),)), [image])
        await client.query_models()
        await client.close()
        assert server.submitted[0].inputs == (JobInput("image", image.hash),)
        queries = [text for text in server.texts if '"query_' in text]
        assert queries and all('"request_id"' in text for text in queries)

    run(test)


def test_a_role_a_1_0_server_cannot_carry_is_refused_before_sending():
    from latentbrush.protocol import JobInput

    async def test(server):
        server.minor = 0
        client = Client(server.url, token=server.token)
        await client.connect()
        control = Blob(solid("rgba8", 32, 16, (9, 9, 9)), "rgba8", 32, 16)
        request = job("ctl", inputs=(JobInput("control", control.hash),))
        with pytest.raises(RequestRefused) as info:
            await client.submit(request, [control])
        await client.close()
        assert info.value.error.code == "not_supported" and "control" in info.value.error.message
        assert not server.submitted and client.active_jobs == {}

    run(test)


def test_a_bug_while_sending_is_not_reported_as_a_lost_connection(monkeypatch):
    """Only transport errors are connection losses; a programming error surfaces as itself."""

    async def broken_send(data):
        raise TypeError("a bug on the way to the socket")

    async def test(server):
        client = Client(server.url, token=server.token)
        await client.connect()
        monkeypatch.setattr(client._ws, "send", broken_send)
        with pytest.raises(TypeError):
            await client.query_models()
        await client.close()

    run(test)
