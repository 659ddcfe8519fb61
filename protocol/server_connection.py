"""The server side of a protocol connection, sans-I/O (see ``connection.py``).

``ServerConnection.receive_text``/``receive_blob`` return one event per frame: ``Send`` (an
answer the connection made by itself), ``Close``, ``HelloReceived``, ``Request`` or
``BlobReceived``. The server moves frames between its socket and this object, nothing more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from .codec import MAX_HEADER_BYTES, ClientFrameReader, decode_client_frame, decode_client_message, encode_message
from .connection import CLOSED, HANDSHAKE, OPEN
from .errors import ErrorCode, ProtocolError
from .lifecycle import check_hello, negotiated_minor
from .messages import (
    HASH_PATTERN,
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    BlobHeader,
    Cancel,
    ClientHello,
    Error,
    QueryBlobs,
    QueryModels,
    QueryQueue,
    ServerHello,
    Submit,
)
from .transport import CLOSE_NO_HELLO, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR

MAX_VERSION = 2**31 - 1  # ClientHello.protocol's range; a larger number is a bad field, not another version
_HASH_HINT = re.compile(rb'"hash"\s*:\s*"(sha256:[0-9a-f]{64})"')
_HASH = re.compile(HASH_PATTERN)
_NOT_READY = ProtocolError(ErrorCode.NOT_READY, "send hello first", "type")


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
            return Send(self.error(msg))
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

    def receive_blob_stream(self, allocate: Callable[[int], Any] = bytearray) -> BlobStream:
        """A binary frame that arrives in pieces: ``feed`` them to the returned stream, then ``finish()``.

        The same events as ``receive_blob`` for the joined bytes; the payload lands in one buffer from
        ``allocate(n)`` and is hashed as it comes (``codec.ClientFrameReader``).
        """
        reader = ClientFrameReader(self._max_frame_bytes, self._max_pixels, formats=self._blob_formats,
                                   allocate=allocate) if self.state == OPEN else None
        return BlobStream(self, reader)

    def send(self, msg: Any) -> str:
        return encode_message(msg)

    def error(self, err: ProtocolError, job_id: str | None = None, request_id: str | None = None) -> str:
        return encode_message(Error.from_error(err, job_id, request_id))


class BlobStream:
    """One binary frame in pieces (``ServerConnection.receive_blob_stream``). Pure: ``feed`` may run in a thread."""

    def __init__(self, conn: ServerConnection, reader: ClientFrameReader | None) -> None:
        self._conn = conn
        self._reader = reader  # None: the connection is not open, the frame is read and refused

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._reader is not None:
            self._reader.feed(chunk)

    @property
    def head(self) -> bytes:
        """The frame's first bytes (its header when it had one), for naming the blob in errors."""
        return bytes(self._reader.head[: 4 + MAX_HEADER_BYTES]) if self._reader is not None else b""

    def finish(self) -> ServerEvent:
        if self._reader is None:
            return Send(self._conn.error(_NOT_READY))
        frame = self._reader.result()
        if isinstance(frame, ProtocolError):
            return Send(self._conn.error(blob_error(frame, self.head)))
        header, payload = frame
        return BlobReceived(header, payload)


def blob_error(err: ProtocolError, data: bytes | bytearray | memoryview) -> ProtocolError:
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


