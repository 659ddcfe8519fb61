"""The one out-of-memory classifier (``events.is_out_of_memory``) every part of the backend uses."""

from __future__ import annotations

import pytest
from latentbrush.backend.events import is_out_of_memory


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
    assert is_out_of_memory(exc) is expected
