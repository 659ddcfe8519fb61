"""Opening one protocol connection: websockets options, the hello exchange, refusals as ConnectError.

Also the exceptions every part of the client raises, so callers catch ``ClientError`` alone.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any
from urllib.parse import urlsplit

from latentbrush.protocol import Error, ProtocolError
from latentbrush.protocol.client_connection import ClientConnection
from latentbrush.protocol.connection import FIRST_MAX_SIZE
from latentbrush.protocol.events import HandshakeFailed, HelloAccepted


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


class RequestTimeout(ClientError):
    """The server sent no answer to a request in time (the link may still be up)."""


class RequestRefused(ClientError):
    """The server answered a request with an error message (``error`` has code, field, job_id)."""

    def __init__(self, error: Error):
        where = f" ({error.field})" if error.field else ""
        super().__init__(f"{error.code}{where}: {error.message}")
        self.error = error


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


async def open_connection(url: str, conn: ClientConnection, *, open_timeout: float) -> tuple[Any, HelloAccepted]:
    """Open the WebSocket and run ``conn``'s hello exchange; returns (websocket, the accepted hello).

    Raises ConnectError; ``fatal`` is set for refusals that a retry cannot fix (token, version, origin).
    """
    from ..deps import ensure_websockets

    ensure_websockets()
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    options: dict[str, Any] = {"compression": None, "open_timeout": open_timeout, "max_size": FIRST_MAX_SIZE}
    if is_loopback_url(url) and "proxy" in inspect.signature(connect).parameters:  # websockets >= 15
        options["proxy"] = None  # never send loopback traffic through an environment proxy
    try:
        ws = await connect(url, **options)
    except InvalidStatus as exc:
        raise _refused_upgrade(url, exc)
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
        raise ConnectError(f"cannot connect to {url}: {exc}")
    try:
        await ws.send(conn.start())
        raw = await asyncio.wait_for(ws.recv(), open_timeout)
    except (ConnectionClosed, OSError, asyncio.TimeoutError) as exc:
        await ws.close()
        raise ConnectError(f"the server at {url} closed or stalled the handshake: {exc!r}")
    events = conn.receive_text(raw) if isinstance(raw, str) else []
    outcome = events[0] if events else None
    if isinstance(outcome, HelloAccepted):
        _apply_receive_limit(ws, conn.max_frame)
        return ws, outcome
    await ws.close()
    if isinstance(outcome, HandshakeFailed):
        err = outcome.error
        prefix = "the server refused the connection: " if outcome.by_server else "cannot use this server: "
        raise ConnectError(f"{prefix}{err.code.value}: {err.message}", fatal=outcome.fatal,
                           error=Error.from_error(err))
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
