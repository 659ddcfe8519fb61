"""A session (a client id, its outbox and jobs) and what the scheduler needs of a queue: plain values the
service (service.py) and the server (server.py) share."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from latentbrush.protocol import PROTOCOL_MINOR, Cancelled, Error, ProtocolError, encode_message

from .jobs import JobRecord
from .outbox import Outbox
from .streams import StreamPins

KNOWN_IDS_PER_SESSION = 4096  # ids of delivered jobs, so a late cancel of one is ignored, not an error


@dataclass(eq=False)
class Session:
    client_id: str
    outbox: Outbox | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)  # live, or final but not yet delivered
    known_ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    disconnected_at: float | None = None
    minor: int = PROTOCOL_MINOR  # the attached connection's: 1.1 members go to 1.1 clients only (SPEC.md 14)
    streams: StreamPins | None = None  # live streams' latest blobs, pinned while the session lives (streams.py)

    def send(self, msg: Any, on_sent: Any = None) -> None:
        if self.outbox is not None:
            if isinstance(msg, Cancelled) and msg.reason is not None and self.minor < 1:
                msg = Cancelled(msg.job_id)  # a 1.0 client knows no reasons
            self.outbox.message(encode_message(msg), on_sent)

    def outbox_text(self, text: str) -> None:
        """A reply the protocol connection already encoded."""
        if self.outbox is not None:
            self.outbox.message(text)

    def error(self, err: ProtocolError, job_id: str | None = None, request_id: str | None = None) -> None:
        self.send(Error.from_error(err, job_id, request_id))

    def remember(self, job_id: str) -> None:
        self.known_ids[job_id] = None
        self.known_ids.move_to_end(job_id)
        while len(self.known_ids) > KNOWN_IDS_PER_SESSION:
            self.known_ids.popitem(last=False)


class JobQueue(Protocol):
    """What the scheduler needs of a queue: ``jobs.FairQueue``, or a studio's ``cluster/scheduler.ArtistQueue``."""

    def push(self, record: JobRecord) -> None: ...

    def pop_next(self) -> JobRecord | None: ...

    def remove(self, client_id: str, job_id: str) -> JobRecord | None: ...

    def forget_client(self, client_id: str) -> None: ...

    def order(self) -> list[JobRecord]: ...
