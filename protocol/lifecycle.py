"""Sans-I/O rules shared by every peer: the handshake checks and the one job state machine.

Job life cycle (SPEC.md 9.6)::

    new --queued--> queued --started--> started --progress|preview*--> started
    new|queued|started --result*--> (same state)
    new|queued|started --done|error|cancelled--> done | error | cancelled   (final)

A live connection sees ``queued``, ``started``, ``progress``/``preview``, ``result`` frames
and one final message, in that order. The extra edges (``new`` straight to ``started`` or
``done``, ``queued`` to ``queued``, ``started`` to ``started``) are what a client sees when the
queue position moves or when it resumes a session: the server then repeats the current state
of each job (``JobStatus.replay``), or re-delivers results and the final message it missed.

The server's job records, the plugin client and the test fakes all hold ``JobStatus`` values:
there is no other vocabulary of job states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ErrorCode, ProtocolError
from .messages import (
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    Cancelled,
    ClientHello,
    Done,
    Error,
    JobInfo,
    PreviewHeader,
    Progress,
    Queued,
    ResultHeader,
    ServerHello,
    Started,
)

NEW: Literal["new"] = "new"
QUEUED: Literal["queued"] = "queued"
STARTED: Literal["started"] = "started"
DONE: Literal["done"] = "done"
ERROR: Literal["error"] = "error"
CANCELLED: Literal["cancelled"] = "cancelled"
EVENTS = ("queued", "started", "progress", "preview", "result", "done", "error", "cancelled")
FINAL_STATES = frozenset({DONE, ERROR, CANCELLED})
LIVE_STATES = frozenset({QUEUED, STARTED})
_ENDINGS = frozenset({"result", DONE, ERROR, CANCELLED})
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({QUEUED, STARTED}) | _ENDINGS,
    QUEUED: frozenset({QUEUED, STARTED}) | _ENDINGS,
    STARTED: frozenset({STARTED, "progress", "preview"}) | _ENDINGS,
}
# Events that are not states: "progress" and "preview" mean the job runs; a result leaves the state as it is.
_STATE_AFTER = {"progress": STARTED, "preview": STARTED}

JobMessage = Queued | Started | Progress | PreviewHeader | ResultHeader | Done | Error | Cancelled
_EVENT_OF: dict[type, str] = {
    Queued: "queued", Started: "started", Progress: "progress", PreviewHeader: "preview",
    ResultHeader: "result", Done: "done", Error: "error", Cancelled: "cancelled",
}


def _mismatch(version: int, ours: str, theirs: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.VERSION_MISMATCH,
        f"{ours} speaks protocol {PROTOCOL_VERSION}.x, {theirs} {version}.x; "
        "install matching versions of the latentbrush plugin and server",
        "protocol",
    )


def check_hello(hello: ClientHello) -> ProtocolError | None:
    """The server's verdict on a client hello's major version (the token is the server's business)."""
    return None if hello.protocol == PROTOCOL_VERSION else _mismatch(hello.protocol, "this server", "the client")


def check_server_hello(hello: ServerHello) -> ProtocolError | None:
    """The client's verdict on a server hello: another major version means closing the connection."""
    return None if hello.protocol == PROTOCOL_VERSION else _mismatch(hello.protocol, "this client", "the server")


def negotiated_minor(client_minor: int, server_minor: int = PROTOCOL_MINOR) -> int:
    """Both peers use the features of the lower minor version (SPEC.md 14)."""
    return min(client_minor, server_minor)


@dataclass(frozen=True)
class JobStatus:
    """Immutable view of one job as a peer has seen it; ``advance``/``apply`` return the next status."""

    job_id: str
    state: str = NEW
    step: int = 0
    total: int = 0
    position: int | None = None
    results: int = 0  # result frames so far (batch items finished)
    seed: int | None = None
    stage: str = "denoise"

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def advance(
        self,
        event: str,
        *,
        step: int = 0,
        total: int = 0,
        position: int | None = None,
        seed: int | None = None,
        stage: str | None = None,
    ) -> JobStatus | ProtocolError:
        """Apply an event name (one of ``EVENTS``); an event the state does not allow is an error."""
        allowed = TRANSITIONS.get(self.state, frozenset())
        if event not in allowed:
            return ProtocolError(
                ErrorCode.BAD_FIELD,
                f"job {self.job_id}: {event!r} not allowed after {self.state!r}",
                "type",
                self.job_id,
            )
        state = self.state if event == "result" else _STATE_AFTER.get(event, event)
        return JobStatus(
            self.job_id,
            state,
            step if event in ("progress", "preview") else self.step,
            total or self.total,
            position if event == QUEUED else (self.position if state == QUEUED else None),
            self.results + (event == "result"),
            seed if event == STARTED else self.seed,
            stage if stage is not None else self.stage,
        )

    def apply(self, msg: JobMessage) -> JobStatus | ProtocolError:
        """The status after ``msg`` (a job's message or frame header) arrived or was sent."""
        event = _EVENT_OF[type(msg)]
        if isinstance(msg, Queued):
            return self.advance(event, position=msg.position)
        if isinstance(msg, Started):
            return self.advance(event, total=msg.total, seed=msg.seed)
        if isinstance(msg, Progress):
            return self.advance(event, step=msg.step, total=msg.total, stage=msg.stage)
        if isinstance(msg, PreviewHeader):
            return self.advance(event, step=msg.step, total=msg.total)
        return self.advance(event)

    def replay(self) -> tuple[Queued | Started | Progress, ...]:
        """What a resumed connection hears about a live job: its current state, again (SPEC.md 11)."""
        if self.state == QUEUED:
            return (Queued(self.job_id, self.position or 0),)
        if self.state == STARTED:
            started = Started(self.job_id, self.total, self.seed)
            return (started, Progress(self.job_id, self.step, self.total, self.stage)) if self.step else (started,)
        return ()

    def info(self, op: str = "") -> JobInfo:
        """This job's row in a ``queue`` answer (live jobs only)."""
        state: Literal["queued", "started"] = QUEUED if self.state == QUEUED else STARTED
        return JobInfo(self.job_id, state, self.position if self.state == QUEUED else None, op)
