"""Per-connection send queue: everything in order, previews replaced rather than piled up.

Control messages and result frames are few and small or precious, so they queue in order.
Previews are many and only the newest matters: while the sender waits on a full socket buffer
(``websockets``' ``send`` blocks above its write limit), each (job, batch index) keeps at most ONE
pending preview, and a newer one replaces it in place (SPEC.md 10.1). A client that reads slowly
therefore gets fewer previews, never a growing backlog, and still gets every message and result;
a client that keeps up gets every preview, because nothing is dropped while the socket drains.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

OnSent = Callable[[], None]


@dataclass(eq=False)
class _Item:
    data: str | bytes
    on_sent: OnSent | None = None
    preview_key: tuple[str, int] | None = None  # set for preview slots


class Outbox:
    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._items: deque[_Item] = deque()
        self._slots: dict[tuple[str, int], _Item] = {}
        self._wake = asyncio.Event()
        self._closed = False
        self._blocked = False  # the sender is suspended in a send: the socket buffer is full
        self.previews_sent = 0
        self.previews_replaced = 0

    @property
    def connection(self) -> ServerConnection:
        return self._ws

    @property
    def closed(self) -> bool:
        return self._closed

    def message(self, text: str, on_sent: OnSent | None = None) -> None:
        self._push(_Item(text, on_sent))

    def frame(self, data: bytes, on_sent: OnSent | None = None) -> None:
        self._push(_Item(data, on_sent))

    def preview(self, job_id: str, index: int, data: bytes) -> None:
        """Queue a preview frame; while the socket is backed up, overwrite the one still waiting."""
        if self._closed:
            return
        key = (job_id, index)
        pending = self._slots.get(key)
        if pending is not None and self._blocked:
            pending.data = data  # keeps its place in line: the newest image goes out soonest
            self.previews_replaced += 1
            return
        item = _Item(data, preview_key=key)
        self._slots[key] = item
        self._push(item)

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._slots.clear()
        self._wake.set()

    def _push(self, item: _Item) -> None:
        if self._closed:
            return
        self._items.append(item)
        self._wake.set()

    async def run(self) -> None:
        """Send until closed or the connection drops; unsent items are discarded (resume replays)."""
        try:
            while True:
                while not self._items and not self._closed:
                    self._wake.clear()
                    await self._wake.wait()
                if self._closed:
                    return
                item = self._items.popleft()
                if item.preview_key is not None and self._slots.get(item.preview_key) is item:
                    del self._slots[item.preview_key]  # later previews open a new slot behind us
                # Other callbacks (new previews) only run while this task is suspended, so "in a
                # send" seen from them means the send is waiting for the socket to drain.
                self._blocked = True
                try:
                    await self._ws.send(item.data)
                finally:
                    self._blocked = False
                if item.preview_key is not None:
                    self.previews_sent += 1
                if item.on_sent is not None:
                    item.on_sent()
        except ConnectionClosed:
            pass
        finally:
            self.close()
