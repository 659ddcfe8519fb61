"""The WebSocket server: handshake checks, the hello, and dispatch of every client message.

One asyncio event loop serves all connections; nothing here blocks it. Blob hashing and
decoding run in threads, engine work on the worker thread (``worker.py``), and what goes back
to a client leaves through its connection's ``Outbox``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

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
    check_hello,
    decode_client_frame,
    decode_client_message,
    encode_message,
)
from latentbrush.protocol.codec import MAX_HEADER_BYTES
from latentbrush.protocol.messages import HASH_PATTERN
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .admission import admit
from .auth import bearer_token, refusal_reason, token_matches
from .blobs import BlobCache
from .config import ServerConfig, server_version
from .images import blob_size, decode_blob
from .jobs import JobRecord
from .outbox import Outbox
from .service import JobService, Session
from .worker import EngineLike, Worker

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008  # RFC 6455: policy violation (bad token)
CLOSE_PROTOCOL = 1002  # RFC 6455: protocol error (version mismatch)
CLOSE_SUPERSEDED = 4000  # SPEC.md 11: another connection resumed this session
FRAME_SLACK = MAX_HEADER_BYTES + 1024 * 1024  # frames a little over the limit get a named error, not a cut
_HASH = re.compile(HASH_PATTERN)


class LatentbrushServer:
    """``async with LatentbrushServer(config, engine_factory, token) as server: ... server.url``"""

    def __init__(self, config: ServerConfig, engine_factory: Callable[[], EngineLike], token: str) -> None:
        self.config = config
        self._token = token
        self._limits = config.limits()
        self._worker = Worker(engine_factory)
        self._blobs = BlobCache(config.blob_cache_bytes)
        self._service = JobService(
            self._worker, self._blobs, max_queue=config.max_queue, retention_bytes=config.retention_bytes
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
        reason = refusal_reason(request.headers.raw_items(), host, self.config.host, self.config.allow_remote)
        if reason is None:
            try:
                authorization = request.headers.get("Authorization")
            except MultipleValuesError:  # ambiguous credentials: refuse, rather than fail with HTTP 500
                log.warning("refused handshake from %s: several Authorization headers", connection.remote_address)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized: several Authorization headers\n")
            given = bearer_token(authorization)
            if given is not None and not token_matches(self._token, given):
                log.warning("refused handshake from %s: wrong bearer token", connection.remote_address)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized: wrong token\n")
            return None
        log.warning("refused handshake from %s: %s", connection.remote_address, reason)
        return connection.respond(HTTPStatus.FORBIDDEN, f"forbidden_origin: {reason}\n")

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
        )

    async def _reject(self, ws: ServerConnection, err: ProtocolError, close_code: int) -> None:
        await ws.send(encode_message(Error.from_error(err)))
        await ws.close(close_code, err.code.value)

    async def _await_hello(self, ws: ServerConnection) -> ClientHello | None:
        """Read until a valid hello; anything else first gets NOT_READY (or its decode error)."""
        pre_authorized = bearer_token(ws.request.headers.get("Authorization")) is not None if ws.request else False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.hello_timeout_s
        while True:
            try:
                data = await asyncio.wait_for(ws.recv(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                await ws.close(CLOSE_POLICY, "no hello")
                return None
            if isinstance(data, bytes):
                await ws.send(encode_message(Error(ErrorCode.NOT_READY.value, "send hello first", "type")))
                continue
            msg = decode_client_message(data)
            if isinstance(msg, ProtocolError):
                hello_type, mismatch = _peek_hello(data)
                if mismatch is not None:
                    await self._reject(ws, mismatch, CLOSE_PROTOCOL)
                    return None
                # a broken hello hears what is wrong with it; anything else, that hello comes first
                not_ready = Error(ErrorCode.NOT_READY.value, "send hello first", "type")
                await ws.send(encode_message(Error.from_error(msg) if hello_type else not_ready))
                continue
            if not isinstance(msg, ClientHello):
                await ws.send(encode_message(Error(ErrorCode.NOT_READY.value, "send hello first", "type")))
                continue
            err = check_hello(msg)
            if err is not None:
                await self._reject(ws, err, CLOSE_PROTOCOL)
                return None
            if not (pre_authorized and not msg.token) and not token_matches(self._token, msg.token):
                await self._reject(ws, ProtocolError(ErrorCode.UNAUTHORIZED, "wrong token", "token"), CLOSE_POLICY)
                return None
            return msg

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            hello = await self._await_hello(ws)
        except ConnectionClosed:
            return
        if hello is None:
            return
        outbox = Outbox(ws)
        session, resumed, previous = self._service.attach(hello.client_id, outbox)
        if previous is not None:
            self._service.spawn(previous.connection.close(CLOSE_SUPERSEDED, "session resumed elsewhere"), "close old")
        log.info(
            "client %s (%s) connected from %s%s",
            session.client_id,
            hello.client[:64],
            ws.remote_address,
            " (resumed)" if resumed else "",
        )
        outbox.message(encode_message(self._server_hello(session.client_id, resumed)))
        self._service.replay(session)
        sender = asyncio.create_task(outbox.run(), name=f"send {session.client_id}")
        sender.add_done_callback(lambda task: _close_on_failure(task, ws))
        try:
            async for data in ws:
                try:
                    if isinstance(data, bytes):
                        await self._on_blob(session, data)
                    else:
                        await self._on_text(session, data)
                except Exception:  # a bug must cost one message, not the connection or the server
                    log.exception("client %s: message handling failed", session.client_id)
                    session.error(ProtocolError(ErrorCode.INTERNAL, "the server failed to handle that message"))
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

    # ------------------------------------------------------------------------- messages

    async def _on_text(self, session: Session, data: str) -> None:
        msg = decode_client_message(data)
        if isinstance(msg, ProtocolError):
            session.error(msg)
        elif isinstance(msg, Submit):
            self._on_submit(session, msg)
        elif isinstance(msg, Cancel):
            err = self._service.cancel(session, msg.job_id)
            if err is not None:
                session.error(err, msg.job_id)
        elif isinstance(msg, QueryBlobs):
            have, missing = self._blobs.partition(msg.hashes)
            session.send(BlobsAnswer(have, missing))
        elif isinstance(msg, QueryQueue):
            session.send(QueueAnswer(self._service.jobs_of(session)))
        elif isinstance(msg, QueryModels):
            info = await self._worker.describe()
            session.send(
                ModelsAnswer(tuple(info.models), tuple(info.upscalers), tuple(info.samplers), info.default_model or "")
            )
        elif isinstance(msg, ClientHello):
            session.error(ProtocolError(ErrorCode.BAD_FIELD, "hello was already received", "type"))
        else:
            session.error(ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{type(msg).__name__} is not handled", "type"))

    def _on_submit(self, session: Session, submit: Submit) -> None:
        job = submit.job
        if self._service.holds(session, job.id):  # no job_id in the error: the earlier job goes on
            session.send(Error(ErrorCode.DUPLICATE_JOB.value, f"job {job.id} is still held by this session", "job.id"))
            return
        admitted = admit(job, self._limits, self._blobs, self._worker.check)
        if isinstance(admitted, ProtocolError):
            session.error(admitted, job.id)
            return
        image, mask = admitted
        err = self._service.submit(session, JobRecord(job, session.client_id, image, mask))
        if err is not None:
            session.error(err, job.id)

    async def _on_blob(self, session: Session, data: bytes) -> None:
        # Hashing and decoding take tens of milliseconds per megapixel: never on the loop.
        frame = await asyncio.to_thread(decode_client_frame, data, self.config.max_frame_bytes, self.config.max_pixels)
        if isinstance(frame, ProtocolError):
            self._blob_error(session, frame, data)
            return
        header, payload = frame
        pixels = self._blobs.get(header.hash)
        if pixels is None:
            decoded = await asyncio.to_thread(decode_blob, header, payload)
            if isinstance(decoded, ProtocolError):
                self._blob_error(session, decoded, data)
                return
            pixels = decoded
            self._blobs.put(header.hash, pixels)
        width, height = blob_size(pixels)
        session.send(BlobStored(header.hash, width, height))

    @staticmethod
    def _blob_error(session: Session, err: ProtocolError, data: bytes) -> None:
        hint = _blob_hash_hint(data)
        message = f"blob {hint}: {err.message}" if hint else err.message
        session.error(ProtocolError(err.code, message, err.field))


def _close_on_failure(task: asyncio.Task[None], ws: ServerConnection) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sender failed", exc_info=task.exception())
        ws.transport.abort()  # the reader then ends, and the session detaches


def _peek_hello(data: str) -> tuple[bool, ProtocolError | None]:
    """For a text that did not decode: (is it meant as a hello?, a version mismatch to report).

    A hello of another protocol version may not parse as ours; the client still hears why.
    """
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return False, None
    if not isinstance(obj, dict) or obj.get("type") != "hello":
        return False, None
    version = obj.get("protocol")
    if isinstance(version, int) and not isinstance(version, bool) and version != PROTOCOL_VERSION:
        message = f"server speaks protocol {PROTOCOL_VERSION}, client asked for {version}"
        return True, ProtocolError(ErrorCode.VERSION_MISMATCH, message, "protocol")
    return True, None


def _blob_hash_hint(data: bytes) -> str | None:
    """The hash a broken upload announced, to help the client match the error to its blob."""
    match = re.search(rb'"hash"\s*:\s*"(sha256:[0-9a-f]{64})"', data[: 4 + MAX_HEADER_BYTES])
    return match.group(1).decode() if match and _HASH.fullmatch(match.group(1).decode()) else None
