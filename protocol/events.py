"""What a client-side connection reports: one frozen value per thing that happened.

Job events mirror the protocol messages (previews and results carry their binary payload);
``Answer`` hands a request its reply; ``HelloAccepted``/``HandshakeFailed`` end the handshake.
The plugin client forwards the job events to its listeners unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError
from .messages import PreviewHeader, ResultHeader, ServerHello

LOST_JOB = "lost"  # JobFailed.code when the server no longer knows a job (restart, expired session)


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
    """The server failed the job, or the job was lost with a restarted server or a dropped link."""

    job_id: str
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class JobCancelled:
    job_id: str
    reason: str | None = None  # 1.1: "superseded" by a newer job of its live stream; None: cancelled on request


@dataclass(frozen=True)
class ServerError:
    """An error tied to no job and answering no pending request, or a message that broke the protocol."""

    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class Answer:
    """The reply to the request sent under ``key``: its answer message, or the ``Error`` refusing it."""

    key: str
    message: Any


@dataclass(frozen=True)
class HelloAccepted:
    hello: ServerHello
    minor: int  # the negotiated minor version
    resumed: bool  # the server still held this client's session


@dataclass(frozen=True)
class HandshakeFailed:
    error: ProtocolError
    fatal: bool  # retrying cannot help (token, version, origin)
    by_server: bool = True  # False: this client refused the server's hello (another major version)


JobEvent = JobQueued | JobStarted | JobProgress | JobPreview | JobResult | JobDone | JobFailed | JobCancelled
ConnectionEvent = JobEvent | ServerError | Answer | HelloAccepted | HandshakeFailed
FINAL_EVENTS = (JobDone, JobFailed, JobCancelled)
