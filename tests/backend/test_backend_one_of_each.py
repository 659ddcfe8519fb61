"""Issue 10: one out-of-memory classifier and one step reporter in the backend, used everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[2] / "backend"


def _sources() -> dict[str, str]:
    return {str(p.relative_to(BACKEND)): p.read_text(encoding="utf-8") for p in BACKEND.rglob("*.py")}


def test_out_of_memory_is_classified_in_events_only() -> None:
    found = sorted(name for name, text in _sources().items()
                   if re.search(r'"out of memory"|OutOfMemoryError\b(?!\w)', text) and name != "events.py")
    assert found == []


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("MPS backend Out Of Memory (MPS allocated: 9 GB)"), True),
        (type("OutOfMemoryError", (RuntimeError,), {})("CUDA error"), True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("out of memory"), False),  # not a runtime failure of the device
    ],
)
def test_the_classifier(exc: BaseException, expected: bool) -> None:
    from latentbrush.backend.events import is_out_of_memory

    assert is_out_of_memory(exc) is expected


def test_one_step_reporter() -> None:
    found = sorted(name for name, text in _sources().items() if re.search(r"^class \w*StepReporter\b", text, re.M))
    assert found == ["ops/steps.py"]
