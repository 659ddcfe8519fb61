"""A plain-text progress bar on stderr with step counts and an ETA (no third-party packages)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from latentbrush.plugin.core import events as ev

BAR_WIDTH = 24


class ProgressBar:
    """A client listener: redraws one line per progress event on a terminal, prints milestones otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0: float | None = None
        self._first_step = 0
        self._stage = ""
        self._last_quarter = -1
        self.previews = 0

    def __call__(self, event: ev.ClientEvent) -> None:
        if not self.enabled:
            return
        if isinstance(event, ev.JobQueued):
            self._line(f"{self.label}: queued ({event.position} ahead)")
        elif isinstance(event, ev.JobStarted):
            self._line(f"{self.label}: started, {event.total} steps, seed {event.seed}")
        elif isinstance(event, ev.JobProgress):
            self._progress(event)
        elif isinstance(event, ev.JobPreview):
            self.previews += 1
        elif isinstance(event, ev.ConnectionChanged) and event.state is not ev.ConnectionState.CONNECTED:
            self._line(f"connection {event.state.value}: {event.message}")
        elif isinstance(event, ev.ConnectionChanged) and event.attempt:
            self._line("reconnected" + (" (resumed)" if event.resumed else ""))

    def _progress(self, event: ev.JobProgress) -> None:
        now = time.monotonic()
        if self._t0 is None or event.stage != self._stage:
            self._t0, self._stage, self._last_quarter = now, event.stage, -1
            self._first_step = event.step
        done = event.step / max(1, event.total)
        steps_timed = event.step - self._first_step
        eta = ""
        if steps_timed > 0 and event.step < event.total:
            remaining = (now - self._t0) / steps_timed * (event.total - event.step)
            eta = f" ETA {remaining:5.1f}s"
        filled = round(done * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        text = f"{self.label}: [{bar}] {event.step}/{event.total} {event.stage}{eta}"
        if self.tty:
            self.stream.write("\r" + text.ljust(78) + ("\n" if event.step >= event.total else ""))
            self.stream.flush()
            return
        quarter = int(done * 4)
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            self._line(text)

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 78 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()
