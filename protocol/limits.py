"""The ranges a UI offers for job fields: the protocol's field limits, capped by a server's hello.

A widget (Krita spin box, GIMP procedure argument, CLI option) takes its range from here instead
of repeating numbers, so a client never offers a value the protocol or the connected server
refuses. Before a server is known (``limits=None``) the protocol's own range applies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .messages import JobRequest, Limits

__all__ = ["SERVER_CAPS", "field_range"]

# job field -> the server hello's Limits attribute that also bounds it from above (SPEC "Job request")
SERVER_CAPS: dict[tuple[type, str], str] = {
    (JobRequest, "steps"): "max_steps",
    (JobRequest, "batch"): "max_batch",
}


def field_range(cls: type, name: str, limits: Limits | None = None) -> tuple[Any, Any]:
    """``(min, max)`` of the numeric field ``name`` of message class ``cls``, capped by ``limits``.

    Raises ``KeyError`` for a field without a numeric range (a programming error, not user input).
    """
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    meta = by_name[name].metadata
    if "min" not in meta or "max" not in meta:
        raise KeyError(f"{cls.__name__}.{name} has no numeric range")
    low, high = meta["min"], meta["max"]
    cap = SERVER_CAPS.get((cls, name))
    if limits is not None and cap is not None:
        high = max(low, min(high, getattr(limits, cap)))  # a server allowing less than the minimum still gets it
    return low, high

