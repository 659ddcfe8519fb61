"""What the client tells its listeners: one frozen value per event, delivered on the loop's thread.

Job events mirror the protocol messages; previews and results carry their binary payload.
Connection events say when the link drops, comes back (``resumed`` tells whether the server
still knew this client) or gives up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from latentbrush.protocol import PreviewHeader, ResultHeader, ServerHello


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
class JobQueued:
    job_id: str
    position: int


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    total: int
    seed: int | None = None


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    step: int
    total: int
    stage: str = "denoise"


@dataclass(frozen=True)
class JobPreview:
    header: PreviewHeader
    payload: bytes

    @property
    def job_id(self) -> str:
        return self.header.job_id


@dataclass(frozen=True)
class JobResult:
    header: ResultHeader
    payload: bytes

    @property
    def job_id(self) -> str:
        return self.header.job_id


@dataclass(frozen=True)
class JobDone:
    job_id: str
    results: int
    seeds: tuple[int, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFailed:
    """The server refused or failed the job, or the job was lost with a restarted server."""

    job_id: str
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class JobCancelled:
    job_id: str


@dataclass(frozen=True)
class ServerError:
    """An error message tied to no job and answering no pending request."""

    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class ClientFailure:
    """A bug or unexpected exception inside the client's own tasks; never silently dropped."""

    message: str
    exception: BaseException | None = None


JobEvent = JobQueued | JobStarted | JobProgress | JobPreview | JobResult | JobDone | JobFailed | JobCancelled
ClientEvent = JobEvent | ConnectionChanged | ServerError | ClientFailure
Listener = Callable[[ClientEvent], None]

FINAL_EVENTS = (JobDone, JobFailed, JobCancelled)
LOST_JOB = "lost"  # JobFailed.code when the server no longer knows a job after a reconnect
