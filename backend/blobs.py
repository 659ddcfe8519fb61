"""Content-addressed cache of decoded uploads with a byte budget (least recently used dropped first).

Uploads are addressed by the sha256 of their bytes, so a client asks ``query_blobs`` and sends
only the crops the server lacks. The cache holds *decoded* pixels (checked once, at upload).
Blobs of queued and running jobs are pinned (SPEC.md 8: they stay), and a job holds references
to its arrays anyway, so eviction never pulls pixels from under it. Used only from the event
loop thread: no locking.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

import numpy as np


class BlobCache:
    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._pins: Counter[str] = Counter()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> np.ndarray | None:
        pixels = self._items.get(key)
        if pixels is not None:
            self._items.move_to_end(key)
        return pixels

    def put(self, key: str, pixels: np.ndarray) -> None:
        """Store (or refresh) a blob, then drop the least recently used until within budget.

        The newest blob always stays, even alone over budget: the client uploaded it to use it.
        """
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[key] = pixels
        self._bytes += pixels.nbytes
        self._evict()

    def pin(self, key: str) -> None:
        """Keep ``key`` while a job needs it (pins count; one ``unpin`` per ``pin``)."""
        self._pins[key] += 1

    def unpin(self, key: str) -> None:
        self._pins[key] -= 1
        if self._pins[key] <= 0:
            del self._pins[key]
            self._evict()

    def _evict(self) -> None:
        """Drop unpinned blobs, oldest first, until within budget; the newest always stays."""
        if self._bytes <= self._budget:
            return
        newest = next(reversed(self._items), None)
        for key in [k for k in self._items if k != newest and k not in self._pins]:
            self._bytes -= self._items.pop(key).nbytes
            if self._bytes <= self._budget:
                return

    def partition(self, keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(have, missing) in the order asked; asking counts as use, so held blobs stay fresh."""
        have = tuple(k for k in keys if self.get(k) is not None)
        missing = tuple(k for k in keys if k not in self._items)
        return have, missing
