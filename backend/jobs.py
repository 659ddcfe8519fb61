"""Job records and the fair queue that orders them.

Fairness: the next job comes from the client served least recently (round robin across client
ids), so one client queueing twenty jobs cannot starve another that queues one. Within a client,
jobs run in submission order. Lives on the event loop thread only; the worker thread sees a
record only through the arguments it is handed and its ``cancel`` event.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from latentbrush.protocol import JobRequest, JobStatus, blob_keys

from .inputs import JobInputs


@dataclass(eq=False)
class JobRecord:
    """Everything the server knows about one accepted job. Mutable, owned by the event loop."""

    request: JobRequest
    client_id: str
    inputs: JobInputs = field(default_factory=dict)  # role -> decoded blobs of request.context (inputs.py)
    seq: int = 0  # submission order across the server
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None  # Cancelled.reason once stopped for one ("superseded"); None: on request
    status: JobStatus = field(init=False)  # what the client has been told: the protocol's one state machine
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    frames: dict[int, bytes] = field(default_factory=dict)  # batch index -> result frame, until delivered
    results: set[int] = field(default_factory=set)  # batch items that have a result frame (sent or not)
    queued_on: dict[int, Any] = field(default_factory=dict)  # batch index -> the outbox its frame waits in
    final: Any = None  # the Done / Error / Cancelled message once the job has ended
    delivered: bool = False  # the final message went out on some connection

    def __post_init__(self) -> None:
        self.status = JobStatus(self.request.id)

    @property
    def job_id(self) -> str:
        return self.request.id

    @property
    def state(self) -> str:
        return self.status.state

    @property
    def position(self) -> int | None:
        return self.status.position

    @property
    def is_final(self) -> bool:
        return self.status.final

    @property
    def retained_bytes(self) -> int:
        return sum(len(f) for f in self.frames.values())

    @property
    def blob_keys(self) -> tuple[str, ...]:
        return blob_keys(self.request)

    def release_inputs(self) -> None:
        """Drop the pixels the engine needed; a finished job keeps only what it sends back."""
        self.inputs = {}


class FairQueue:
    """Per-client FIFO lanes served least-recently-served first."""

    def __init__(self) -> None:
        self._lanes: dict[str, deque[JobRecord]] = {}
        self._served_at: dict[str, int] = {}  # client id -> tick of its last pop (absent: never served)
        self._tick = itertools.count(1)
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self.order())

    def push(self, record: JobRecord) -> None:
        record.seq = next(self._seq)
        self._lanes.setdefault(record.client_id, deque()).append(record)

    def pop_next(self) -> JobRecord | None:
        client = self._pick(self._lanes, self._served_at)
        if client is None:
            return None
        lane = self._lanes[client]
        record = lane.popleft()
        if not lane:
            del self._lanes[client]
        self._served_at[client] = next(self._tick)
        return record

    def remove(self, client_id: str, job_id: str) -> JobRecord | None:
        lane = self._lanes.get(client_id)
        if lane is None:
            return None
        for record in lane:
            if record.job_id == job_id:
                lane.remove(record)
                if not lane:
                    del self._lanes[client_id]
                return record
        return None

    def forget_client(self, client_id: str) -> None:
        """Drop a client's fairness history (its session is gone and it holds no queued jobs)."""
        if client_id not in self._lanes:
            self._served_at.pop(client_id, None)

    def order(self) -> list[JobRecord]:
        """The queued jobs in the order they would run if nothing else arrived."""
        lanes = {client: deque(lane) for client, lane in self._lanes.items()}
        served = dict(self._served_at)
        tick = max(served.values(), default=0)
        out: list[JobRecord] = []
        while (client := self._pick(lanes, served)) is not None:
            out.append(lanes[client].popleft())
            tick += 1
            served[client] = tick
        return out

    def positions(self) -> dict[str, int]:
        """job id -> number of queued jobs that run before it (0 = runs next)."""
        return {record.job_id: index for index, record in enumerate(self.order())}

    @staticmethod
    def _pick(lanes: dict[str, Any], served_at: dict[str, int]) -> str | None:
        best: tuple[int, int] | None = None
        choice = None
        for client, lane in lanes.items():
            if not lane:
                continue
            key = (served_at.get(client, 0), lane[0].seq)
            if best is None or key < best:
                best, choice = key, client
        return choice
