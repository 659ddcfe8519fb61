"""Generic dict <-> dataclass conversion with validation that names the failing field.

One walk over the type hints of ``messages.py`` replaces hand-written per-message checks,
so SPEC.md, the vectors and the code cannot drift apart field by field.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from functools import cache
from typing import Any, Literal, TypeVar, Union

from .errors import ErrorCode, ProtocolError, ProtocolViolation
from .messages import RAW_FORMATS, JobRequest, Rect

T = TypeVar("T")
MAX_DEPTH = 8  # JSON nesting beyond what any message needs is refused before walking it


def _fail(code: ErrorCode, path: str, message: str) -> typing.NoReturn:
    raise ProtocolViolation(ProtocolError(code, message, path or None))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.name != "TYPE")


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _check_constraints(value: Any, meta: dict[str, Any], path: str) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            _fail(ErrorCode.BAD_FIELD, path, f"must be >= {meta['min']}, got {value}")
        if "max" in meta and value > meta["max"]:
            _fail(ErrorCode.BAD_FIELD, path, f"must be <= {meta['max']}, got {value}")
    if isinstance(value, str):
        if "max_len" in meta and len(value) > meta["max_len"]:
            _fail(ErrorCode.BAD_FIELD, path, f"longer than {meta['max_len']} characters")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            _fail(ErrorCode.BAD_FIELD, path, f"does not match {meta['pattern']}")


def _convert(tp: Any, value: Any, path: str, meta: dict[str, Any], strict: bool) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            _fail(ErrorCode.BAD_FIELD, path, "must not be null")
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path, meta, strict)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or not isinstance(value, str):
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
        return dict(value)
    if dataclasses.is_dataclass(tp):
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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(ErrorCode.BAD_FIELD, path, "must be a finite number")
        _check_constraints(value, meta, path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(ErrorCode.BAD_FIELD, path, "must be a string")
        _check_constraints(value, meta, path)
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a bug in messages.py, not bad input


def _from_dict(cls: type[T], data: Any, path: str, strict: bool, skip: tuple[str, ...] = ()) -> T:
    if not isinstance(data, dict):
        _fail(ErrorCode.BAD_FIELD, path, "must be an object")
    hints = _hints(cls)
    known = {f.name for f in _fields(cls)}
    if strict:
        extra = sorted(k for k in data if k not in known and k not in skip)
        if extra:
            _fail(ErrorCode.UNKNOWN_FIELD, _join(path, str(extra[0])), "is not a field of this message")
    kwargs: dict[str, Any] = {}
    for f in _fields(cls):
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
    """Build ``cls`` from parsed JSON; any problem comes back as a ProtocolError value."""
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


# ----------------------------------------------------------------------------- semantic checks


def _rect_in(inner: Rect, outer: Rect, path: str, outer_name: str) -> ProtocolError | None:
    if not outer.contains(inner):
        return ProtocolError(ErrorCode.OUT_OF_BOUNDS, f"rectangle is not inside the {outer_name}", path)
    return None


def check_job(job: JobRequest, max_pixels: int | None = None) -> ProtocolError | None:
    """Checks across fields that the type walk cannot express (SPEC.md "Job request")."""
    canvas = Rect(0, 0, job.canvas.width, job.canvas.height)
    context = job.context or job.region
    for err in (
        _rect_in(job.region, canvas, "job.region", "canvas"),
        _rect_in(context, canvas, "job.context", "canvas"),
        _rect_in(job.region, context, "job.region", "context"),
    ):
        if err:
            return err
    if job.op in ("img2img", "inpaint", "upscale") and job.image is None:
        return ProtocolError(ErrorCode.MISSING_FIELD, f"{job.op} needs an image blob", "job.image")
    if job.op == "inpaint" and job.mask is None:
        return ProtocolError(ErrorCode.MISSING_FIELD, "inpaint needs a mask blob", "job.mask")
    if job.op != "upscale" and job.upscale is not None and not job.upscale.refine:
        return ProtocolError(ErrorCode.BAD_FIELD, "upscale parameters only apply to op upscale", "job.upscale")
    if max_pixels is not None:
        for name, rect in (("job.context", context), ("job.region", job.region)):
            if rect.width * rect.height > max_pixels:
                return ProtocolError(ErrorCode.TOO_LARGE, f"more than {max_pixels} pixels", name)
        if job.resolution and job.resolution.width * job.resolution.height > max_pixels:
            return ProtocolError(ErrorCode.TOO_LARGE, f"more than {max_pixels} pixels", "job.resolution")
    return None


def raw_payload_size(fmt: str, width: int, height: int, stride: int | None) -> tuple[int, int] | None:
    """(stride, expected payload bytes) for raw formats, None for encoded ones."""
    bpp = RAW_FORMATS.get(fmt)
    if bpp is None:
        return None
    row = width * bpp
    stride = row if stride is None else stride
    return stride, stride * (height - 1) + row
