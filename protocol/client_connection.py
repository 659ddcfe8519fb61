"""The client side of a protocol connection, sans-I/O (see ``connection.py``).

``ClientConnection.receive_text``/``receive_frame`` return a list of ``events.ConnectionEvent``;
requests return ``(key, data)`` to send, and their reply comes back as ``events.Answer(key, ...)``.
``JobBook`` is the client's record of its unfinished jobs across connections.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from . import events as ev
from .codec import decode_server_frame, decode_server_message, encode_frame, encode_message, frame_parts
from .connection import CLOSED, HANDSHAKE, OPEN, max_server_frame
from .errors import ErrorCode, ProtocolError
from .inputs import as_v1_0
from .lifecycle import JobStatus, check_server_hello, negotiated_minor
from .messages import (
    BlobHeader,
    BlobsAnswer,
    BlobStored,
    Cancel,
    Cancelled,
    ClientHello,
    Done,
    Error,
    JobRequest,
    ModelsAnswer,
    PreviewHeader,
    Progress,
    QueryBlobs,
    QueryModels,
    QueryQueue,
    QueueAnswer,
    Queued,
    ServerHello,
    Started,
    Submit,
)


class JobBook:
    """The client's jobs that have not ended: job id -> ``JobStatus``. Outlives connections (resume)."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobStatus] = {}

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def states(self) -> dict[str, str]:
        return {job_id: status.state for job_id, status in self._jobs.items()}

    def get(self, job_id: str) -> JobStatus | None:
        return self._jobs.get(job_id)

    def submitted(self, job_id: str) -> None:
        self._jobs[job_id] = JobStatus(job_id)

    def withdraw(self, job_id: str) -> None:
        """A submit the server refused (or that never went out) leaves no job behind."""
        self._jobs.pop(job_id, None)

    def apply(self, msg: Any) -> JobStatus | ProtocolError:
        """Advance the job ``msg`` is about; a job that ends leaves the book."""
        status = self._jobs.get(msg.job_id) or JobStatus(msg.job_id)
        after = status.apply(msg)
        if isinstance(after, JobStatus):
            if after.final:
                self._jobs.pop(msg.job_id, None)
            else:
                self._jobs[msg.job_id] = after
        return after

    def lose(self, job_ids: Iterable[str], message: str) -> list[ev.JobEvent]:
        """End jobs the server can no longer finish for us (restart, expired session, gave up)."""
        lost: list[ev.JobEvent] = []
        for job_id in list(job_ids):
            if self._jobs.pop(job_id, None) is not None:
                lost.append(ev.JobFailed(job_id, ev.LOST_JOB, message))
        return lost

    def lose_all(self, message: str) -> list[ev.JobEvent]:
        return self.lose(self._jobs, message)

    def reconcile(self, answer: QueueAnswer) -> list[ev.JobEvent]:
        """After a resume every re-delivery precedes the queue answer: jobs it does not list are lost."""
        listed = {info.job_id for info in answer.jobs}
        gone = [job_id for job_id in self._jobs if job_id not in listed]
        return self.lose(gone, "the server no longer knows this job (its result was not kept); submit it again")


_ANSWER_KINDS: dict[type, str] = {BlobsAnswer: "query_blobs", QueueAnswer: "query_queue", ModelsAnswer: "query_models"}


class ClientConnection:
    """The protocol's rules for one connection, client side. See the module docstring.

    ``receive_text``/``receive_frame`` return a list of ``events.ConnectionEvent``. Requests
    (queries, uploads, submits) return ``(key, data)``: send ``data``; the reply comes back as
    ``events.Answer(key, message)``, an ``Error`` message when the server refused.
    """

    def __init__(self, hello: ClientHello, book: JobBook | None = None) -> None:
        self.state = HANDSHAKE
        self.client_hello = hello
        self.book = book if book is not None else JobBook()
        self.server_hello: ServerHello | None = None
        self.minor = 0
        self._pending: dict[str, str] = {}  # request key -> kind, oldest first
        self._ids = itertools.count(1)

    @property
    def max_frame(self) -> int:
        return max_server_frame(self.server_hello)

    def start(self) -> str:
        """The hello to send first."""
        return encode_message(self.client_hello)

    # ------------------------------------------------------------------------- requests

    def _key(self, kind: str) -> str:
        key = f"{kind.removeprefix('query_')}-{next(self._ids)}"  # also the request id: no "_" in ids
        self._pending[key] = kind
        return key

    def _request_id(self, key: str) -> str | None:
        return key if self.minor >= 1 else None  # 1.0 servers refuse the field

    def query_blobs(self, hashes: Iterable[str]) -> tuple[str, str]:
        key = self._key("query_blobs")
        return key, encode_message(QueryBlobs(tuple(hashes), self._request_id(key)))

    def query_queue(self) -> tuple[str, str]:
        key = self._key("query_queue")
        return key, encode_message(QueryQueue(self._request_id(key)))

    def query_models(self) -> tuple[str, str]:
        key = self._key("query_models")
        return key, encode_message(QueryModels(self._request_id(key)))

    def upload(self, header: BlobHeader, payload: bytes | memoryview) -> tuple[str, bytes]:
        key = f"blob:{header.hash}"
        self._pending[key] = "blob"
        return key, encode_frame(header, payload)

    def upload_parts(
        self, header: BlobHeader, payload: bytes | bytearray | memoryview
    ) -> tuple[str, list[bytes | memoryview]]:
        """``upload`` without copying the payload: the frame as pieces to send as one fragmented message."""
        key = f"blob:{header.hash}"
        self._pending[key] = "blob"
        return key, frame_parts(header, payload)

    def submit(self, job: JobRequest) -> tuple[str, str] | ProtocolError:
        """The submit to send; a 1.0 server gets the job in its 1.0 form, or an error if it cannot carry it."""
        if self.minor == 0:
            legacy = as_v1_0(job)
            if isinstance(legacy, ProtocolError):
                return legacy
            job = legacy
        key = f"submit:{job.id}"
        self._pending[key] = "submit"
        self.book.submitted(job.id)
        return key, encode_message(Submit(job))

    def cancel(self, job_id: str) -> str:
        return encode_message(Cancel(job_id))

    def forget(self, key: str) -> None:
        """The caller stopped waiting for ``key`` (timeout): a late answer is then dropped."""
        if self._pending.pop(key, None) == "submit":
            self.book.withdraw(key.partition(":")[2])

    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    def closed(self) -> list[str]:
        """The socket is gone: the keys of requests that will never be answered."""
        self.state = CLOSED
        keys = list(self._pending)
        for key in keys:
            self.forget(key)
        return keys

    # ------------------------------------------------------------------------- incoming

    def receive_text(self, data: str) -> list[ev.ConnectionEvent]:
        msg = decode_server_message(data)
        if self.state == HANDSHAKE:
            return [self._handshake(msg, data)]
        if isinstance(msg, ProtocolError):
            if msg.code is ErrorCode.UNKNOWN_TYPE:  # a newer server's message: ignored (SPEC.md 14)
                return []
            return [ev.ServerError(msg.code.value, f"undecodable message from the server: {msg.message}", msg.field)]
        return self._message(msg)

    def receive_frame(self, data: bytes | memoryview) -> list[ev.ConnectionEvent]:
        frame = decode_server_frame(data, self.max_frame)
        if isinstance(frame, ProtocolError):
            if frame.code is ErrorCode.UNKNOWN_TYPE:
                return []
            return [ev.ServerError(frame.code.value, f"undecodable frame from the server: {frame.message}",
                                   frame.field)]
        header, payload = frame
        job_event: ev.JobEvent
        if isinstance(header, PreviewHeader):
            job_event = ev.JobPreview(header, bytes(payload))
        else:
            job_event = ev.JobResult(header, bytes(payload))
        return self._job(header, job_event)

    def _handshake(self, msg: Any, raw: str) -> ev.ConnectionEvent:
        if isinstance(msg, ServerHello):
            mismatch = check_server_hello(msg)
            if mismatch is not None:
                self.state = CLOSED
                return ev.HandshakeFailed(mismatch, fatal=True, by_server=False)
            self.state, self.server_hello = OPEN, msg
            self.minor = negotiated_minor(self.client_hello.minor, msg.minor)
            resumed = bool(msg.resumed and msg.client_id == self.client_hello.client_id)
            return ev.HelloAccepted(msg, self.minor, resumed)
        self.state = CLOSED
        if isinstance(msg, Error):
            err = ProtocolError(_code(msg.code), msg.message, msg.field)
            return ev.HandshakeFailed(err, fatal=err.fatal)
        unexpected = ProtocolError(ErrorCode.BAD_JSON, f"unexpected first message from the server: {raw[:200]!r}")
        return ev.HandshakeFailed(unexpected, fatal=True, by_server=False)

    def _message(self, msg: Any) -> list[ev.ConnectionEvent]:
        if isinstance(msg, Error):
            return self._error(msg)
        kind = _ANSWER_KINDS.get(type(msg))
        if kind is not None:
            key = self._answered(kind, getattr(msg, "request_id", None))
            return [ev.Answer(key, msg)] if key is not None else []
        if isinstance(msg, BlobStored):
            key = f"blob:{msg.hash}"
            return [ev.Answer(key, msg)] if self._pending.pop(key, None) else []
        if isinstance(msg, (Queued, Started, Progress, Done, Cancelled)):
            out: list[ev.ConnectionEvent] = []
            key = f"submit:{msg.job_id}"
            if self._pending.pop(key, None):
                out.append(ev.Answer(key, msg))
            return out + self._job(msg, _job_event(msg))
        return []  # a hello after the handshake, or a message this client has no use for

    def _answered(self, kind: str, request_id: str | None) -> str | None:
        if request_id is not None:
            return request_id if self._pending.pop(request_id, None) else None
        for key, pending_kind in self._pending.items():  # a 1.0 server answers in order
            if pending_kind == kind:
                del self._pending[key]
                return key
        return None

    def _error(self, err: Error) -> list[ev.ConnectionEvent]:
        if err.request_id is not None:
            key = self._answered("", err.request_id)
            if key is not None:
                return [ev.Answer(key, err)]
        if err.job_id is not None:
            key = f"submit:{err.job_id}"
            if self._pending.pop(key, None):  # a refused submit: the caller hears it, the job never existed
                self.book.withdraw(err.job_id)
                return [ev.Answer(key, err)]
            return self._job(err, ev.JobFailed(err.job_id, err.code, err.message, err.field))
        # No ids: a blob's error, or (1.0) a query's: the oldest such request is the one it answers.
        for key, kind in self._pending.items():
            if kind == "blob" or (self.minor == 0 and kind.startswith("query_")):
                del self._pending[key]
                return [ev.Answer(key, err)]
        return [ev.ServerError(err.code, err.message, err.field)]

    def _job(self, msg: Any, event: ev.JobEvent) -> list[ev.ConnectionEvent]:
        after = self.book.apply(msg)
        if isinstance(after, ProtocolError):
            return [ev.ServerError(after.code.value, f"the server broke the job life cycle: {after.message}",
                                   after.field)]
        return [event]


def _job_event(msg: Queued | Started | Progress | Done | Cancelled) -> ev.JobEvent:
    if isinstance(msg, Queued):
        return ev.JobQueued(msg.job_id, msg.position)
    if isinstance(msg, Started):
        return ev.JobStarted(msg.job_id, msg.total, msg.seed)
    if isinstance(msg, Progress):
        return ev.JobProgress(msg.job_id, msg.step, msg.total, msg.stage)
    if isinstance(msg, Done):
        return ev.JobDone(msg.job_id, msg.results, msg.seeds, dict(msg.info))
    return ev.JobCancelled(msg.job_id, msg.reason)


def _code(code: str) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:  # an error code of a newer server is handled like internal (SPEC.md 14)
        return ErrorCode.INTERNAL
