"""Sans-I/O connections, the h11 / python-websockets shape: one object per side and socket.

They take decoded-from-the-socket frames in (``receive_*``) and give back what happened, and
turn messages into frames to send; they never touch a socket or an event loop. The backend
server, the plugin client and every test fake drive these objects, so the hello gate, the
job state machine, resume bookkeeping and request/answer correlation exist once.

Server side: ``ServerConnection`` answers everything before a good hello by itself, checks
the major version and the token, and hands the server ``HelloReceived``; after ``accept`` it
decodes requests and blobs. Client side: ``ClientConnection`` checks the server hello,
negotiates the minor version, keeps every job's ``JobStatus`` in a ``JobBook`` that outlives
the connection (for resume), and matches answers to requests by ``request_id`` (minor 1) or,
with a 1.0 server, by kind and order.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from . import events as ev
from .codec import (
    MAX_HEADER_BYTES,
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
    encode_frame,
    encode_message,
)
from .errors import ErrorCode, ProtocolError
from .inputs import as_v1_0
from .lifecycle import JobStatus, check_hello, check_server_hello, negotiated_minor
from .messages import (
    HASH_PATTERN,
    ID_PATTERN,
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
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
from .transport import CLOSE_NO_HELLO, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR

HANDSHAKE, OPEN, CLOSED = "handshake", "open", "closed"
FRAME_OVERHEAD = 65540  # SPEC.md 2: length prefix and the largest header on top of a raw RGBA result
FIRST_MAX_SIZE = 512 * 1024 * 1024  # what a client accepts before the server hello states its limits
MAX_VERSION = 2**31 - 1  # ClientHello.protocol's range; a larger number is a bad field, not another version
_ID = re.compile(ID_PATTERN)
_HASH_HINT = re.compile(rb'"hash"\s*:\s*"(sha256:[0-9a-f]{64})"')
_HASH = re.compile(HASH_PATTERN)
_NOT_READY = ProtocolError(ErrorCode.NOT_READY, "send hello first", "type")


def max_server_frame(hello: ServerHello | None) -> int:
    """The largest server frame a client must accept: SPEC.md 2's floor for the announced limits."""
    if hello is None:
        return FIRST_MAX_SIZE
    return max(hello.limits.max_frame_bytes, 4 * hello.limits.max_pixels + FRAME_OVERHEAD)


# ----------------------------------------------------------------------------- server side


@dataclass(frozen=True)
class Send:
    """Send ``text`` and stay open (errors the connection answers by itself)."""

    text: str


@dataclass(frozen=True)
class Close:
    """Send ``text``, then close with ``code``."""

    text: str
    code: int
    reason: str


@dataclass(frozen=True)
class HelloReceived:
    """A good hello with the right token: answer with ``accept(server_hello)``."""

    hello: ClientHello


@dataclass(frozen=True)
class Request:
    """A decoded client message on an open connection."""

    message: Submit | Cancel | QueryBlobs | QueryQueue | QueryModels


@dataclass(frozen=True)
class BlobReceived:
    header: BlobHeader
    payload: memoryview


ServerEvent = Send | Close | HelloReceived | Request | BlobReceived


class ServerConnection:
    """The protocol's rules for one client connection, server side. See the module docstring.

    ``token_ok`` compares a hello's token with the server's (in constant time); ``pre_authorized``
    is true when the upgrade request's ``Authorization: Bearer`` header already held it (SPEC.md 4:
    either is enough).
    """

    def __init__(
        self,
        *,
        token_ok: Callable[[str], bool],
        pre_authorized: bool = False,
        max_frame_bytes: int,
        max_pixels: int | None = None,
        blob_formats: Collection[str] | None = None,
        minor: int = PROTOCOL_MINOR,
    ) -> None:
        self.state = HANDSHAKE
        self.hello: ClientHello | None = None
        self.minor = minor
        self._token_ok = token_ok
        self._pre_authorized = pre_authorized
        self._max_frame_bytes = max_frame_bytes
        self._max_pixels = max_pixels
        self._blob_formats = blob_formats

    # ------------------------------------------------------------------------- handshake

    def receive_text(self, data: str) -> ServerEvent:
        if self.state == HANDSHAKE:
            return self._handshake(data)
        msg = decode_client_message(data)
        if isinstance(msg, ProtocolError):
            return Send(self.error(msg, request_id=_request_id_hint(data)))
        if isinstance(msg, ClientHello):
            return Send(self.error(ProtocolError(ErrorCode.BAD_FIELD, "hello was already received", "type")))
        return Request(msg)

    def _handshake(self, data: str) -> ServerEvent:
        msg = decode_client_message(data)
        if isinstance(msg, ProtocolError):
            meant_as_hello, version = _peek_hello(data)
            if version is not None and version != PROTOCOL_VERSION:  # another major may not parse as ours
                return self._refuse(check_hello(ClientHello(protocol=version, client="")))
            return Send(self.error(msg if meant_as_hello else _NOT_READY))
        if not isinstance(msg, ClientHello):
            return Send(self.error(_NOT_READY))
        mismatch = check_hello(msg)
        if mismatch is not None:
            return self._refuse(mismatch)
        if not (self._pre_authorized or self._token_ok(msg.token)):
            return self._refuse(ProtocolError(ErrorCode.UNAUTHORIZED, "wrong token", "token"))
        self.hello = msg
        return HelloReceived(msg)

    def accept(self, server_hello: ServerHello) -> str:
        """The server hello's text; the connection is open from now on."""
        if self.hello is None or self.state != HANDSHAKE:
            raise RuntimeError("accept() answers a HelloReceived, once")
        self.state = OPEN
        self.minor = negotiated_minor(self.hello.minor, server_hello.minor)
        return encode_message(server_hello)

    def _refuse(self, err: ProtocolError | None) -> Close:
        if err is None:
            raise RuntimeError("refusing needs an error")
        self.state = CLOSED
        code = CLOSE_PROTOCOL_ERROR if err.code is ErrorCode.VERSION_MISMATCH else CLOSE_POLICY
        return Close(self.error(err), code, err.code.value)

    def hello_timed_out(self) -> Close:
        """The server's hello timer ran out: close with the code reserved for it (not 1008, which means auth)."""
        self.state = CLOSED
        return Close(self.error(ProtocolError(ErrorCode.NOT_READY, "no hello in time", "type")), CLOSE_NO_HELLO,
                     "no hello")

    # ------------------------------------------------------------------------- open

    def receive_blob(self, data: bytes | memoryview) -> ServerEvent:
        """A binary frame. Pure apart from reading the state, so it may run in a worker thread."""
        if self.state != OPEN:
            return Send(self.error(_NOT_READY))
        frame = decode_client_frame(data, self._max_frame_bytes, self._max_pixels, formats=self._blob_formats)
        if isinstance(frame, ProtocolError):
            return Send(self.error(blob_error(frame, data)))
        header, payload = frame
        return BlobReceived(header, payload)

    def send(self, msg: Any) -> str:
        return encode_message(msg)

    def error(self, err: ProtocolError, job_id: str | None = None, request_id: str | None = None) -> str:
        return encode_message(Error.from_error(err, job_id, request_id))


def blob_error(err: ProtocolError, data: bytes | memoryview) -> ProtocolError:
    """A blob's decode error, naming the hash it announced so the client can match it to its upload."""
    match = _HASH_HINT.search(bytes(memoryview(data)[: 4 + MAX_HEADER_BYTES]))
    hint = match.group(1).decode() if match and _HASH.fullmatch(match.group(1).decode()) else None
    return replace(err, message=f"blob {hint}: {err.message}") if hint else err


def _peek_hello(data: str) -> tuple[bool, int | None]:
    """For a text that did not decode: (is it meant as a hello?, the protocol version it names)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return False, None
    if not isinstance(obj, dict) or obj.get("type") != "hello":
        return False, None
    version = obj.get("protocol")
    if isinstance(version, int) and not isinstance(version, bool) and 0 <= version <= MAX_VERSION:
        return True, version
    return True, None


def _request_id_hint(data: str) -> str | None:
    """The request id of a query that failed to decode, so its error still answers it."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    candidate = obj.get("request_id") if isinstance(obj, dict) else None
    return candidate if isinstance(candidate, str) and _ID.fullmatch(candidate) else None


# ----------------------------------------------------------------------------- client side


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
    return ev.JobCancelled(msg.job_id)


def _code(code: str) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:  # an error code of a newer server is handled like internal (SPEC.md 14)
        return ErrorCode.INTERNAL


__all__ = [
    "CLOSED",
    "HANDSHAKE",
    "OPEN",
    "BlobReceived",
    "ClientConnection",
    "Close",
    "HelloReceived",
    "JobBook",
    "Request",
    "Send",
    "ServerConnection",
    "ServerEvent",
    "blob_error",
    "max_server_frame",
]
