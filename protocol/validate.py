"""Generic dict <-> dataclass conversion with validation that names the failing field.

One walk over the type hints of ``messages.py`` replaces hand-written per-message checks,
so SPEC.md, the vectors and the code cannot drift apart field by field.
Checks across fields (rectangles, limits, formats) live in ``checks.py``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from functools import cache
from typing import Any, Literal, TypeVar, Union, cast

from .errors import ErrorCode, ProtocolError, ProtocolViolation
from .messages import RAW_FORMATS

__all__ = ["MAX_DEPTH", "from_dict", "raw_payload_size", "to_dict"]

T = TypeVar("T")
MAX_DEPTH = 8  # JSON nesting beyond what any message needs is refused before walking it
MAX_KEY_ECHO = 64  # an unknown key longer than this is cut when named in an error


def _fail(code: ErrorCode, path: str, message: str) -> typing.NoReturn:
    raise ProtocolViolation(ProtocolError(code, message, path or None))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.name != "TYPE")


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def is_unicode(text: str) -> bool:
    """False for strings holding lone surrogates (JSON allows ``"\\ud800"``; UTF-8 cannot carry it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _echo(name: str) -> str:
    """A hostile member name as an error may quote it: cut, and lone surrogates written as ``\\udXXX``
    (an error that UTF-8 cannot carry would cost the connection instead of one message)."""
    cut = name if len(name) <= MAX_KEY_ECHO else name[:MAX_KEY_ECHO] + "..."
    return cut if is_unicode(cut) else cut.encode("utf-8", "backslashreplace").decode("utf-8")


def _show(number: float) -> str:
    # str() of an int over 4300 digits raises ValueError (CPython's int_max_str_digits)
    return "a number out of range" if isinstance(number, int) and number.bit_length() > 128 else str(number)


def _check_constraints(value: Any, meta: dict[str, Any], path: str) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            _fail(ErrorCode.BAD_FIELD, path, f"must be >= {meta['min']}, got {_show(value)}")
        if "max" in meta and value > meta["max"]:
            _fail(ErrorCode.BAD_FIELD, path, f"must be <= {meta['max']}, got {_show(value)}")
    if isinstance(value, str):
        if "max_len" in meta and len(value) > meta["max_len"]:
            _fail(ErrorCode.BAD_FIELD, path, f"longer than {meta['max_len']} characters")
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            _fail(ErrorCode.BAD_FIELD, path, f"does not match {meta['pattern']}")


def _check_json_value(value: Any, path: str) -> None:
    """Free-form fields (``dict[str, Any]``) must still be plain, finite, valid-Unicode JSON."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str) or not is_unicode(key):
                    _fail(ErrorCode.BAD_FIELD, path, "object keys must be strings")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if not is_unicode(item):
                _fail(ErrorCode.BAD_FIELD, path, "string is not valid Unicode")
        elif isinstance(item, float):
            if not math.isfinite(item):
                _fail(ErrorCode.BAD_FIELD, path, "numbers must be finite")
        elif item is not None and not isinstance(item, (bool, int)):
            _fail(ErrorCode.BAD_FIELD, path, f"{type(item).__name__} is not a JSON value")


def _convert(tp: Any, value: Any, path: str, meta: dict[str, Any], strict: bool) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            _fail(ErrorCode.BAD_FIELD, path, "must not be null")
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {tp!r} at {path}")  # a bug in messages.py, not bad input
        return _convert(inner[0], value, path, meta, strict)
    if origin is Literal:
        choices = typing.get_args(tp)
        # isinstance first: True == 1 and 1.0 == 1, so membership alone would let non-strings through
        if not isinstance(value, str) or value not in choices:
            _fail(ErrorCode.BAD_FIELD, path, f"must be one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            _fail(ErrorCode.BAD_FIELD, path, "must be an array")
        if "items_max" in meta and len(value) > meta["items_max"]:
            _fail(ErrorCode.BAD_FIELD, path, f"more than {meta['items_max']} items")
        if "items_min" in meta and len(value) < meta["items_min"]:
            _fail(ErrorCode.BAD_FIELD, path, f"fewer than {meta['items_min']} items")
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(item_tp, v, _join(path, i), meta, strict) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            _fail(ErrorCode.BAD_FIELD, path, "must be an object")
        item_tp = typing.get_args(tp)[1]
        if isinstance(item_tp, type) and dataclasses.is_dataclass(item_tp):  # a table of values by name
            return _convert_table(item_tp, value, path, meta, strict)
        _check_json_value(value, path)
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, path, strict)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(ErrorCode.BAD_FIELD, path, "must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(ErrorCode.BAD_FIELD, path, "must be an integer")
        _check_constraints(value, meta, path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(ErrorCode.BAD_FIELD, path, "must be a number")
        try:
            number = float(value)  # an int too large for a float raises OverflowError
        except OverflowError:
            _fail(ErrorCode.BAD_FIELD, path, "number out of range")
        if not math.isfinite(number):
            _fail(ErrorCode.BAD_FIELD, path, "must be a finite number")
        _check_constraints(number, meta, path)
        return number
    if tp is str:
        if not isinstance(value, str):
            _fail(ErrorCode.BAD_FIELD, path, "must be a string")
        if not is_unicode(value):
            _fail(ErrorCode.BAD_FIELD, path, "string is not valid Unicode (lone surrogate)")
        _check_constraints(value, meta, path)
        return value
    if tp is Any:
        _check_json_value(value, path)
        return value
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a bug in messages.py, not bad input


def _convert_table(
    item_tp: type, value: dict[str, Any], path: str, meta: dict[str, Any], strict: bool
) -> dict[str, Any]:
    """``dict[str, <dataclass>]``: items_max bounds the entries, max_len and pattern apply to the names."""
    if "items_max" in meta and len(value) > meta["items_max"]:
        _fail(ErrorCode.BAD_FIELD, path, f"more than {meta['items_max']} items")
    table: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not is_unicode(name):
            _fail(ErrorCode.BAD_FIELD, path, "names must be valid Unicode strings")
        _check_constraints(name, meta, _join(path, _echo(name)))
        table[name] = _from_dict(item_tp, item, _join(path, _echo(name)), strict)
    return table


def _from_dict(cls: type[T], data: Any, path: str, strict: bool, skip: tuple[str, ...] = ()) -> T:
    if not isinstance(data, dict):
        _fail(ErrorCode.BAD_FIELD, path, "must be an object")
    hints = _hints(cast(type, cls))  # a class is hashable; mypy cannot tell for type[T]
    fields = _fields(cls)
    if strict and not getattr(cls, "LENIENT", False):
        known = {f.name for f in fields}
        extra = sorted(str(k) for k in data if k not in known and k not in skip)
        if extra:
            _fail(ErrorCode.UNKNOWN_FIELD, _join(path, _echo(extra[0])), "is not a field of this message")
    kwargs: dict[str, Any] = {}
    for f in fields:
        fpath = _join(path, f.name)
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(ErrorCode.MISSING_FIELD, fpath, "is required")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], fpath, dict(f.metadata), strict)
    return cls(**kwargs)


def _depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests no deeper than ``limit``; iterative, so hostile input cannot recurse."""
    stack = [(value, 0)]
    while stack:
        item, d = stack.pop()
        if d > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return True


def from_dict(cls: type[T], data: Any, *, strict: bool = True, skip: tuple[str, ...] = ("type",)) -> T | ProtocolError:
    """Build ``cls`` from parsed JSON; any problem comes back as a ProtocolError value.

    ``strict`` makes unknown fields errors (server side), except in classes marked ``LENIENT``.
    """
    if not _depth(data, MAX_DEPTH):
        return ProtocolError(ErrorCode.BAD_JSON, f"nested deeper than {MAX_DEPTH} levels")
    try:
        return _from_dict(cls, data, "", strict, skip)
    except ProtocolViolation as exc:
        return exc.error
    except RecursionError:
        return ProtocolError(ErrorCode.BAD_JSON, "nested too deeply")


def to_dict(msg: Any) -> dict[str, Any]:
    """Dataclass -> JSON-ready dict; ``type`` first for messages, None-valued optionals omitted."""
    out: dict[str, Any] = {}
    tp = getattr(type(msg), "TYPE", None)
    if tp is not None:
        out["type"] = tp
    for f in _fields(type(msg)):
        value = getattr(msg, f.name)
        if value is None:
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def raw_payload_size(fmt: str, width: int, height: int, stride: int | None) -> tuple[int, int] | None:
    """(stride, expected payload bytes) for raw formats, None for encoded ones.

    The last row needs no padding: ``stride * (height - 1) + width * bytes_per_pixel``.
    """
    bpp = RAW_FORMATS.get(fmt)
    if bpp is None:
        return None
    row = width * bpp
    stride = row if stride is None else stride
    return stride, stride * (height - 1) + row
