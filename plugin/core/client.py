"""asyncio client of protocol v1 on ``websockets``: handshake, requests, events, reconnect and resume.

The client never owns or blocks the event loop: every public method is a coroutine or a plain
call, and events reach listeners as synchronous calls on the loop's thread (inside Krita that
is the Qt thread, because a QTimer pumps the loop). Its two background tasks (the connection
supervisor and the post-reconnect reconciliation) report any exception as a ``ClientFailure``.

Requests that expect an answer (blob query and upload, submit, model and queue queries) are
serialized, because an error about a message the server could not parse names no job: the
single pending request is the one it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from latentbrush.protocol import (
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    BlobHeader,
    BlobsAnswer,
    BlobStored,
    Cancel,
    Cancelled,
    Capabilities,
    ClientHello,
    Done,
    Error,
    ErrorCode,
    JobRequest,
    ModelsAnswer,
    PreviewHeader,
    Progress,
    ProtocolError,
    QueryBlobs,
    QueryModels,
    QueryQueue,
    QueueAnswer,
    Queued,
    ResultHeader,
    ServerHello,
    Started,
    Submit,
    blob_hash,
    decode_server_frame,
    decode_server_message,
    encode_frame,
    encode_message,
)

from . import events as ev
from .connection import (
    CLOSE_SUPERSEDED,
    ClientError,
    ConnectError,
    ConnectionLost,
    NotConnected,
    RequestRefused,
    is_loopback_url,
    open_connection,
    receive_limit,
)
from .events import ClientEvent, ConnectionState, Listener
from .token import find_token

__all__ = [
    "Blob",
    "Client",
    "ClientError",
    "ClientStats",
    "ConnectError",
    "ConnectionLost",
    "NotConnected",
    "ReconnectPolicy",
    "RequestRefused",
]

log = logging.getLogger("latentbrush.plugin.client")

MAX_QUERY_HASHES = 64  # QueryBlobs.hashes items_max


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff between reconnect attempts; ``max_attempts`` None = until closed."""

    initial_delay: float = 0.2
    max_delay: float = 10.0
    factor: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))


@dataclass(frozen=True)
class Blob:
    """An image to upload: raw bytes in a protocol format ("rgba8", "bgra8", "gray8", "png", ...)."""

    payload: bytes
    format: str
    width: int
    height: int

    @property
    def hash(self) -> str:
        return blob_hash(self.payload)


@dataclass
class ClientStats:
    blobs_uploaded: int = 0
    blobs_skipped: int = 0  # the server already had them
    reconnects: int = 0


@dataclass
class _Waiter:
    accepts: Callable[[Any], bool]
    future: asyncio.Future


class Client:
    """One connection to one server, kept alive across drops. See module docstring."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_file: str | None = None,
        client_name: str = "latentbrush-plugin",
        capabilities: Capabilities | None = None,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        open_timeout: float = 10.0,
        request_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.loopback = is_loopback_url(url)
        self._token, self._token_file = token, token_file
        self.client_name = client_name
        self.capabilities = capabilities or Capabilities(
            preview_formats=("rgba8", "bgra8", "jpeg"), result_formats=("rgba8", "bgra8", "png")
        )
        self.reconnect_policy = reconnect
        self.open_timeout, self.request_timeout = open_timeout, request_timeout
        self.hello: ServerHello | None = None
        self.client_id: str | None = None
        self.state = ConnectionState.CLOSED
        self.stats = ClientStats()
        self._listeners: list[Listener] = []
        self._ws: Any = None
        self._supervisor: asyncio.Task | None = None
        self._reconciler: asyncio.Task | None = None
        self._request_lock: asyncio.Lock | None = None
        self._waiter: _Waiter | None = None
        self._active: dict[str, str] = {}  # job id -> last state, for jobs not yet final
        self._closing = False

    # ----------------------------------------------------------------------------- listeners

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: ClientEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:  # a broken listener must not stop the reader or hide the error
                log.exception("listener %r failed on %s", listener, type(event).__name__)
                if not isinstance(event, ev.ClientFailure):
                    for other in list(self._listeners):
                        if other is not listener:
                            with contextlib.suppress(Exception):
                                other(ev.ClientFailure(f"listener failed on {type(event).__name__}: {exc!r}", exc))

    def _set_state(self, state: ConnectionState, message: str = "", attempt: int = 0, resumed: bool = False) -> None:
        self.state = state
        self._emit(ev.ConnectionChanged(state, message, attempt, self.hello, resumed))

    # ----------------------------------------------------------------------------- connection

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED and self._ws is not None

    @property
    def active_jobs(self) -> dict[str, str]:
        return dict(self._active)

    async def connect(self) -> ServerHello:
        """First connection; raises ConnectError. Afterwards drops are retried in the background."""
        if self._supervisor is not None:
            raise ClientError("already connected; create a new Client to connect again")
        self._closing = False
        self._request_lock = asyncio.Lock()
        self._set_state(ConnectionState.CONNECTING)
        try:
            hello = await self._open()
        except ConnectError as exc:
            self._set_state(ConnectionState.FAILED, str(exc))
            raise
        self._set_state(ConnectionState.CONNECTED, f"connected to {self.url}")
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        self._supervisor.add_done_callback(self._task_done)
        return hello

    async def close(self) -> None:
        self._closing = True
        for task in (self._reconciler, self._supervisor):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._supervisor = self._reconciler = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        self._fail_waiter(NotConnected("the client was closed"))
        if self.state is not ConnectionState.CLOSED:
            self._set_state(ConnectionState.CLOSED, "closed")

    async def _open(self) -> ServerHello:
        """Connect, say hello (resuming ``client_id`` if known), return the server hello."""
        try:
            token = find_token(self._token, self._token_file)
        except Exception as exc:
            raise ConnectError(str(exc), fatal=True)
        hello = ClientHello(
            protocol=PROTOCOL_VERSION,
            minor=PROTOCOL_MINOR,
            client=self.client_name,
            token=token,
            client_id=self.client_id,
            capabilities=self.capabilities,
        )
        ws, answer = await open_connection(self.url, hello, open_timeout=self.open_timeout,
                                           max_size=receive_limit(self.hello))
        self.hello, self.client_id, self._ws = answer, answer.client_id, ws
        return answer

    async def _supervise(self) -> None:
        """Read until the link drops, then reconnect with backoff and resume; forever until closed."""
        from websockets.exceptions import ConnectionClosed

        while not self._closing:
            ws, reason = self._ws, "connection closed"
            try:
                async for raw in ws:
                    self._dispatch(raw)
            except ConnectionClosed as exc:
                reason = f"connection lost: {exc}"
            except OSError as exc:
                reason = f"connection lost: {exc!r}"
            if self._closing:
                return
            self._ws = None
            self._fail_waiter(ConnectionLost(reason))
            if getattr(ws, "close_code", None) == CLOSE_SUPERSEDED:  # taking the session back would ping-pong
                self._give_up("another connection resumed this session (close code 4000)")
                return
            if not await self._reconnect(reason):
                return

    async def _reconnect(self, reason: str) -> bool:
        old_id = self.client_id
        self._set_state(ConnectionState.RECONNECTING, reason)
        attempt = 0
        while not self._closing:
            attempt += 1
            policy = self.reconnect_policy
            if policy.max_attempts is not None and attempt > policy.max_attempts:
                self._give_up(f"gave up after {policy.max_attempts} reconnect attempts ({reason})")
                return False
            await asyncio.sleep(policy.delay(attempt))
            try:
                hello = await self._open()
            except ConnectError as exc:
                if exc.fatal:
                    self._give_up(str(exc))
                    return False
                self._set_state(ConnectionState.RECONNECTING, str(exc), attempt)
                continue
            self.stats.reconnects += 1
            resumed = bool(hello.resumed and hello.client_id == old_id)
            self._set_state(ConnectionState.CONNECTED, "reconnected", attempt, resumed)
            if not resumed:
                self._fail_active("the server restarted and no longer knows this job; submit it again")
            elif self._active:
                self._reconciler = asyncio.get_running_loop().create_task(self._reconcile())
                self._reconciler.add_done_callback(self._task_done)
            return True
        return False

    def _give_up(self, message: str) -> None:
        self._fail_active(f"connection lost: {message}")
        self._set_state(ConnectionState.FAILED, message)

    async def _reconcile(self) -> None:
        """After a resume the server replays what we missed; jobs it no longer lists are lost."""
        try:
            answer = await self.query_queue()
        except ClientError as exc:
            log.warning("queue query after reconnect failed: %s", exc)
            return
        known = {info.job_id: info.state for info in answer.jobs}
        for job_id in list(self._active):
            state = known.get(job_id)
            if state is None:
                self._finish(ev.JobFailed(job_id, ev.LOST_JOB, "the server no longer knows this job; submit it again"))
            elif state == "cancelled":
                self._finish(ev.JobCancelled(job_id))
            elif state in ("done", "error"):
                self._finish(ev.JobFailed(job_id, ev.LOST_JOB, f"the job ended ({state}) while disconnected and "
                                          "its results were not kept; submit it again"))

    def _fail_active(self, message: str) -> None:
        for job_id in list(self._active):
            self._finish(ev.JobFailed(job_id, ev.LOST_JOB, message))

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("client task failed", exc_info=exc)
            self._emit(ev.ClientFailure(f"client task failed: {exc!r}", exc))

    # ----------------------------------------------------------------------------- incoming

    def _dispatch(self, raw: str | bytes) -> None:
        if isinstance(raw, str):
            msg = decode_server_message(raw)
        else:
            msg = decode_server_frame(raw, receive_limit(self.hello))
        if isinstance(msg, ProtocolError):
            if msg.code is ErrorCode.UNKNOWN_TYPE:  # a newer server's message: ignored (SPEC section 14)
                log.debug("ignored a server message: %s", msg)
                return
            self._emit(ev.ServerError(msg.code.value, f"undecodable message from the server: {msg.message}", msg.field))
            return
        if isinstance(msg, tuple):
            header, payload = msg
            if isinstance(header, PreviewHeader):
                self._emit(ev.JobPreview(header, bytes(payload)))
            elif isinstance(header, ResultHeader):
                self._emit(ev.JobResult(header, bytes(payload)))
            return
        if self._waiter is not None and not self._waiter.future.done() and self._waiter.accepts(msg):
            self._waiter.future.set_result(msg)
            if isinstance(msg, Error):
                return  # the request raises RequestRefused: reported once, to the caller
        self._route(msg)

    def _route(self, msg: Any) -> None:
        if isinstance(msg, Queued):
            self._track(msg.job_id, "queued")
            self._emit(ev.JobQueued(msg.job_id, msg.position))
        elif isinstance(msg, Started):
            self._track(msg.job_id, "started")
            self._emit(ev.JobStarted(msg.job_id, msg.total, msg.seed))
        elif isinstance(msg, Progress):
            self._emit(ev.JobProgress(msg.job_id, msg.step, msg.total, msg.stage))
        elif isinstance(msg, Done):
            self._finish(ev.JobDone(msg.job_id, msg.results, msg.seeds, dict(msg.info)))
        elif isinstance(msg, Cancelled):
            self._finish(ev.JobCancelled(msg.job_id))
        elif isinstance(msg, Error):
            if msg.job_id is not None:
                self._finish(ev.JobFailed(msg.job_id, msg.code, msg.message, msg.field))
            else:
                self._emit(ev.ServerError(msg.code, msg.message, msg.field))
        # answers (blobs, blob_stored, queue, models) only matter to the waiting request

    def _track(self, job_id: str, state: str) -> None:
        if job_id in self._active:
            self._active[job_id] = state

    def _finish(self, event: ev.JobEvent) -> None:
        self._active.pop(event.job_id, None)
        self._emit(event)

    # ----------------------------------------------------------------------------- requests

    async def _request(self, text: str | bytes, accepts: Callable[[Any], bool]) -> Any:
        if self._request_lock is None:
            raise NotConnected("call connect() first")
        async with self._request_lock:
            if not self.connected:
                raise NotConnected(f"not connected to {self.url} ({self.state.value})")
            future = asyncio.get_running_loop().create_future()
            self._waiter = _Waiter(lambda m: accepts(m) or (isinstance(m, Error) and _answers(m, accepts)), future)
            try:
                await self._ws.send(text)
                answer = await asyncio.wait_for(future, self.request_timeout)
            except asyncio.TimeoutError:
                raise ClientError(f"no answer from the server within {self.request_timeout:.0f} s")
            except Exception as exc:
                if isinstance(exc, ClientError):
                    raise
                raise ConnectionLost(f"connection lost while sending: {exc!r}")
            finally:
                self._waiter = None
        if isinstance(answer, Error):
            raise RequestRefused(answer)
        return answer

    def _fail_waiter(self, exc: ClientError) -> None:
        if self._waiter is not None and not self._waiter.future.done():
            self._waiter.future.set_exception(exc)

    async def query_blobs(self, hashes: Iterable[str]) -> set[str]:
        """The subset of ``hashes`` the server already holds."""
        wanted = list(dict.fromkeys(hashes))
        have: set[str] = set()
        for i in range(0, len(wanted), MAX_QUERY_HASHES):
            answer = await self._request(encode_message(QueryBlobs(tuple(wanted[i : i + MAX_QUERY_HASHES]))),
                                         lambda m: isinstance(m, BlobsAnswer))
            have.update(answer.have)
        return have

    async def upload(self, blobs: Iterable[Blob], *, force: bool = False) -> list[str]:
        """Upload what the server lacks (everything with ``force``); returns each blob's hash in order."""
        blobs = list(blobs)
        hashes = [b.hash for b in blobs]
        if not blobs:
            return []
        have = set() if force else await self.query_blobs(hashes)
        limit = self.hello.limits.max_frame_bytes if self.hello else None
        for blob, digest in zip(blobs, hashes, strict=True):
            if digest in have:
                self.stats.blobs_skipped += 1
                continue
            frame = encode_frame(BlobHeader(hash=digest, format=blob.format, width=blob.width, height=blob.height),
                                 blob.payload)  # type: ignore[arg-type]
            if limit is not None and len(frame) > limit:
                raise ClientError(f"a {blob.width}x{blob.height} {blob.format} image is {len(frame)} bytes, over the "
                                  f"server's frame limit of {limit}; select a smaller area")
            await self._request(frame, lambda m, d=digest: isinstance(m, BlobStored) and m.hash == d)
            have.add(digest)
            self.stats.blobs_uploaded += 1
        return hashes

    async def submit(self, job: JobRequest, blobs: Iterable[Blob] = ()) -> int:
        """Upload ``blobs`` the server lacks, then queue ``job``; returns its queue position.

        Its events follow through the listeners. A refusal raises RequestRefused (and is not
        also sent as an event). A blob evicted between upload and submit is sent again once.
        """
        blobs = list(blobs)
        await self.upload(blobs)
        try:
            return await self._submit_once(job)
        except RequestRefused as exc:
            if exc.error.code != ErrorCode.UNKNOWN_BLOB.value or not blobs:
                raise
            log.info("job %s: a blob was evicted before the submit; uploading again", job.id)
            await self.upload(blobs, force=True)
            return await self._submit_once(job)

    async def _submit_once(self, job: JobRequest) -> int:
        self._active[job.id] = "submitted"
        try:
            answer = await self._request(encode_message(Submit(job)), lambda m: _about(m, job.id))
        except ClientError:
            self._active.pop(job.id, None)
            raise
        return answer.position if isinstance(answer, Queued) else 0

    async def cancel(self, job_id: str) -> None:
        """Ask the server to cancel; a ``JobCancelled`` (or the job's final event) follows."""
        if not self.connected:
            raise NotConnected(f"not connected to {self.url} ({self.state.value})")
        await self._ws.send(encode_message(Cancel(job_id)))

    async def query_models(self) -> ModelsAnswer:
        return await self._request(encode_message(QueryModels()), lambda m: isinstance(m, ModelsAnswer))

    async def query_queue(self) -> QueueAnswer:
        return await self._request(encode_message(QueryQueue()), lambda m: isinstance(m, QueueAnswer))


def _about(msg: Any, job_id: str) -> bool:
    return isinstance(msg, (Queued, Started, Done, Cancelled)) and msg.job_id == job_id


def _answers(err: Error, accepts: Callable[[Any], bool]) -> bool:
    """An error answers the pending request when it names no job, or names the job the request is about."""
    if err.job_id is None:
        return True
    return accepts(Queued(err.job_id, 0))
