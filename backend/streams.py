"""Live streams (SPEC.md 9.11): which earlier jobs a new one supersedes, and the blobs a stream keeps warm.

A stream is a client-chosen id on its jobs; the newest job of a stream always wins. Superseding
itself (dropping a queued job, cancelling a running one) is the scheduler's (``service.py``); this
module only decides *which* jobs and holds each stream's latest blobs pinned in the ``BlobCache``,
so the next frame of a live painting finds its unchanged context on the server. Loop thread only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .blobs import BlobCache
from .jobs import JobRecord

MAX_STREAMS_PER_SESSION = 8  # beyond this many, the least recently used stream's blobs are let go


def superseded_by(record: JobRecord, jobs: Iterable[JobRecord]) -> list[JobRecord]:
    """The unfinished jobs of ``jobs`` (one session's) that ``record`` supersedes, oldest first."""
    stream = record.request.stream
    if stream is None:
        return []
    return sorted(
        (r for r in jobs if r is not record and not r.is_final and r.request.stream == stream),
        key=lambda r: r.seq,
    )


class StreamPins:
    """One session's streams -> the blobs of each stream's latest job, pinned while the stream lives."""

    def __init__(self, blobs: BlobCache) -> None:
        self._blobs = blobs
        self._held: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def held(self, stream: str) -> tuple[str, ...]:
        return self._held.get(stream, ())

    def hold(self, stream: str, keys: tuple[str, ...]) -> None:
        """Pin ``keys`` for ``stream`` instead of what its previous job used (new pins first: shared keys stay)."""
        for key in keys:
            self._blobs.pin(key)
        for key in self._held.pop(stream, ()):
            self._blobs.unpin(key)
        self._held[stream] = keys
        while len(self._held) > MAX_STREAMS_PER_SESSION:
            _, old = self._held.popitem(last=False)
            for key in old:
                self._blobs.unpin(key)

    def release(self) -> None:
        """The session ended: every stream's blobs may be evicted again."""
        while self._held:
            _, keys = self._held.popitem(last=False)
            for key in keys:
                self._blobs.unpin(key)
