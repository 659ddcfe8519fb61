"""Content-addressed cache of decoded uploads with a byte budget (least recently used dropped first).

Uploads are addressed by the sha256 of their bytes, so a client asks ``query_blobs`` and sends
only the crops the server lacks. The cache holds *decoded* pixels (checked once, at upload);
a job takes references to the arrays it needs at submit, so evicting a blob later never pulls
pixels from under a queued job. Used only from the event loop thread: no locking.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class BlobCache:
    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0

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
        while self._bytes > self._budget and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def partition(self, keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(have, missing) in the order asked; asking counts as use, so held blobs stay fresh."""
        have = tuple(k for k in keys if self.get(k) is not None)
        missing = tuple(k for k in keys if k not in self._items)
        return have, missing
