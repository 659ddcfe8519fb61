"""What the client tells its listeners: one frozen value per event, delivered on the loop's thread.

Job events are the protocol connection's own (``latentbrush.protocol.events``), passed on unchanged.
Connection events say when the link drops, comes back (``resumed`` tells whether the server
still knew this client) or gives up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from latentbrush.protocol import ServerHello
from latentbrush.protocol.events import (
    FINAL_EVENTS,
    LOST_JOB,
    JobCancelled,
    JobDone,
    JobEvent,
    JobFailed,
    JobPreview,
    JobProgress,
    JobQueued,
    JobResult,
    JobStarted,
    ServerError,
)

__all__ = [  # the job events are the protocol's; listeners import them all from here
    "FINAL_EVENTS",
    "LOST_JOB",
    "ClientEvent",
    "ClientFailure",
    "ConnectionChanged",
    "ConnectionState",
    "JobCancelled",
    "JobDone",
    "JobEvent",
    "JobFailed",
    "JobPreview",
    "JobProgress",
    "JobQueued",
    "JobResult",
    "JobStarted",
    "Listener",
    "ServerError",
]


class ConnectionState(str, Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the link dropped; retrying with backoff
    FAILED = "failed"  # gave up (bad token, version mismatch, or out of attempts)
    CLOSED = "closed"  # closed on purpose


@dataclass(frozen=True)
class ConnectionChanged:
    state: ConnectionState
    message: str = ""
    attempt: int = 0  # reconnect attempt number, 0 for the first connection
    hello: ServerHello | None = None
    resumed: bool = False  # the server still held this client's session (and its jobs)


@dataclass(frozen=True)
class ClientFailure:
    """A bug or unexpected exception inside the client's own tasks; never silently dropped."""

    message: str
    exception: BaseException | None = None


ClientEvent = JobEvent | ConnectionChanged | ServerError | ClientFailure
Listener = Callable[[ClientEvent], None]
