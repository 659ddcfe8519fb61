"""The job state machine (SPEC.md 9.6) and the handshake version check (SPEC.md 4)."""

from __future__ import annotations

import itertools

import pytest
from latentbrush.protocol import ErrorCode, JobStatus, ProtocolError, check_hello, negotiated_minor
from latentbrush.protocol.lifecycle import EVENTS, FINAL_STATES, NEW
from latentbrush.protocol.messages import ClientHello

# Written out from SPEC.md 9.6, independently of lifecycle.TRANSITIONS: state -> allowed events.
ENDINGS = {"result", "done", "error", "cancelled"}
ALLOWED = {
    NEW: {"queued", "started"} | ENDINGS,
    "queued": {"queued", "started"} | ENDINGS,
    "started": {"started", "progress", "preview"} | ENDINGS,
    "done": set(),
    "error": set(),
    "cancelled": set(),
}


def _run(*events: str) -> JobStatus | ProtocolError:
    status: JobStatus | ProtocolError = JobStatus("j1")
    for event in events:
        assert isinstance(status, JobStatus), status
        status = status.advance(event)
    return status


@pytest.mark.parametrize(("state", "event"), list(itertools.product(ALLOWED, EVENTS)))
def test_every_state_event_pair(state: str, event: str) -> None:
    result = JobStatus("j1", state).advance(event)
    if event in ALLOWED[state]:
        assert isinstance(result, JobStatus)
        expected = {"progress": "started", "preview": "started", "result": state}.get(event, event)
        assert result.state == expected
    else:
        assert isinstance(result, ProtocolError)
        assert result.code is ErrorCode.BAD_FIELD
        assert result.job_id == "j1"
        assert event in result.message and state in result.message


def test_live_connection_sequence() -> None:
    status = JobStatus("j1")
    status = status.advance("queued", position=2)
    assert (status.state, status.position) == ("queued", 2)
    status = status.advance("queued", position=0)
    assert status.position == 0
    status = status.advance("started", total=20)
    assert (status.state, status.total, status.position) == ("started", 20, None)
    for step in range(1, 21):
        status = status.advance("progress", step=step, total=20)
        status = status.advance("preview", step=step)
    assert (status.step, status.total) == (20, 20)
    status = status.advance("result").advance("result")
    assert (status.state, status.results) == ("started", 2)
    status = status.advance("done")
    assert status.final and status.state == "done" and status.results == 2


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_nothing_follows_a_final_message(final: str) -> None:
    status = _run("queued", "started", final)
    assert isinstance(status, JobStatus) and status.final
    for event in EVENTS:
        assert isinstance(status.advance(event), ProtocolError)


@pytest.mark.parametrize(
    "events",
    [
        ("started", "progress", "done"),  # resumed: missed queued
        ("result", "done"),  # resumed after the job finished while away
        ("queued", "result", "result", "done"),  # submitted, went away, came back after it finished
        ("queued", "started", "progress", "started", "progress", "done"),  # resumed mid-run: started repeated
        ("queued", "cancelled"),
        ("queued", "started", "result", "cancelled"),  # batch item finished before the cancel
        ("error",),  # refused at submit
    ],
)
def test_sequences_a_client_must_accept(events: tuple[str, ...]) -> None:
    status = _run(*events)
    assert isinstance(status, JobStatus) and status.final
    assert status.results == events.count("result")


@pytest.mark.parametrize(
    "events",
    [
        ("progress",),  # progress before started
        ("queued", "preview"),
        ("queued", "started", "queued"),  # back to the queue
        ("queued", "done", "done"),
        ("queued", "cancelled", "result"),
        ("bogus",),
    ],
)
def test_sequences_a_client_must_refuse(events: tuple[str, ...]) -> None:
    assert isinstance(_run(*events), ProtocolError)


def test_result_keeps_queue_position_while_queued() -> None:
    status = JobStatus("j1").advance("queued", position=4)
    assert isinstance(status, JobStatus)
    status = status.advance("result")
    assert (status.state, status.position, status.results) == ("queued", 4, 1)


@pytest.mark.parametrize(("protocol", "ok"), [(1, True), (0, False), (2, False), (2**31 - 1, False)])
def test_check_hello_version(protocol: int, ok: bool) -> None:
    error = check_hello(ClientHello(protocol=protocol, client="t"))
    if ok:
        assert error is None
    else:
        assert error is not None and error.code is ErrorCode.VERSION_MISMATCH and error.field == "protocol"
        assert error.fatal and str(protocol) in error.message


def test_check_hello_ignores_minor_and_negotiates_the_lower() -> None:
    assert check_hello(ClientHello(protocol=1, client="t", minor=7)) is None
    assert negotiated_minor(7, 0) == 0
    assert negotiated_minor(0, 3) == 0
    assert negotiated_minor(2, 5) == 2
