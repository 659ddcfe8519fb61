"""The studio's queue: round robin between artists, live jobs ahead of batch jobs.

An artist (the name their token stands for, ``artists.py``) may have several connections and
sessions; their jobs share one lane, so opening more connections buys no bigger share. The next
job comes from the artist served least recently; a live job (``JobRequest.stream`` set: live
painting, which supersedes itself and is short) always goes before any batch job, again round
robin between the artists that have one. Within an artist, jobs keep their submission order.
Pure (no I/O, no clock); the event loop thread only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from ..jobs import JobRecord


def is_live(record: Any) -> bool:
    return record.request.stream is not None


def pick(lanes: dict[str, list[Any]], served_at: dict[str, int]) -> tuple[str, int] | None:
    """(artist, index in their lane) of the job to run next, or None when every lane is empty.

    Live jobs first; among the artists that have a candidate, the one served least recently
    (never served counts as longest ago), ties broken by the older job.
    """
    for wanted in (is_live, lambda record: True):
        best: tuple[int, int] | None = None
        choice: tuple[str, int] | None = None
        for artist, lane in lanes.items():
            index = next((i for i, record in enumerate(lane) if wanted(record)), None)
            if index is None:
                continue
            key = (served_at.get(artist, 0), lane[index].seq)
            if best is None or key < best:
                best, choice = key, (artist, index)
        if choice is not None:
            return choice
    return None


class ArtistQueue:
    """``sessions.JobQueue`` with one lane per artist; ``artist_of`` names a record's artist."""

    def __init__(self, artist_of: Callable[[JobRecord], str]) -> None:
        self._artist_of = artist_of
        self._lanes: dict[str, list[JobRecord]] = {}
        self._served_at: dict[str, int] = {}
        self._tick = itertools.count(1)
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def push(self, record: JobRecord) -> None:
        record.seq = next(self._seq)
        self._lanes.setdefault(self._artist_of(record), []).append(record)

    def pop_next(self) -> JobRecord | None:
        chosen = pick(self._lanes, self._served_at)
        if chosen is None:
            return None
        artist, index = chosen
        record = self._take(artist, index)
        self._served_at[artist] = next(self._tick)
        return record

    def remove(self, client_id: str, job_id: str) -> JobRecord | None:
        for artist, lane in self._lanes.items():
            for index, record in enumerate(lane):
                if record.client_id == client_id and record.job_id == job_id:
                    return self._take(artist, index)
        return None

    def forget_client(self, client_id: str) -> None:
        """Sessions come and go; an artist's place in the round robin stays (there are few artists)."""

    def order(self) -> list[JobRecord]:
        """The queued jobs in the order they would run if nothing else arrived."""
        lanes = {artist: list(lane) for artist, lane in self._lanes.items()}
        served = dict(self._served_at)
        tick = max(served.values(), default=0)
        out: list[JobRecord] = []
        while (chosen := pick(lanes, served)) is not None:
            artist, index = chosen
            out.append(lanes[artist].pop(index))
            tick += 1
            served[artist] = tick
        return out

    def artists(self) -> Iterable[str]:
        return tuple(self._lanes)

    def _take(self, artist: str, index: int) -> JobRecord:
        lane = self._lanes[artist]
        record = lane.pop(index)
        if not lane:
            del self._lanes[artist]
        return record
