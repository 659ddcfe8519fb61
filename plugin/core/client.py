"""asyncio client of protocol v1 on ``websockets``: handshake, requests, events, reconnect and resume.

The client never owns or blocks the event loop: every public method is a coroutine or a plain
call, and events reach listeners as synchronous calls on the loop's thread (inside Krita that
is the Qt thread, because a QTimer pumps the loop). Its two background tasks (the connection
supervisor and the post-reconnect reconciliation) report any exception as a ``ClientFailure``.

The protocol itself (hello checks, job states, which answer belongs to which request) is the
sans-I/O ``ClientConnection`` of ``latentbrush.protocol.client_connection``; this class only moves its
frames over a socket. Requests that expect an answer are serialized all the same: a 1.0 server
answers queries in order, and an error about a blob names no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

from latentbrush.protocol import (
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    BlobHeader,
    BlobsAnswer,
    Capabilities,
    ClientHello,
    Error,
    ErrorCode,
    JobRequest,
    ModelsAnswer,
    ProtocolError,
    QueueAnswer,
    Queued,
    ServerHello,
    blob_hash,
    encode_frame,
)
from latentbrush.protocol import events as pev
from latentbrush.protocol.client_connection import ClientConnection, JobBook
from latentbrush.protocol.transport import CLOSE_SUPERSEDED

from . import events as ev
from .connection import (
    ClientError,
    ConnectError,
    ConnectionLost,
    NotConnected,
    RequestRefused,
    RequestTimeout,
    is_loopback_url,
    open_connection,
)
from .events import ClientEvent, ConnectionState, Listener
from .patches import PatchBases
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
    "RequestTimeout",
]

log = logging.getLogger("latentbrush.plugin.client")

MAX_QUERY_HASHES = 64  # QueryBlobs.hashes items_max
THREAD_BYTES = 4 * 1024 * 1024  # hashing (or diffing) a blob this big takes milliseconds: off the host's loop


async def _off_loop(blob: Blob, work: Callable[[], Any]) -> Any:
    """``work()`` on a thread for a large blob (hashlib and numpy let the loop run meanwhile), else here."""
    return await asyncio.to_thread(work) if len(blob.payload) >= THREAD_BYTES else work()


@dataclass(frozen=True)
class ReconnectPolicy:
    """How the client retries a dropped link, and how long running jobs wait for it.

    Exponential backoff between attempts, at most ``max_attempts`` (None: until closed), then the
    state is FAILED. Jobs that were running when the link dropped end as failed (code
    ``CONNECTION_LOST``) when it is not back within ``job_grace`` seconds (None: they wait for the
    attempts to run out). While waiting, a RECONNECTING event goes out every ``tick`` seconds.
    """

    initial_delay: float = 0.5
    max_delay: float = 10.0
    factor: float = 2.0
    max_attempts: int | None = 8
    job_grace: float | None = 10.0
    tick: float = 1.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))

    def countdown(self, attempt: int) -> tuple[float, ...]:
        """Seconds left before ``attempt`` at each tick of the wait: (delay, delay - tick, ...), all > 0."""
        delay, tick = self.delay(attempt), max(self.tick, 1e-3)
        return tuple(delay - i * tick for i in range(math.ceil(delay / tick - 1e-9)))


@dataclass(frozen=True)
class Blob:
    """An image to upload: raw bytes in a protocol format ("rgba8", "bgra8", "gray8", "png", ...)."""

    payload: bytes | bytearray | memoryview  # sent as it is, never copied; not to be changed once given here
    format: str
    width: int
    height: int

    @cached_property
    def hash(self) -> str:  # once per blob: 40 ms for 64 MiB
        return blob_hash(self.payload)


@dataclass
class ClientStats:
    blobs_uploaded: int = 0
    blobs_skipped: int = 0  # the server already had them
    blobs_patched: int = 0  # of those uploaded, sent as the changed box of an earlier upload (1.1)
    bytes_uploaded: int = 0  # blob frames, headers included
    reconnects: int = 0


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
        self._conn: ClientConnection | None = None  # the protocol state of the current socket
        self._book = JobBook()  # jobs not yet final, across reconnects
        self._supervisor: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._request_lock: asyncio.Lock | None = None
        self._waiters: dict[str, asyncio.Future[Any]] = {}  # request key -> its answer
        self._closing = False
        self._abandoned: set[str] = set()  # jobs ended here (cancelled offline, given up): the server is told
        self._grace: asyncio.TimerHandle | None = None  # ends the running jobs if the link stays down
        self.patching = True  # upload a changed raw image as a patch of the previous one (1.1 servers)
        self._bases = PatchBases()  # what this connection uploaded, as bases for patches
        self._streams: dict[str, str] = {}  # live stream -> its newest job (the 1.0 fallback of SPEC.md 9.11)

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

    def _set_state(self, state: ConnectionState, message: str = "", attempt: int = 0, resumed: bool = False,
                   retry_in: float | None = None) -> None:
        self.state = state
        limit = self.reconnect_policy.max_attempts if state in (ConnectionState.RECONNECTING,
                                                                ConnectionState.FAILED) else None
        self._emit(ev.ConnectionChanged(state, message, attempt, self.hello, resumed, retry_in, limit))

    # ----------------------------------------------------------------------------- connection

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED and self._ws is not None

    @property
    def active_jobs(self) -> dict[str, str]:
        """Job id -> state of the jobs this client submitted or resumed that have not ended."""
        return self._book.states()

    @property
    def minor(self) -> int:
        """The negotiated minor protocol version of the current connection (0 before one)."""
        return self._conn.minor if self._conn is not None else 0

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
        self._stop_grace()
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
        self._fail_waiters(NotConnected("the client was closed"))
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
        conn = ClientConnection(hello, self._book)
        ws, accepted = await open_connection(self.url, conn, open_timeout=self.open_timeout)
        self._bases.clear()  # patches name blobs this connection uploaded (the server may have restarted)
        self.hello, self.client_id, self._ws, self._conn = accepted.hello, accepted.hello.client_id, ws, conn
        return accepted.hello

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
            if self._conn is not None:
                self._conn.closed()
            self._fail_waiters(ConnectionLost(reason))
            if getattr(ws, "close_code", None) == CLOSE_SUPERSEDED:  # taking the session back would ping-pong
                self._give_up("another connection resumed this session (close code 4000)")
                return
            if not await self._reconnect(reason):
                return

    async def _reconnect(self, reason: str) -> bool:
        old_id = self.client_id
        policy = self.reconnect_policy
        log.warning("%s; reconnecting", reason)
        self._start_grace()
        attempt = 0
        while not self._closing:
            attempt += 1
            if policy.max_attempts is not None and attempt > policy.max_attempts:
                self._give_up(f"gave up after {policy.max_attempts} reconnect attempts ({reason})")
                return False
            for left in policy.countdown(attempt):  # a RECONNECTING event per tick: the UI's countdown
                if self._closing:
                    return False
                self._set_state(ConnectionState.RECONNECTING, reason, attempt, retry_in=left)
                await asyncio.sleep(min(policy.tick, left))
            try:
                hello = await self._open()
            except ConnectError as exc:
                if exc.fatal:
                    self._give_up(str(exc))
                    return False
                reason = str(exc)
                log.info("reconnect attempt %d failed: %s", attempt, reason)
                continue
            self._stop_grace()
            self.stats.reconnects += 1
            resumed = bool(hello.resumed and hello.client_id == old_id)
            self._set_state(ConnectionState.CONNECTED, "reconnected", attempt, resumed)
            if not resumed:
                self._abandoned.clear()  # a new session: the old one's jobs are gone with it
                self._fail_active("the server restarted and no longer knows this job; submit it again")
            elif len(self._book) or self._abandoned:
                self._reconciler = asyncio.get_running_loop().create_task(self._reconcile())
                self._reconciler.add_done_callback(self._task_done)
            return True
        return False

    def _give_up(self, message: str) -> None:
        log.warning("giving up: %s", message)
        self._stop_grace()
        self.abandon_all(ev.CONNECTION_LOST, f"connection lost: {message}")
        self._set_state(ConnectionState.FAILED, message)

    def _start_grace(self) -> None:
        grace = self.reconnect_policy.job_grace
        if grace is not None and self._grace is None and len(self._book):
            self._grace = asyncio.get_running_loop().call_later(grace, self._grace_over, grace)

    def _stop_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _grace_over(self, grace: float) -> None:
        self._grace = None
        self.abandon_all(ev.CONNECTION_LOST, f"the connection did not come back within {grace:g} s")

    def abandon_all(self, code: str, message: str) -> list[str]:
        """End every running job here, as ``JobFailed(code, message)``; the server is told to cancel them
        if this client reaches it again. Returns their ids. For a server known to be gone (its process
        exited) or a link that stayed down too long."""
        ids = list(self._book.states())
        for job_id in ids:
            self._book.withdraw(job_id)
            self._abandoned.add(job_id)
        for job_id in ids:
            self._emit(ev.JobFailed(job_id, code, message))
        return ids

    async def _reconcile(self) -> None:
        """After a resume: cancel what was given up meanwhile; the server replays what we missed, and
        jobs it no longer lists are lost."""
        for job_id in sorted(self._abandoned):
            if self.connected and self._conn is not None:
                with contextlib.suppress(Exception):  # best effort: the job already ended here
                    await self._ws.send(self._conn.cancel(job_id))
        if not len(self._book):
            return
        try:
            answer = await self.query_queue()
        except ClientError as exc:
            log.warning("queue query after reconnect failed: %s", exc)
            return
        for event in self._book.reconcile(answer):
            self._emit(event)

    def _fail_active(self, message: str) -> None:
        for event in self._book.lose_all(message):
            self._emit(event)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("client task failed", exc_info=exc)
            self._emit(ev.ClientFailure(f"client task failed: {exc!r}", exc))

    # ----------------------------------------------------------------------------- incoming

    def _dispatch(self, raw: str | bytes) -> None:
        conn = self._conn
        if conn is None:
            return
        events = conn.receive_text(raw) if isinstance(raw, str) else conn.receive_frame(raw)
        for event in events:
            if isinstance(event, pev.Answer):
                future = self._waiters.pop(event.key, None)
                if future is not None and not future.done():
                    future.set_result(event.message)
                if isinstance(event.message, Error):
                    continue  # the request raises RequestRefused: reported once, to the caller
            elif isinstance(event, ev.ServerError):
                log.warning("server: %s: %s", event.code, event.message)
                self._emit(event)
            elif not isinstance(event, (pev.HelloAccepted, pev.HandshakeFailed)):
                job_id = getattr(event, "job_id", None)
                if job_id is not None and job_id in self._abandoned:  # it already ended here
                    self._book.withdraw(job_id)
                    if isinstance(event, ev.FINAL_EVENTS):
                        self._abandoned.discard(job_id)
                    continue
                self._emit(event)

    # ----------------------------------------------------------------------------- requests

    async def _request(self, make: Callable[[ClientConnection], tuple[str, Any] | ProtocolError]) -> Any:
        """Send the request ``make`` builds on the current connection and wait for its answer."""
        if self._request_lock is None:
            raise NotConnected("call connect() first")
        from websockets.exceptions import ConnectionClosed

        async with self._request_lock:
            conn = self._conn
            if not self.connected or conn is None:
                raise NotConnected(f"not connected to {self.url} ({self.state.value})")
            made = make(conn)
            if isinstance(made, ProtocolError):  # this server cannot take the request (an older minor)
                raise RequestRefused(Error.from_error(made))
            key, data = made
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters[key] = future
            try:
                await self._ws.send(data)
                answer = await asyncio.wait_for(future, self.request_timeout)
            except asyncio.TimeoutError:
                conn.forget(key)
                raise RequestTimeout(f"no answer from the server within {self.request_timeout:.0f} s")
            except (ConnectionClosed, OSError) as exc:  # only the transport failing is a lost connection
                conn.forget(key)
                raise ConnectionLost(f"connection lost while sending: {exc!r}")
            finally:
                self._waiters.pop(key, None)
        if isinstance(answer, Error):
            raise RequestRefused(answer)
        return answer

    def _fail_waiters(self, exc: ClientError) -> None:
        waiters, self._waiters = self._waiters, {}
        for future in waiters.values():
            if not future.done():
                future.set_exception(exc)

    async def query_blobs(self, hashes: Iterable[str]) -> set[str]:
        """The subset of ``hashes`` the server already holds."""
        wanted = list(dict.fromkeys(hashes))
        have: set[str] = set()
        for i in range(0, len(wanted), MAX_QUERY_HASHES):
            chunk = wanted[i : i + MAX_QUERY_HASHES]
            answer = await self._request(partial(ClientConnection.query_blobs, hashes=chunk))
            if not isinstance(answer, BlobsAnswer):
                raise ClientError(f"unexpected answer to a blob query: {type(answer).__name__}")
            have.update(answer.have)
        return have

    async def upload(self, blobs: Iterable[Blob], *, force: bool = False) -> list[str]:
        """Upload what the server lacks (everything with ``force``); returns each blob's hash in order."""
        blobs = list(blobs)
        hashes = [await _off_loop(blob, partial(getattr, blob, "hash")) for blob in blobs]
        if not blobs:
            return []
        have = set() if force else await self.query_blobs(hashes)
        limit = self.hello.limits.max_frame_bytes if self.hello else None
        for blob, digest in zip(blobs, hashes, strict=True):
            if digest in have:
                self.stats.blobs_skipped += 1
                continue
            if not await self._upload_patch(blob, digest):
                header = BlobHeader(hash=digest, format=blob.format, width=blob.width, height=blob.height)  # type: ignore[arg-type]
                size = len(encode_frame(header, b"")) + len(blob.payload)
                if limit is not None and size > limit:
                    raise ClientError(f"a {blob.width}x{blob.height} {blob.format} image is {size} bytes, over the "
                                      f"server's frame limit of {limit}; select a smaller area")
                await self._send_blob(header, blob.payload)
            self._bases.remember(blob.payload, blob.format, blob.width, blob.height, digest)
            have.add(digest)
            self.stats.blobs_uploaded += 1
        return hashes

    async def _upload_patch(self, blob: Blob, digest: str) -> bool:
        """Send ``blob`` as the changed box of this connection's last upload of its size and format, when
        the server speaks 1.1 and the box is small; False: send it whole."""
        if not self.patching or self.minor < 1:
            return False
        patch = await _off_loop(blob, partial(self._bases.patch, blob.payload, blob.format, blob.width, blob.height,
                                              digest))
        if patch is None:
            return False
        try:
            await self._send_blob(patch.header, patch.payload)
        except RequestRefused as exc:  # the base was evicted, say: the whole image always works
            log.info("patch of %s refused (%s, field %s): uploading it whole", digest, exc.error.code, exc.error.field)
            self._bases.forget(blob.format, blob.width, blob.height)
            return False
        self.stats.blobs_patched += 1
        return True

    async def _send_blob(self, header: BlobHeader, payload: bytes | bytearray | memoryview) -> None:
        # fragments of the payload itself: no frame-sized copy here, and the server hashes while they arrive
        self.stats.bytes_uploaded += len(encode_frame(header, b"")) + len(payload)  # sent, even if refused
        await self._request(partial(ClientConnection.upload_parts, header=header, payload=payload))

    async def submit(self, job: JobRequest, blobs: Iterable[Blob] = ()) -> int:
        """Upload ``blobs`` the server lacks, then queue ``job``; returns its queue position.

        Its events follow through the listeners. A refusal raises RequestRefused (and is not
        also sent as an event). A blob evicted between upload and submit is sent again once.
        """
        blobs = list(blobs)
        await self.upload(blobs)
        try:
            position = await self._submit_once(job)
        except RequestRefused as exc:
            if exc.error.code != ErrorCode.UNKNOWN_BLOB.value or not blobs:
                raise
            log.info("job %s: a blob was evicted before the submit; uploading again", job.id)
            await self.upload(blobs, force=True)
            position = await self._submit_once(job)
        await self._supersede(job)
        return position

    async def _supersede(self, job: JobRequest) -> None:
        """A live stream's newest job wins (SPEC.md 9.11). A 1.1 server sees to it; a 1.0 server knows no
        streams (the job went without one), so the client cancels the stream's previous job itself."""
        if job.stream is None:
            return
        previous, self._streams[job.stream] = self._streams.get(job.stream), job.id
        if previous is not None and self.minor == 0 and previous in self._book:
            await self.cancel(previous)

    async def _submit_once(self, job: JobRequest) -> int:
        answer = await self._request(lambda conn: conn.submit(job))
        return answer.position if isinstance(answer, Queued) else 0

    async def cancel(self, job_id: str) -> None:
        """Ask the server to cancel; a ``JobCancelled`` (or the job's final event) follows.

        While the link is down the job ends here at once (a ``JobCancelled`` now), and the server is
        asked to cancel it once the link is back. Raises NotConnected only before ``connect``.
        """
        from websockets.exceptions import ConnectionClosed

        if self._request_lock is None:
            raise NotConnected("call connect() first")
        if self.connected and self._conn is not None:
            try:
                await self._ws.send(self._conn.cancel(job_id))
                return
            except (ConnectionClosed, OSError) as exc:
                log.info("cancel of %s could not be sent (%r): ending it here", job_id, exc)
        known = job_id in self._book
        self._book.withdraw(job_id)
        self._abandoned.add(job_id)
        if known:
            self._emit(ev.JobCancelled(job_id))

    async def query_models(self) -> ModelsAnswer:
        answer = await self._request(lambda conn: conn.query_models())
        if not isinstance(answer, ModelsAnswer):
            raise ClientError(f"unexpected answer to a models query: {type(answer).__name__}")
        return answer

    async def query_queue(self) -> QueueAnswer:
        answer = await self._request(lambda conn: conn.query_queue())
        if not isinstance(answer, QueueAnswer):
            raise ClientError(f"unexpected answer to a queue query: {type(answer).__name__}")
        return answer
