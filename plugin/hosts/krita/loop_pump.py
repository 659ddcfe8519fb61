"""Drive an asyncio event loop from Qt's event loop, on the UI thread, without ever blocking it.

Krita owns the main thread and runs Qt's loop; our network client is asyncio. Instead of a
second thread (the Krita API is not thread-safe) the pump steps the asyncio loop from a QTimer:
``loop.call_soon(loop.stop); loop.run_forever()`` runs the I/O and callbacks that are ready and
returns at once (the select timeout is 0 because a callback is ready). Coroutines therefore run
on the UI thread and may call the Krita API directly.

Tick rate: fast while a *busy* task runs (a job streaming previews), slow while only other
tasks wait (an idle connection; this counts tasks the loop's own code started, like the
client's reader), and no timer at all when the loop has no tasks.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from ...qt import QObject, QTimer, pyqtSignal

log = logging.getLogger(__name__)

BUSY_INTERVAL_MS = 5  # a job is streaming: previews should reach the canvas within a few ms
IDLE_INTERVAL_MS = 50  # only a connection waits: server messages are still read 20x a second
ROUNDS_PER_TICK = 4  # loop iterations per tick: a frame's bytes -> reader -> our callback
FLUSH_ROUNDS = 3  # after the last task ends: run its done callbacks (they are plain callbacks, not tasks)


class AsyncioPump(QObject):
    """Owns one asyncio loop and steps it from a QTimer while it has tasks.

    ``submit`` is the only way work enters the loop; every task's exception is reported through
    ``failed`` (never lost), cancellations are not errors.
    """

    failed = pyqtSignal(str)  # a submitted task raised: one line for the status bar

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        busy_ms: int = BUSY_INTERVAL_MS,
        idle_ms: int = IDLE_INTERVAL_MS,
    ) -> None:
        super().__init__(parent)
        self._loop = asyncio.new_event_loop()
        self._busy_ms = busy_ms
        self._idle_ms = idle_ms
        self._busy: set[asyncio.Task[Any]] = set()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.step)
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def interval_ms(self) -> int | None:
        """The current tick interval, or None when the timer is stopped (nothing to run)."""
        return self._timer.interval() if self._timer.isActive() else None

    def submit(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        busy: bool = False,
        on_done: Callable[[asyncio.Task[Any]], None] | None = None,
    ) -> asyncio.Task[Any]:
        """Schedule ``coro`` on the loop; ``busy`` ticks fast until it finishes."""
        if self._closed:
            coro.close()
            raise RuntimeError("the asyncio pump is closed")
        task = self._loop.create_task(coro)
        if busy:
            self._busy.add(task)
        task.add_done_callback(self._finished)
        if on_done is not None:
            task.add_done_callback(on_done)
        self._retune()
        return task

    def step(self) -> None:
        """Run what is ready now (a few loop iterations), then retune the timer."""
        if self._closed or self._loop.is_running():
            return  # re-entered from a nested Qt loop inside a callback: the outer step continues
        for _ in range(ROUNDS_PER_TICK):
            self._run_once()
            if not self._has_tasks():
                for _ in range(FLUSH_ROUNDS):
                    self._run_once()
                break
        self._retune()

    def close(self, grace_rounds: int = 20) -> None:
        """Cancel every task, let them unwind for a few rounds, and close the loop."""
        if self._closed:
            return
        self._timer.stop()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        for _ in range(grace_rounds):
            if not self._has_tasks():
                break
            self._run_once()
        for _ in range(FLUSH_ROUNDS):
            self._run_once()
        self._closed = True
        self._loop.close()

    def _run_once(self) -> None:
        self._loop.call_soon(self._loop.stop)
        self._loop.run_forever()

    def _has_tasks(self) -> bool:
        return bool(asyncio.all_tasks(self._loop))

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._busy.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("latentbrush task failed:\n%s", "".join(traceback.format_exception(exc)))
            self.failed.emit(f"{type(exc).__name__}: {exc}")

    def _retune(self) -> None:
        if self._closed:
            return
        if not self._has_tasks():
            self._timer.stop()
            return
        interval = self._busy_ms if self._busy else self._idle_ms
        if not self._timer.isActive() or self._timer.interval() != interval:
            self._timer.start(interval)
