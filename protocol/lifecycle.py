"""Sans-I/O rules shared by every peer: the handshake check and the job state machine.

Job life cycle (SPEC.md "Jobs")::

    (new) --queued--> queued --started--> started --progress*--> started
    queued|started --done--> done      queued|started --error--> error
    queued|started --cancelled--> cancelled
    (new) --error--> error             (rejected at submit)

``done``, ``error`` and ``cancelled`` are final.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorCode, ProtocolError
from .messages import PROTOCOL_VERSION, ClientHello

NEW = "new"
FINAL_STATES = frozenset({"done", "error", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({"queued", "error"}),
    "queued": frozenset({"queued", "started", "done", "error", "cancelled"}),
    "started": frozenset({"progress", "done", "error", "cancelled"}),
    "progress": frozenset({"progress", "done", "error", "cancelled"}),
}
# "progress" is an event, not a state: after it the job is still "started".
_STATE_AFTER = {"progress": "started"}


def check_hello(hello: ClientHello) -> ProtocolError | None:
    """The server's verdict on a client hello's version (the token is checked by the server)."""
    if hello.protocol != PROTOCOL_VERSION:
        return ProtocolError(
            ErrorCode.VERSION_MISMATCH,
            f"server speaks protocol {PROTOCOL_VERSION}, client asked for {hello.protocol}",
            "protocol",
        )
    return None


@dataclass(frozen=True)
class JobStatus:
    """Immutable view of one job as a peer has seen it; ``advance`` returns the next status."""

    job_id: str
    state: str = NEW
    step: int = 0
    total: int = 0
    position: int | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def advance(
        self, event: str, *, step: int = 0, total: int = 0, position: int | None = None
    ) -> JobStatus | ProtocolError:
        """Apply an event name (queued, started, progress, done, error, cancelled)."""
        allowed = TRANSITIONS.get(self.state, frozenset())
        if event not in allowed:
            return ProtocolError(
                ErrorCode.BAD_FIELD, f"job {self.job_id}: {event!r} not allowed after {self.state!r}", "type"
            )
        state = _STATE_AFTER.get(event, event)
        return JobStatus(
            self.job_id,
            state,
            step if event == "progress" else self.step,
            total or self.total,
            position if event == "queued" else None,
        )
