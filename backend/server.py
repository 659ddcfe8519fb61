"""The WebSocket server: handshake checks, the hello, and dispatch of every client message.

One asyncio event loop serves all connections; nothing here blocks it. A blob is read fragment
by fragment, each hashed as it arrives (a big one on a thread), into the buffer that becomes its
pixels; decoding runs in threads, engine work on the worker thread (``worker.py``), and what goes
back to a client leaves through its connection's ``Outbox``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any, Protocol

import numpy as np
from latentbrush.protocol import (
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    BlobsAnswer,
    BlobStored,
    Cancel,
    ClientHello,
    Error,
    ErrorCode,
    ModelsAnswer,
    ProtocolError,
    QueryBlobs,
    QueryModels,
    QueryQueue,
    QueueAnswer,
    ServerHello,
    Submit,
)
from latentbrush.protocol.codec import MAX_HEADER_BYTES
from latentbrush.protocol.server_connection import (
    BlobReceived,
    BlobStream,
    Close,
    HelloReceived,
    Send,
    ServerEvent,
    blob_error,
)
from latentbrush.protocol.server_connection import Request as ClientRequest
from latentbrush.protocol.server_connection import ServerConnection as Connection
from latentbrush.protocol.transport import CLOSE_SUPERSEDED
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .admission import admit
from .auth import authorization_refusal, bearer_token, refusal_reason, token_matches
from .blobs import BlobCache
from .config import ServerConfig, server_version
from .images import apply_patch, blob_size, decode_blob
from .jobs import JobRecord
from .outbox import Outbox
from .service import JobService
from .sessions import JobQueue, Session
from .spool import Spool
from .worker import EngineLike, Worker

log = logging.getLogger(__name__)

FRAME_SLACK = MAX_HEADER_BYTES + 1024 * 1024  # frames a little over the limit get a named error, not a cut
# A fragment at least this big is hashed on a thread (a client that sends a blob unfragmented); smaller
# ones on the loop as they arrive, which costs it well under a millisecond each.
THREAD_FEED_BYTES = 4 * 1024 * 1024


def _pixel_buffer(size: int) -> np.ndarray:
    # a blob's payload lands here and, decoded in place, stays as its pixels: no zeroing pass, no copy
    return np.empty(size, dtype=np.uint8)


class Tenants(Protocol):
    """Several people behind one server, each with a token of their own (a studio: ``cluster/artists.py``)."""

    def identify(self, token: str) -> str | None:
        """The name a token stands for, or None when it is unknown or revoked."""

    def queue(self, tenant_of: Callable[[JobRecord], str]) -> JobQueue:
        """The job queue, fair between tenants (``tenant_of`` names a queued job's tenant)."""

    def refusal(self, tenant: str, unfinished: int) -> ProtocolError | None:
        """Why ``tenant``, with ``unfinished`` jobs queued or running already, may not submit one more."""


class LatentbrushServer:
    """``async with LatentbrushServer(config, engine_factory, token) as server: ... server.url``

    ``tenants`` replaces the one token with per-person tokens; ``concurrency`` jobs run at once
    (more than one only for engines that run jobs elsewhere, like ``cluster/engine.py``).
    """

    def __init__(
        self,
        config: ServerConfig,
        engine_factory: Callable[[], EngineLike],
        token: str,
        *,
        tenants: Tenants | None = None,
        concurrency: int = 1,
    ) -> None:
        self.config = config
        self._token = token
        self._tenants = tenants
        self._tenant_of_client: dict[str, str] = {}  # session id -> the tenant its hello named
        self._limits = config.limits()
        self._worker = Worker(engine_factory, concurrency)
        self._blobs = BlobCache(config.blob_cache_bytes)
        queue = tenants.queue(self._tenant_of) if tenants is not None else None
        self._service = JobService(
            self._worker, self._blobs, max_queue=config.max_queue, retention_bytes=config.retention_bytes,
            queue=queue, concurrency=concurrency,
            spool=Spool(config.spool_dir) if config.spool_dir is not None else None,
        )
        self._info: Any = None
        self._ws_server: Server | None = None

    # ------------------------------------------------------------------------- life cycle

    async def start(self) -> None:
        self._info = await self._worker.start()
        self._service.start()
        self._ws_server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._check_request,
            compression=None,  # deflate on pixels burns CPU for nothing
            max_size=self.config.max_frame_bytes + FRAME_SLACK,
            max_queue=4,  # incoming frames buffered per connection; blobs can be large
            server_header=self.server_name,
            ping_timeout=60,  # a host busy painting may answer pings late
        )
        info = self._info
        log.info(
            "%s protocol %d.%d device %s dtype %s models %s default %r upscalers %s",
            self.server_name,
            PROTOCOL_VERSION,
            PROTOCOL_MINOR,
            info.device,
            info.dtype,
            [m.name for m in info.models],
            info.default_model,
            list(info.upscalers),
        )

    async def stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
        await self._service.stop()
        await asyncio.to_thread(self._worker.close)
        log.info("stopped")

    async def __aenter__(self) -> LatentbrushServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._ws_server is None:
            raise RuntimeError("server not started")
        return int(self._ws_server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.config.host
        return f"ws://{f'[{host}]' if ':' in host else host}:{self.port}"

    # ------------------------------------------------------------------------- handshake

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse browsers and foreign Host names before the WebSocket opens (HTTP 403)."""
        try:
            host = request.headers.get("Host")
        except MultipleValuesError:
            host = None
        port = int(connection.local_address[1])  # the port this request came in on
        reason = refusal_reason(request.headers.raw_items(), host, self.config.host, port, self.config.allow_remote)
        if reason is None:
            try:
                authorization = request.headers.get("Authorization")
            except MultipleValuesError:  # ambiguous credentials: refuse, rather than fail with HTTP 500
                log.warning("refused handshake from %s: several Authorization headers", connection.remote_address)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized: several Authorization headers\n")
            refused = self._authorization_refusal(authorization)
            if refused is not None:
                log.warning("refused handshake from %s: %s", connection.remote_address, refused)
                return connection.respond(HTTPStatus.UNAUTHORIZED, f"unauthorized: {refused}\n")
            return None
        log.warning("refused handshake from %s: %s", connection.remote_address, reason)
        return connection.respond(HTTPStatus.FORBIDDEN, f"forbidden_origin: {reason}\n")

    def _authorization_refusal(self, authorization: str | None) -> str | None:
        if self._tenants is None:
            return authorization_refusal(authorization, self._token)
        given = bearer_token(authorization)
        if given is not None and self._tenants.identify(given) is None:
            return "unknown or revoked token"
        return None  # absent, or another scheme: the hello's token decides

    def _identify(self, token: str) -> str | None:
        """The tenant a token names ("" for the server's one token), or None: refused."""
        if self._tenants is None:
            return "" if token_matches(self._token, token) else None
        return self._tenants.identify(token)

    def _tenant_of(self, record: JobRecord) -> str:
        return self._tenant_of_client.get(record.client_id, record.client_id)

    @property
    def engine(self) -> EngineLike:
        """The engine the worker built (after ``start``); for tests and diagnostics."""
        return self._worker.engine

    def job_state(self, client_id: str, job_id: str) -> str | None:
        """A job's state as this server sees it (None: not held); for tests and diagnostics."""
        session = self._service.sessions.get(client_id)
        record = session.jobs.get(job_id) if session is not None else None
        return record.state if record is not None else None

    @property
    def server_name(self) -> str:
        return f"latentbrush-server/{server_version()}"

    def _server_hello(self, client_id: str, resumed: bool) -> ServerHello:
        info = self._info
        return ServerHello(
            protocol=PROTOCOL_VERSION,
            minor=PROTOCOL_MINOR,
            server=self.server_name,
            client_id=client_id,
            resumed=resumed,
            device=str(info.device),
            dtype=str(info.dtype),
            models=tuple(info.models),
            upscalers=tuple(info.upscalers),
            samplers=tuple(info.samplers),
            limits=self._limits,
            default_model=info.default_model or "",
            controls=tuple(info.controls),
            preprocessors=tuple(info.preprocessors),
            references=tuple(info.references),
            reference_modes=tuple(info.reference_modes),
            presets=dict(info.presets),
            loras=tuple(getattr(info, "loras", ())),  # engines of tests may describe themselves without them
            embeddings=tuple(getattr(info, "embeddings", ())),
        )

    async def _await_hello(self, ws: ServerConnection, conn: Connection) -> ClientHello | None:
        """Feed frames to the protocol's hello gate until it lets a hello through or closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.hello_timeout_s
        while True:
            try:
                data = await asyncio.wait_for(ws.recv(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                event: ServerEvent = conn.hello_timed_out()
            else:
                event = conn.receive_blob(data) if isinstance(data, bytes) else conn.receive_text(data)
            if isinstance(event, HelloReceived):
                return event.hello
            if isinstance(event, Close):
                await ws.send(event.text)
                await ws.close(event.code, event.reason)
                return None
            if isinstance(event, Send):
                await ws.send(event.text)

    def _connection(self, ws: ServerConnection) -> Connection:
        try:
            authorization = ws.request.headers.get("Authorization") if ws.request else None
        except MultipleValuesError:  # refused at the upgrade already; never authorized here
            authorization = None
        given = bearer_token(authorization)
        return Connection(
            token_ok=lambda token: self._identify(token) is not None,
            pre_authorized=given is not None and self._identify(given) is not None,
            max_frame_bytes=self.config.max_frame_bytes,
            max_pixels=self.config.max_pixels,
        )

    async def _handle(self, ws: ServerConnection) -> None:
        conn = self._connection(ws)
        try:
            hello = await self._await_hello(ws, conn)
        except ConnectionClosed:
            return
        if hello is None:
            return
        outbox = Outbox(ws)
        session, resumed, previous = self._service.attach(hello.client_id, outbox)
        if self._tenants is not None:
            for gone in self._tenant_of_client.keys() - self._service.sessions.keys():  # expired sessions
                del self._tenant_of_client[gone]
            self._tenant_of_client[session.client_id] = self._hello_tenant(ws, hello)
        if previous is not None:
            self._service.spawn(previous.connection.close(CLOSE_SUPERSEDED, "session resumed elsewhere"), "close old")
        log.info(
            "client %s (%s, protocol %d.%d) connected from %s%s",
            session.client_id,
            hello.client[:64],
            hello.protocol,
            conn.minor,
            ws.remote_address,
            " (resumed)" if resumed else "",
        )
        outbox.message(conn.accept(self._server_hello(session.client_id, resumed)))
        session.minor = conn.minor  # negotiated by accept: what the replay and every later message may use
        self._service.replay(session)
        sender = asyncio.create_task(outbox.run(), name=f"send {session.client_id}")
        sender.add_done_callback(lambda task: _close_on_failure(task, ws))
        try:
            while True:
                # frame by frame: a blob is hashed and stored while its later fragments are still arriving
                fragments = ws.recv_streaming()
                first = await anext(fragments)
                try:
                    if isinstance(first, str):
                        await self._on_text(session, conn, first + "".join([part async for part in fragments]))
                    else:
                        await self._on_blob(session, conn, first, fragments)
                except ConnectionClosed:
                    raise
                except Exception:  # a bug must cost one message, not the connection or the server
                    log.exception("client %s: message handling failed", session.client_id)
                    session.error(ProtocolError(ErrorCode.INTERNAL, "the server failed to handle that message"))
                    async for _ in fragments:  # the rest of that message: read and dropped, the socket stays usable
                        pass
        except ConnectionClosed:
            pass
        finally:
            outbox.close()
            await asyncio.gather(sender, return_exceptions=True)
            self._service.detach(session, outbox)
            log.info(
                "client %s disconnected (%s previews sent, %s replaced)",
                session.client_id,
                outbox.previews_sent,
                outbox.previews_replaced,
            )

    def _hello_tenant(self, ws: ServerConnection, hello: ClientHello) -> str:
        """Whom an accepted connection's token names (the Authorization header's, else the hello's)."""
        try:
            given = bearer_token(ws.request.headers.get("Authorization") if ws.request else None)
        except MultipleValuesError:
            given = None
        for token in (given, hello.token):
            tenant = self._identify(token) if token else None
            if tenant is not None:
                return tenant
        return ""

    def _unfinished_of(self, tenant: str) -> int:
        return sum(
            1
            for client_id, session in self._service.sessions.items()
            if self._tenant_of_client.get(client_id) == tenant
            for record in session.jobs.values()
            if not record.is_final
        )

    # ------------------------------------------------------------------------- messages

    async def _on_text(self, session: Session, conn: Connection, data: str) -> None:
        event = conn.receive_text(data)
        if isinstance(event, Send):
            session.outbox_text(event.text)
            return
        if not isinstance(event, ClientRequest):
            return
        msg = event.message
        if isinstance(msg, Submit):
            self._on_submit(session, msg)
        elif isinstance(msg, Cancel):
            err = self._service.cancel(session, msg.job_id)
            if err is not None:
                session.error(err, msg.job_id)
        elif isinstance(msg, QueryBlobs):
            have, missing = self._blobs.partition(msg.hashes)
            session.send(BlobsAnswer(have, missing, msg.request_id))
        elif isinstance(msg, QueryQueue):
            session.send(QueueAnswer(self._service.jobs_of(session), msg.request_id))
        elif isinstance(msg, QueryModels):
            try:
                info = await self._worker.describe()
            except Exception as exc:  # a broken models folder must answer the query, not leave it pending
                log.exception("describing the models failed")
                session.error(ProtocolError(ErrorCode.INTERNAL, f"listing the models failed: {exc}"),
                              request_id=msg.request_id)
                return
            session.send(ModelsAnswer(tuple(info.models), tuple(info.upscalers), tuple(info.samplers),
                                      info.default_model or "", msg.request_id))

    def _on_submit(self, session: Session, submit: Submit) -> None:
        job = submit.job
        if self._service.holds(session, job.id):  # no job_id in the error: the earlier job goes on
            session.send(Error(ErrorCode.DUPLICATE_JOB.value, f"job {job.id} is still held by this session", "job.id"))
            return
        admitted = admit(job, self._limits, self._blobs, self._worker.check)
        if isinstance(admitted, ProtocolError):
            session.error(admitted, job.id)
            return
        if self._tenants is not None:
            tenant = self._tenant_of_client.get(session.client_id, "")
            refused = self._tenants.refusal(tenant, self._unfinished_of(tenant))
            if refused is not None:
                session.error(refused, job.id)
                return
        err = self._service.submit(session, JobRecord(job, session.client_id, admitted))
        if err is not None:
            session.error(err, job.id)

    async def _on_blob(self, session: Session, conn: Connection, first: bytes, rest: AsyncIterator[Any]) -> None:
        stream = conn.receive_blob_stream(_pixel_buffer)
        await _feed(stream, first)
        async for chunk in rest:
            await _feed(stream, chunk)
        event = stream.finish()
        if isinstance(event, Send):
            session.outbox_text(event.text)
            return
        if not isinstance(event, BlobReceived):
            return
        header, payload = event.header, event.payload
        pixels = self._blobs.get(header.hash)  # a known address needs no decoding, patch or not
        if pixels is None:
            if header.base is not None:
                base = self._blobs.get(header.base)
                decoded = (await asyncio.to_thread(apply_patch, base, header, payload) if base is not None else
                           ProtocolError(ErrorCode.UNKNOWN_BLOB, f"no blob {header.base} on this server to patch; "
                                         "upload the whole image", "base"))
            else:  # decoding a bgra8 image swaps its channels: tens of milliseconds, never on the loop
                decoded = await asyncio.to_thread(decode_blob, header, payload)
            if isinstance(decoded, ProtocolError):
                session.error(blob_error(decoded, stream.head))
                return
            pixels = decoded
            self._blobs.put(header.hash, pixels)
        width, height = blob_size(pixels)
        session.send(BlobStored(header.hash, width, height))


async def _feed(stream: BlobStream, chunk: bytes) -> None:
    if len(chunk) >= THREAD_FEED_BYTES:
        await asyncio.to_thread(stream.feed, chunk)
    else:
        stream.feed(chunk)


def _close_on_failure(task: asyncio.Task[None], ws: ServerConnection) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sender failed", exc_info=task.exception())
        ws.transport.abort()  # the reader then ends, and the session detaches
