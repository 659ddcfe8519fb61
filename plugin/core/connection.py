"""Opening one protocol connection: websockets options, the hello exchange, refusals as ConnectError.

Also the exceptions every part of the client raises, so callers catch ``ClientError`` alone.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any
from urllib.parse import urlsplit

from latentbrush.protocol import (
    FATAL_CODES,
    ClientHello,
    Error,
    ProtocolError,
    ServerHello,
    decode_server_message,
    encode_message,
)

FIRST_MAX_SIZE = 512 * 1024 * 1024  # receive cap until the server hello states its limits
FRAME_OVERHEAD = 65540  # SPEC section 2: length prefix and the largest header on top of a raw RGBA result
CLOSE_SUPERSEDED = 4000  # SPEC section 2: another connection resumed this session


class ClientError(Exception):
    """Base of everything the client raises."""


class ConnectError(ClientError):
    """The server cannot be reached or refused the handshake; ``fatal`` means retrying will not help."""

    def __init__(self, message: str, *, fatal: bool = False, error: ProtocolError | Error | None = None):
        super().__init__(message)
        self.fatal = fatal
        self.error = error


class NotConnected(ClientError):
    pass


class ConnectionLost(ClientError):
    pass


class RequestRefused(ClientError):
    """The server answered a request with an error message (``error`` has code, field, job_id)."""

    def __init__(self, error: Error):
        where = f" ({error.field})" if error.field else ""
        super().__init__(f"{error.code}{where}: {error.message}")
        self.error = error


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def receive_limit(hello: ServerHello | None) -> int:
    """The largest server frame to accept: SPEC section 2's floor for the announced limits."""
    if hello is None:
        return FIRST_MAX_SIZE
    limits = hello.limits
    return max(limits.max_frame_bytes, 4 * limits.max_pixels + FRAME_OVERHEAD)


async def open_connection(
    url: str, hello: ClientHello, *, open_timeout: float, max_size: int
) -> tuple[Any, ServerHello]:
    """Open the WebSocket, send ``hello`` and read the server's; returns (connection, server hello).

    Raises ConnectError; ``fatal`` is set for refusals that a retry cannot fix (token, version, origin).
    """
    from ..deps import ensure_websockets

    ensure_websockets()
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    options: dict[str, Any] = {"compression": None, "open_timeout": open_timeout, "max_size": max_size}
    if is_loopback_url(url) and "proxy" in inspect.signature(connect).parameters:  # websockets >= 15
        options["proxy"] = None  # never send loopback traffic through an environment proxy
    try:
        ws = await connect(url, **options)
    except InvalidStatus as exc:
        raise _refused_upgrade(url, exc)
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
        raise ConnectError(f"cannot connect to {url}: {exc}")
    try:
        await ws.send(encode_message(hello))
        raw = await asyncio.wait_for(ws.recv(), open_timeout)
    except (ConnectionClosed, OSError, asyncio.TimeoutError) as exc:
        await ws.close()
        raise ConnectError(f"the server at {url} closed or stalled the handshake: {exc!r}")
    answer = decode_server_message(raw) if isinstance(raw, str) else None
    if isinstance(answer, ServerHello):
        _apply_receive_limit(ws, receive_limit(answer))
        return ws, answer
    await ws.close()
    if isinstance(answer, Error):
        fatal = answer.code in {c.value for c in FATAL_CODES}
        raise ConnectError(f"the server refused the connection: {answer.code}: {answer.message}", fatal=fatal,
                           error=answer)
    raise ConnectError(f"unexpected first message from the server: {str(raw)[:200]!r}", fatal=True)


def _apply_receive_limit(ws: Any, size: int) -> None:
    proto = getattr(ws, "protocol", None)
    for name in ("max_message_size", "max_size"):  # the attribute was renamed in websockets 15
        if proto is not None and hasattr(proto, name):
            setattr(proto, name, size)


def _refused_upgrade(url: str, exc: Any) -> ConnectError:
    """HTTP 401/403 on the upgrade request are the fatal unauthorized / forbidden_origin (SPEC section 4)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", 0)
    body = bytes(getattr(response, "body", b"") or b"").decode("utf-8", "replace").strip()[:200]
    code = {401: "unauthorized", 403: "forbidden_origin"}.get(status)
    if code is None:
        return ConnectError(f"cannot connect to {url}: HTTP {status} {body}")
    return ConnectError(f"the server refused the connection: {code}: {body or status}", fatal=True,
                        error=Error(code, body or f"HTTP {status}"))
