"""Render the field tables of SPEC.md from messages.py, so a test can hold the two together.

SPEC.md's tables are written by hand (the "meaning" column is prose) but their first four
columns must equal what this module renders. Run ``python tests/protocol/protocol_spec_tables.py``
to print fresh tables when a message changes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from latentbrush.protocol import geometry, inputs, messages

SPEC_PATH = Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md"
COLUMNS = ("field", "type", "default", "limits")


def message_classes() -> list[type]:
    """Every dataclass of messages.py (with Size and Rect, which it imports from geometry.py), in source order,
    and the wire types of inputs.py."""
    homes = (messages.__name__, geometry.__name__)
    return [
        obj
        for obj in vars(messages).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ in homes
    ] + [inputs.JobInput]


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner[0]
    return tp


def render_type(tp: Any) -> str:
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "string"
    if origin is tuple:
        return f"array of {render_type(typing.get_args(tp)[0])}"
    if origin is dict:
        item_tp = typing.get_args(tp)[1]
        return f"object: name -> {item_tp.__name__}" if dataclasses.is_dataclass(item_tp) else "object"
    if dataclasses.is_dataclass(tp):
        return tp.__name__
    names = {int: "integer", float: "number", str: "string", bool: "boolean", Any: "any"}
    return names[tp]


def render_default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        return f"`{json.dumps(f.default_factory())}`"
    if f.default is dataclasses.MISSING:
        return "required"
    if f.default is None:
        return "absent"
    if dataclasses.is_dataclass(f.default):
        return "all defaults"
    value = list(f.default) if isinstance(f.default, tuple) else f.default
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def _range(meta: dict[str, Any]) -> str | None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return None


def render_limits(tp: Any, meta: dict[str, Any]) -> str:
    tp = _strip_optional(tp)
    parts: list[str] = []
    is_array = typing.get_origin(tp) is tuple
    if is_array:
        lo, hi = meta.get("items_min"), meta.get("items_max")
        if lo is not None and lo == hi:
            parts.append(f"exactly {lo} items")
        elif lo is not None and hi is not None:
            parts.append(f"{lo}..{hi} items")
        elif hi is not None:
            parts.append(f"<= {hi} items")
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is dict and "items_max" in meta:  # a table of values by name
        parts.append(f"<= {meta['items_max']} members")
    prefix = "each " if is_array else "names " if typing.get_origin(tp) is dict else ""
    if typing.get_origin(tp) is Literal:
        parts.append(prefix + "one of " + ", ".join(f"`{c}`" for c in typing.get_args(tp)))
    span = _range(meta)
    if span:
        parts.append(prefix + span)
    if "max_len" in meta:
        parts.append(f"{prefix}<= {meta['max_len']} chars")
    if "pattern" in meta:
        parts.append(f"{prefix}pattern `{meta['pattern']}`")
    return "; ".join(parts)


def expected_rows(cls: type) -> list[tuple[str, str, str, str]]:
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        rows.append((f"`{f.name}`", render_type(tp), render_default(f), render_limits(tp, dict(f.metadata))))
    return rows


def render_table(cls: type) -> str:
    lines = ["| field | type | default | limits | meaning |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |  |" for row in expected_rows(cls)]
    return "\n".join(lines)


_HEADING = re.compile(r"^#{1,6} ")
_HEADING_NAME = re.compile(r"^#{2,6} [^`]*`(?P<name>[A-Z][A-Za-z]+)`")


def spec_tables(text: str) -> dict[str, list[tuple[str, ...]]]:
    """Class name -> rows (all columns) of the first table after its heading ("### `Submit` ...")."""
    tables: dict[str, list[tuple[str, ...]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if _HEADING.match(line):
            match = _HEADING_NAME.match(line)
            current = match["name"] if match else None
            if current:
                tables.setdefault(current, [])
            continue
        if current and line.startswith("|"):
            cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
            if cells[0] in ("field", "") or set(cells[0]) <= {"-", ":"}:
                continue
            tables[current].append(cells)
        elif current and tables[current] and not line.startswith("|"):
            current = None  # the table has ended
    return tables


if __name__ == "__main__":
    for cls in message_classes():
        tag = getattr(cls, "TYPE", None)
        print(f"### `{cls.__name__}`" + (f" (type `{tag}`)" if tag else ""))
        print()
        print(render_table(cls) if dataclasses.fields(cls) else "No fields.")
        print()
