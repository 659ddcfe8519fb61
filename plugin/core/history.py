"""Job history: one immutable record per job (what was asked, what came back, when), no Qt.

``History`` is the only mutable part: it swaps records for updated copies and tells its
listeners, so a docker can show a live list without polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field, replace
from typing import Any

from latentbrush.protocol import JobRequest, Rect
from latentbrush.protocol.lifecycle import CANCELLED, DONE, ERROR, FINAL_STATES, QUEUED, STARTED

from .planning import RegionPlan
from .requests import GenerationSettings

# A record's state is the protocol's job state (lifecycle.py), preceded by two phases of the host's
# own before the server knows the job at all.
PREPARING = "preparing"  # reading pixels, uploading
SUBMITTED = "submitted"  # the submit is on its way
__all__ = ["CANCELLED", "DONE", "ERROR", "FINAL_STATES", "PREPARING", "QUEUED", "STARTED", "SUBMITTED"]


@dataclass(frozen=True)
class ResultImage:
    index: int
    seed: int | None
    bounds: Rect
    layer_name: str
    layer: object | None = field(default=None, compare=False)  # the host's handle for the layer


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    op: str
    settings: GenerationSettings
    plan: RegionPlan
    request: JobRequest | None = None
    state: str = PREPARING
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    queue_position: int | None = None
    step: int = 0
    total: int = 0
    seed: int | None = None  # the seed the server used for the first image
    results: tuple[ResultImage, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)  # provenance from the server: model, sampler, seconds
    server: str = ""  # "<server name> on <device>"
    error: str | None = None
    error_code: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def seconds(self) -> float | None:
        """Wall time from submission to the final event."""
        return None if self.finished is None else self.finished - self.created

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.results if r.seed is not None)

    def provenance(self) -> dict[str, Any]:
        """Everything needed to reproduce the result, as plain JSON-ready values."""
        s = self.settings
        return {
            "op": self.op,
            "prompt": s.prompt,
            "negative_prompt": s.negative_prompt,
            "model": self.info.get("model", s.model),
            "sampler": self.info.get("sampler", s.sampler),
            "steps": s.steps,
            "cfg": s.cfg,
            "strength": s.strength,
            "seeds": list(self.seeds) or ([self.seed] if self.seed is not None else []),
            "region": list(astuple(self.plan.region)),
            "context": list(astuple(self.plan.context)),
            "server": self.server,
        }


HistoryListener = Callable[[JobRecord], None]


class History:
    """Records by job id, newest last; keeps at most ``max_records`` finished ones."""

    def __init__(self, max_records: int = 200) -> None:
        self.max_records = max_records
        self._records: dict[str, JobRecord] = {}
        self._listeners: list[HistoryListener] = []

    def add_listener(self, listener: HistoryListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def add(self, record: JobRecord) -> JobRecord:
        if record.job_id in self._records:
            raise ValueError(f"job {record.job_id} is already in the history")
        self._records[record.job_id] = record
        self._prune()
        self._notify(record)
        return record

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        record = replace(self._records[job_id], **changes)
        self._records[job_id] = record
        self._notify(record)
        return record

    def remove(self, job_id: str) -> JobRecord | None:
        """Forget a record (the painter deleted it); listeners are not told: the caller says so."""
        return self._records.pop(job_id, None)

    def get(self, job_id: str) -> JobRecord | None:
        return self._records.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> tuple[JobRecord, ...]:
        return tuple(self._records.values())

    def active(self) -> tuple[JobRecord, ...]:
        return tuple(r for r in self._records.values() if not r.final)

    def _prune(self) -> None:
        finished = [k for k, r in self._records.items() if r.final]
        for job_id in finished[: max(0, len(self._records) - self.max_records)]:
            del self._records[job_id]

    def _notify(self, record: JobRecord) -> None:
        for listener in list(self._listeners):
            listener(record)
