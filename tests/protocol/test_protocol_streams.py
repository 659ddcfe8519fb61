"""Live streams in the protocol package (SPEC.md 9.11, 14): the field, the reason, the 1.0 form."""

from __future__ import annotations

from latentbrush.protocol import (
    CANCEL_SUPERSEDED,
    Cancelled,
    ClientHello,
    JobRequest,
    JobStatus,
    Rect,
    ServerHello,
    Size,
    as_v1_0,
    decode_client_message,
    decode_server_message,
    encode_message,
    from_dict,
    to_dict,
)
from latentbrush.protocol import events as ev
from latentbrush.protocol.client_connection import ClientConnection
from latentbrush.protocol.lifecycle import CANCELLED
from latentbrush.protocol.messages import Limits, Submit


def live_job(job_id: str = "j1", stream: str | None = "live-doc") -> JobRequest:
    return JobRequest(id=job_id, op="txt2img", canvas=Size(64, 64), region=Rect(0, 0, 64, 64), stream=stream)


def test_stream_round_trips_and_is_left_out_when_absent():
    assert to_dict(live_job())["stream"] == "live-doc"
    assert "stream" not in to_dict(live_job(stream=None))
    decoded = decode_client_message(encode_message(Submit(live_job())))
    assert isinstance(decoded, Submit) and decoded.job.stream == "live-doc"


def test_a_1_0_server_gets_the_job_without_its_stream():
    legacy = as_v1_0(live_job())
    assert isinstance(legacy, JobRequest) and legacy.stream is None and "stream" not in to_dict(legacy)
    assert from_dict(JobRequest, to_dict(legacy)) == legacy


def test_a_superseded_job_ends_cancelled_with_its_reason():
    message = decode_server_message('{"type":"cancelled","job_id":"j1","reason":"superseded"}')
    assert message == Cancelled("j1", CANCEL_SUPERSEDED)
    status = JobStatus("j1").advance("queued", position=0)
    assert isinstance(status, JobStatus)
    after = status.apply(message)
    assert isinstance(after, JobStatus) and after.state == CANCELLED
    assert "reason" not in to_dict(Cancelled("j1"))  # absent means the client cancelled


def hello(minor: int) -> str:
    limits = Limits(max_frame_bytes=1 << 20, max_pixels=1 << 20, max_queue=4, max_batch=1, max_steps=50)
    return encode_message(ServerHello(protocol=1, minor=minor, server="s", client_id="c1", resumed=False,
                                      device="cpu", dtype="float32", models=(), upscalers=(), samplers=(),
                                      limits=limits))


def test_the_client_connection_reports_the_reason_and_sends_a_1_0_server_no_stream():
    for minor, sent_stream in ((1, "live-doc"), (0, None)):
        conn = ClientConnection(ClientHello(protocol=1, client="t", minor=1))
        conn.start()
        conn.receive_text(hello(minor))
        made = conn.submit(live_job())
        assert not isinstance(made, Exception)
        submitted = decode_client_message(made[1])
        assert isinstance(submitted, Submit) and submitted.job.stream == sent_stream
        conn.receive_text('{"type":"queued","job_id":"j1","position":0}')
        events = conn.receive_text('{"type":"cancelled","job_id":"j1","reason":"superseded"}')
        assert events == [ev.JobCancelled("j1", CANCEL_SUPERSEDED)]
        assert "j1" not in conn.book
