"""The sans-I/O connection objects (protocol/*connection.py): every rule without a socket."""

from __future__ import annotations

import json

import pytest
from latentbrush.protocol import (
    BlobHeader,
    BlobsAnswer,
    BlobStored,
    Cancelled,
    ClientHello,
    Error,
    JobInfo,
    JobInput,
    JobRequest,
    Limits,
    ModelsAnswer,
    PreviewHeader,
    Progress,
    QueryQueue,
    QueueAnswer,
    Queued,
    Rect,
    ResultHeader,
    ServerHello,
    Size,
    Started,
    Submit,
    blob_hash,
    decode_client_message,
    encode_frame,
    encode_message,
)
from latentbrush.protocol import events as ev
from latentbrush.protocol.client_connection import ClientConnection, JobBook
from latentbrush.protocol.connection import CLOSED, OPEN
from latentbrush.protocol.server_connection import BlobReceived, Close, HelloReceived, Request, Send, ServerConnection
from latentbrush.protocol.transport import CLOSE_NO_HELLO, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR

TOKEN = "the-token"
LIMITS = Limits(max_frame_bytes=1 << 20, max_pixels=1 << 20, max_queue=4, max_batch=4, max_steps=50)


def server(**options: object) -> ServerConnection:
    return ServerConnection(token_ok=lambda token: token == TOKEN, max_frame_bytes=1 << 20, **options)  # type: ignore[arg-type]


def server_hello(minor: int = 1, client_id: str = "c1", resumed: bool = False, protocol: int = 1) -> ServerHello:
    return ServerHello(protocol, minor, "test", client_id, resumed, "cpu", "float32", (), (), (), LIMITS)


def hello_text(**fields: object) -> str:
    return json.dumps({"type": "hello", "protocol": 1, "client": "t", "token": TOKEN, **fields})


def error_of(event: object) -> Error:
    text = event.text  # type: ignore[attr-defined]
    msg = json.loads(text)
    return Error(msg["code"], msg["message"], msg.get("field"), msg.get("job_id"), msg.get("request_id"))


# ----------------------------------------------------------------------------- server side


def test_everything_before_a_good_hello_gets_not_ready_and_stays_open() -> None:
    conn = server()
    for event in (conn.receive_blob(b"\x00\x00\x00\x01{"), conn.receive_text('{"type":"query_queue"}'),
                  conn.receive_text("not json")):
        assert isinstance(event, Send) and error_of(event).code == "not_ready"
    broken = conn.receive_text(json.dumps({"type": "hello", "protocol": 1}))  # a hello, missing its client
    assert isinstance(broken, Send) and (error_of(broken).code, error_of(broken).field) == ("missing_field", "client")
    assert isinstance(conn.receive_text(hello_text()), HelloReceived)


@pytest.mark.parametrize("protocol", [0, 2, 2**31 - 1])
def test_another_major_version_closes_with_1002(protocol: int) -> None:
    event = server().receive_text(hello_text(protocol=protocol, future={"x": 1}))
    assert isinstance(event, Close) and event.code == CLOSE_PROTOCOL_ERROR
    assert error_of(event).code == "version_mismatch" and str(protocol) in error_of(event).message


@pytest.mark.parametrize("protocol", [2**31, -1, 1.5, "1", True])
def test_a_protocol_value_that_is_no_version_is_a_bad_field(protocol: object) -> None:
    conn = server()
    event = conn.receive_text(hello_text(protocol=protocol))
    assert isinstance(event, Send) and (error_of(event).code, error_of(event).field) == ("bad_field", "protocol")
    assert isinstance(conn.receive_text(hello_text()), HelloReceived)  # a corrected hello goes through


def test_token_from_the_hello_or_the_bearer_header() -> None:
    assert isinstance(server().receive_text(hello_text(token="wrong")), Close)
    refused = server().receive_text(hello_text(token=""))
    assert isinstance(refused, Close) and refused.code == CLOSE_POLICY and error_of(refused).code == "unauthorized"
    for token in ("", "wrong"):  # a correct header is enough, whatever the hello says
        assert isinstance(server(pre_authorized=True).receive_text(hello_text(token=token)), HelloReceived)


def test_hello_timeout_closes_with_its_own_code_not_the_auth_code() -> None:
    conn = server()
    event = conn.hello_timed_out()
    assert event.code == CLOSE_NO_HELLO != CLOSE_POLICY and error_of(event).code == "not_ready"
    assert conn.state == CLOSED


def test_open_connection_decodes_requests_and_answers_faults() -> None:
    conn = server()
    event = conn.receive_text(hello_text(minor=7))
    assert isinstance(event, HelloReceived)
    answer = json.loads(conn.accept(server_hello(minor=1)))
    assert answer["type"] == "hello" and conn.state == OPEN and conn.minor == 1
    request = conn.receive_text(encode_message(QueryQueue("q-1")))
    assert isinstance(request, Request) and request.message == QueryQueue("q-1")
    again = conn.receive_text(hello_text())
    assert isinstance(again, Send) and (error_of(again).code, error_of(again).field) == ("bad_field", "type")
    faulty = conn.receive_text(json.dumps({"type": "query_models", "request_id": "m-9", "extra": 1}))
    assert isinstance(faulty, Send)
    assert (error_of(faulty).code, error_of(faulty).request_id) == ("unknown_field", "m-9")


def test_blob_frames_decode_and_name_their_hash_when_broken() -> None:
    conn = server()
    conn.receive_text(hello_text())
    conn.accept(server_hello())
    payload = b"\x01\x02\x03\x04"
    header = BlobHeader(blob_hash(payload), "rgba8", 1, 1)
    good = conn.receive_blob(encode_frame(header, payload))
    assert isinstance(good, BlobReceived) and good.header == header and bytes(good.payload) == payload
    bad = conn.receive_blob(encode_frame(header, b"\x01\x02\x03\x05"))
    assert isinstance(bad, Send) and error_of(bad).code == "hash_mismatch" and header.hash in error_of(bad).message


# ----------------------------------------------------------------------------- client side


def client(minor: int = 1, book: JobBook | None = None, **hello: object) -> ClientConnection:
    conn = ClientConnection(ClientHello(protocol=1, client="t", token=TOKEN, minor=1, **hello), book)  # type: ignore[arg-type]
    events = conn.receive_text(encode_message(server_hello(minor=minor)))
    assert isinstance(events[0], ev.HelloAccepted) and events[0].minor == min(1, minor)
    return conn


def job(job_id: str = "j1", **fields: object) -> JobRequest:
    base: dict[str, object] = {"op": "txt2img", "canvas": Size(8, 8), "region": Rect(0, 0, 8, 8), **fields}
    return JobRequest(id=job_id, **base)  # type: ignore[arg-type]


def test_client_refuses_a_server_of_another_major_version() -> None:
    conn = ClientConnection(ClientHello(protocol=1, client="t"))
    [event] = conn.receive_text(encode_message(server_hello(protocol=2)))
    assert isinstance(event, ev.HandshakeFailed) and event.fatal and not event.by_server
    assert event.error.code.value == "version_mismatch" and conn.state == CLOSED


def test_client_reports_the_server_refusal_as_fatal_or_not() -> None:
    conn = ClientConnection(ClientHello(protocol=1, client="t"))
    [event] = conn.receive_text(encode_message(Error("unauthorized", "wrong token", "token")))
    assert isinstance(event, ev.HandshakeFailed) and event.fatal and event.by_server


def test_resumed_only_when_the_server_kept_our_id() -> None:
    conn = ClientConnection(ClientHello(protocol=1, client="t", client_id="c1"))
    [event] = conn.receive_text(encode_message(server_hello(client_id="c1", resumed=True)))
    assert isinstance(event, ev.HelloAccepted) and event.resumed


def test_answers_match_requests_by_id_in_any_order() -> None:
    conn = client(minor=1)
    models_key, models_text = conn.query_models()
    queue_key, queue_text = conn.query_queue()
    assert json.loads(queue_text)["request_id"] == queue_key
    assert json.loads(models_text)["request_id"] == models_key
    first = conn.receive_text(encode_message(QueueAnswer((), queue_key)))
    second = conn.receive_text(encode_message(ModelsAnswer((), (), (), "", models_key)))
    assert first == [ev.Answer(queue_key, QueueAnswer((), queue_key))]
    assert second[0].key == models_key  # type: ignore[union-attr]
    assert conn.receive_text(encode_message(QueueAnswer((), "stale-1"))) == []  # nobody asked: dropped
    assert conn.pending() == ()


def test_a_1_0_server_is_answered_by_kind_and_order_and_sent_no_request_ids() -> None:
    conn = client(minor=0)
    blobs_key, blobs_text = conn.query_blobs(["sha256:" + "1" * 64])
    queue_key, queue_text = conn.query_queue()
    assert "request_id" not in blobs_text and "request_id" not in queue_text
    [queue] = conn.receive_text(encode_message(QueueAnswer(())))
    [blobs] = conn.receive_text(encode_message(BlobsAnswer((), ("sha256:" + "1" * 64,))))
    assert (queue.key, blobs.key) == (queue_key, blobs_key)  # type: ignore[union-attr]


def test_an_error_answers_its_query_by_id_or_else_the_oldest_blob_upload() -> None:
    conn = client(minor=1)
    key, _ = conn.query_models()
    [answer] = conn.receive_text(encode_message(Error("internal", "broken", None, None, key)))
    assert isinstance(answer, ev.Answer) and answer.key == key
    header = BlobHeader("sha256:" + "2" * 64, "rgba8", 1, 1)
    upload_key, _ = conn.upload(header, b"\x00" * 4)
    [blob_error] = conn.receive_text(encode_message(Error("bad_image", "blob sha256:22..: broken")))
    assert isinstance(blob_error, ev.Answer) and blob_error.key == upload_key
    [stray] = conn.receive_text(encode_message(Error("internal", "nothing pending")))
    assert isinstance(stray, ev.ServerError)
    [stored] = client().receive_text(encode_message(BlobStored(header.hash, 1, 1)))[:1] or [None]
    assert stored is None  # an upload nobody made is not an answer


def test_a_refused_submit_answers_the_caller_and_leaves_no_job() -> None:
    conn = client()
    key, _ = conn.submit(job("j1"))  # type: ignore[misc]
    assert "j1" in conn.book
    [answer] = conn.receive_text(encode_message(Error("unknown_model", "no model", "job.model", "j1")))
    assert isinstance(answer, ev.Answer) and answer.key == key and "j1" not in conn.book


def test_job_messages_drive_the_shared_state_machine() -> None:
    conn = client()
    key, _ = conn.submit(job("j1", batch=2))  # type: ignore[misc]
    answer, queued = conn.receive_text(encode_message(Queued("j1", 0)))
    assert answer == ev.Answer(key, Queued("j1", 0)) and queued == ev.JobQueued("j1", 0)
    assert conn.receive_text(encode_message(Started("j1", 4, 9))) == [ev.JobStarted("j1", 4, 9)]
    assert conn.receive_text(encode_message(Progress("j1", 1, 4))) == [ev.JobProgress("j1", 1, 4)]
    preview = PreviewHeader("j1", 1, 4, Rect(0, 0, 8, 8), "rgba8", 1, 1)
    [shown] = conn.receive_frame(encode_frame(preview, b"\x00" * 4))
    assert isinstance(shown, ev.JobPreview) and conn.book.states() == {"j1": "started"}
    result = ResultHeader("j1", 0, Rect(0, 0, 8, 8), "rgba8", 1, 1, 9)
    [got] = conn.receive_frame(encode_frame(result, b"\x00" * 4))
    assert isinstance(got, ev.JobResult) and conn.book.get("j1").results == 1  # type: ignore[union-attr]
    assert conn.receive_text(encode_message(Cancelled("j1"))) == [ev.JobCancelled("j1")]
    assert "j1" not in conn.book
    [broken] = conn.receive_text(encode_message(Progress("j1", 2, 4)))  # nothing may follow a final message
    assert isinstance(broken, ev.ServerError) and "life cycle" in broken.message


def test_messages_of_a_newer_server_are_ignored() -> None:
    conn = client()
    assert conn.receive_text(json.dumps({"type": "telemetry", "x": 1})) == []
    assert conn.receive_text(json.dumps({"type": "done", "job_id": "j9", "results": 0, "new": 1}))[0] == ev.JobDone(
        "j9", 0
    )


def test_a_1_0_server_gets_image_and_mask_fields_and_never_a_control_input() -> None:
    conn = client(minor=0)
    image, mask = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    inputs = (JobInput("image", image), JobInput("mask", mask))
    _, text = conn.submit(job("j1", op="inpaint", inputs=inputs))  # type: ignore[misc]
    sent = decode_client_message(text)
    assert isinstance(sent, Submit) and (sent.job.image, sent.job.mask, sent.job.inputs) == (image, mask, None)
    refused = conn.submit(job("j2", inputs=(JobInput("control", image),)))
    assert not isinstance(refused, tuple) and refused.code.value == "not_supported" and "j2" not in conn.book


def test_the_book_outlives_a_connection_and_reconciles_after_resume() -> None:
    book = JobBook()
    first = client(book=book)
    first.submit(job("kept"))
    first.submit(job("gone"))
    first.receive_text(encode_message(Queued("kept", 0)))
    first.receive_text(encode_message(Queued("gone", 1)))
    assert first.closed() == []  # both submits were answered already
    second = client(book=book, client_id="c1")
    second.receive_text(encode_message(Started("kept", 3)))  # the server repeats the state of a live job
    lost = book.reconcile(QueueAnswer((JobInfo("kept", "started"),)))
    assert lost == [ev.JobFailed("gone", ev.LOST_JOB, lost[0].message)]  # type: ignore[union-attr]
    assert book.states() == {"kept": "started"}
    assert [e.job_id for e in book.lose_all("gave up")] == ["kept"] and len(book) == 0  # type: ignore[union-attr]


def test_a_request_the_socket_lost_is_forgotten() -> None:
    conn = client()
    conn.submit(job("j1"))
    key, _ = conn.query_queue()
    assert sorted(conn.closed()) == sorted(["submit:j1", key])
    assert "j1" not in conn.book
