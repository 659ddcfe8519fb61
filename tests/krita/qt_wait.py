"""Spin Qt's event loop until a condition holds (the limit only stops a broken test from hanging)."""

from __future__ import annotations

import time
from collections.abc import Callable

from latentbrush.plugin.qt import QApplication


def spin_until(predicate: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.002)
