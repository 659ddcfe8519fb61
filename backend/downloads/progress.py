"""Download progress: the values the downloader reports, a throttle, and the two ways the CLI shows them.

``--progress json`` prints one JSON object per line on stdout (``plan``, ``progress``, ``done``, ``error``), for
a GUI to read; otherwise one readable line on stderr, redrawn in place on a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

MAX_PER_SECOND = 5


@dataclass(frozen=True)
class Progress:
    file: str  # the destination, relative to the models folder
    done_bytes: int
    total_bytes: int
    overall_done: int
    overall_total: int

    @property
    def finished(self) -> bool:
        return self.done_bytes >= self.total_bytes


class Throttle:
    """True at most ``per_second`` times a second (and always when forced): progress lines a reader can keep up with."""

    def __init__(self, per_second: float = MAX_PER_SECOND, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self._last: float | None = None

    def ready(self, force: bool = False) -> bool:
        now = self.clock()
        if force or self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def human(size: float) -> str:
    """Bytes in the units people read (decimal, as the Hub and disk tools show them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class JsonLines:
    """The ``--progress json`` events, one object per line, flushed."""

    def __init__(self, out: TextIO | None = None, throttle: Throttle | None = None) -> None:
        self.out = out or sys.stdout
        self.throttle = throttle or Throttle()
        self._last_file = ""

    def emit(self, event: str, **fields: Any) -> None:
        self.out.write(json.dumps({"event": event, **fields}) + "\n")
        self.out.flush()

    def progress(self, p: Progress) -> None:
        first = p.file != self._last_file  # each file's first and last report always go out
        self._last_file = p.file
        if self.throttle.ready(force=first or p.finished):
            self.emit("progress", **asdict(p))


class TextLine:
    """One readable progress line on stderr, redrawn in place on a terminal, one line per finished file otherwise."""

    def __init__(self, out: TextIO | None = None, throttle: Throttle | None = None) -> None:
        self.out = out or sys.stderr
        self.throttle = throttle or Throttle()
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def progress(self, p: Progress) -> None:
        if not (self.throttle.ready(force=p.finished) and (self.tty or p.finished)):
            return
        percent = 100 * p.overall_done / p.overall_total if p.overall_total else 100
        line = (f"{p.file}: {human(p.done_bytes)} of {human(p.total_bytes)}; "
                f"all: {human(p.overall_done)} of {human(p.overall_total)} ({percent:.0f}%)")
        if self.tty:
            self.out.write("\r\x1b[K" + line + ("\n" if p.finished else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()
