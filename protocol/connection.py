"""Sans-I/O connections, the h11 / python-websockets shape: one object per side and socket.

They take frames received from the socket in (``receive_*``) and give back what happened, and
turn messages into frames to send; they never touch a socket or an event loop. The backend
server, the plugin client and every test fake drive these objects, so the hello gate, the
job state machine, resume bookkeeping and request/answer correlation exist once:

- ``server_connection.ServerConnection`` answers everything before a good hello by itself,
  checks the major version and the token, and hands the server ``HelloReceived``; after
  ``accept`` it decodes requests and blobs.
- ``client_connection.ClientConnection`` checks the server hello, negotiates the minor
  version, keeps every job's ``JobStatus`` in a ``JobBook`` that outlives the connection (for
  resume), and matches answers to requests by ``request_id`` (minor 1) or, with a 1.0 server,
  by kind and order.

This module holds what both sides share.
"""

from __future__ import annotations

from .messages import ServerHello

HANDSHAKE, OPEN, CLOSED = "handshake", "open", "closed"
FRAME_OVERHEAD = 65540  # SPEC.md 2: length prefix and the largest header on top of a raw RGBA result
FIRST_MAX_SIZE = 512 * 1024 * 1024  # what a client accepts before the server hello states its limits


def max_server_frame(hello: ServerHello | None) -> int:
    """The largest server frame a client must accept: SPEC.md 2's floor for the announced limits."""
    if hello is None:
        return FIRST_MAX_SIZE
    return max(hello.limits.max_frame_bytes, 4 * hello.limits.max_pixels + FRAME_OVERHEAD)
