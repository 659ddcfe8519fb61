"""Sans-I/O rules shared by every peer: the handshake check and the job state machine.

Job life cycle (SPEC.md "Job life cycle")::

    new --queued--> queued --started--> started --progress|preview*--> started
    new|queued|started --result*--> (same state)
    new|queued|started --done|error|cancelled--> done | error | cancelled   (final)

A live connection sees ``queued``, ``started``, ``progress``/``preview``, ``result`` frames
and one final message, in that order. The extra edges (``new`` straight to ``started`` or
``done``, ``queued`` to ``queued``, ``started`` to ``started``) are what a client sees when the
queue position moves or when it resumes a session: the server then repeats the current state
of each job, or re-delivers results and the final message it missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorCode, ProtocolError
from .messages import PROTOCOL_MINOR, PROTOCOL_VERSION, ClientHello, ServerHello

NEW = "new"
EVENTS = ("queued", "started", "progress", "preview", "result", "done", "error", "cancelled")
FINAL_STATES = frozenset({"done", "error", "cancelled"})
_ENDINGS = frozenset({"result", "done", "error", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({"queued", "started"}) | _ENDINGS,
    "queued": frozenset({"queued", "started"}) | _ENDINGS,
    "started": frozenset({"started", "progress", "preview"}) | _ENDINGS,
}
# Events that are not states: "progress" and "preview" mean the job runs; a result leaves the state as it is.
_STATE_AFTER = {"progress": "started", "preview": "started"}


def check_hello(hello: ClientHello) -> ProtocolError | None:
    """The server's verdict on a client hello's version (the token is checked by the server)."""
    if hello.protocol != PROTOCOL_VERSION:
        return ProtocolError(
            ErrorCode.VERSION_MISMATCH,
            f"server speaks protocol {PROTOCOL_VERSION}, client asked for {hello.protocol}",
            "protocol",
        )
    return None


def check_server_hello(hello: ServerHello) -> ProtocolError | None:
    """The client's verdict on a server hello: another major version means closing the connection."""
    if hello.protocol != PROTOCOL_VERSION:
        return ProtocolError(
            ErrorCode.VERSION_MISMATCH,
            f"client speaks protocol {PROTOCOL_VERSION}, server answered {hello.protocol}",
            "protocol",
        )
    return None


def negotiated_minor(client_minor: int, server_minor: int = PROTOCOL_MINOR) -> int:
    """Both peers use the features of the lower minor version (SPEC.md "Compatibility")."""
    return min(client_minor, server_minor)


@dataclass(frozen=True)
class JobStatus:
    """Immutable view of one job as a peer has seen it; ``advance`` returns the next status."""

    job_id: str
    state: str = NEW
    step: int = 0
    total: int = 0
    position: int | None = None
    results: int = 0  # result frames received so far

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def advance(
        self, event: str, *, step: int = 0, total: int = 0, position: int | None = None
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
            position if event == "queued" else (self.position if state == "queued" else None),
            self.results + (event == "result"),
        )
