"""Jobs for the LoRA engine tests, and events that keep nothing but the cancel flag."""

from __future__ import annotations

import threading
from typing import Any

from latentbrush.protocol import JobRequest, Rect, Size


class Events:
    """A JobEvents that keeps nothing but the cancel flag (these tests look at the output)."""

    def __init__(self) -> None:
        self.cancel = threading.Event()

    def started(self, total: int, seed: int | None) -> None: ...

    def progress(self, step: int, total: int, stage: str) -> None: ...

    def preview(self, *args: Any) -> None: ...

    def result(self, index: int, rgba: Any, seed: int | None) -> None: ...


def make_job(**fields: Any) -> JobRequest:
    defaults: dict[str, Any] = {
        "id": "job-1", "op": "txt2img", "canvas": Size(64, 64), "region": Rect(0, 0, 64, 64), "steps": 2,
        "seed": 3, "model": "tiny", "prompt": "a cat", "preview_format": "none",
    }
    return JobRequest(**(defaults | fields))
