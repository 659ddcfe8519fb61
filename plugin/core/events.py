"""What the client tells its listeners: one frozen value per event, delivered on the loop's thread.

Job events are the protocol connection's own (``latentbrush.protocol.events``), passed on unchanged.
Connection events say when the link drops, comes back (``resumed`` tells whether the server
still knew this client) or gives up. While it is down, a ``RECONNECTING`` event per countdown tick
says which attempt comes next and in how many seconds, so a UI can show a countdown.
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
    "CONNECTION_LOST",
    "FINAL_EVENTS",
    "LOST_JOB",
    "SERVER_STOPPED",
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

# JobFailed codes of the plugin's own, beside the protocol's LOST_JOB (the server forgot the job):
CONNECTION_LOST = "connection_lost"  # the link dropped and did not come back within the policy's job grace
SERVER_STOPPED = "server_stopped"  # the local server process the plugin started exited


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
    retry_in: float | None = None  # RECONNECTING: seconds until attempt ``attempt`` (a countdown, re-sent each tick)
    max_attempts: int | None = None  # RECONNECTING / FAILED: the policy's limit (None: no limit)


@dataclass(frozen=True)
class ClientFailure:
    """A bug or unexpected exception inside the client's own tasks; never silently dropped."""

    message: str
    exception: BaseException | None = None


ClientEvent = JobEvent | ConnectionChanged | ServerError | ClientFailure
Listener = Callable[[ClientEvent], None]
