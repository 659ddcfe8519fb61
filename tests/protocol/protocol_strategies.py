"""Hypothesis strategies built generically from the dataclasses' type hints and field metadata.

A value drawn from ``message(cls)`` satisfies every per-field constraint of ``cls`` (types,
ranges, lengths, patterns, choices), so it must survive encode -> decode unchanged.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from functools import cache
from typing import Any, Literal, Union

from hypothesis import strategies as st
from latentbrush.protocol import messages
from latentbrush.protocol.codec import blob_hash

TEXT = st.characters(exclude_categories=("Cs",))  # lone surrogates cannot travel as UTF-8
MAX_TEXT = 24
MAX_ITEMS = 4
UNBOUNDED_INT = 2**53  # integers without limits stay well inside what every JSON parser keeps exact

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-UNBOUNDED_INT, UNBOUNDED_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(TEXT, max_size=MAX_TEXT),
)
json_keys = st.text(TEXT, max_size=12)
# three levels at most, well inside the decoder's nesting limit wherever a free-form object sits
json_values = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=MAX_ITEMS),
    st.dictionaries(json_keys, json_scalars | st.lists(json_scalars, max_size=MAX_ITEMS), max_size=MAX_ITEMS),
)


def _string(meta: dict[str, Any]) -> st.SearchStrategy[str]:
    if "pattern" in meta:
        pattern = re.compile(meta["pattern"])
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: pattern.fullmatch(s) is not None)
    return st.text(TEXT, max_size=min(meta.get("max_len", MAX_TEXT), MAX_TEXT))


def _number(tp: type, meta: dict[str, Any]) -> st.SearchStrategy[Any]:
    if tp is float:
        return st.floats(meta.get("min"), meta.get("max"), allow_nan=False, allow_infinity=False)
    return st.integers(meta.get("min", -UNBOUNDED_INT), meta.get("max", UNBOUNDED_INT))


def value(tp: Any, meta: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for one field of type ``tp`` with the constraints in ``meta``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.none() | value(inner[0], meta)
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin is tuple:
        lo = meta.get("items_min", 0)
        hi = min(meta.get("items_max", MAX_ITEMS), max(lo, MAX_ITEMS))
        return st.lists(value(typing.get_args(tp)[0], meta), min_size=lo, max_size=hi).map(tuple)
    if origin is dict:
        item_tp = typing.get_args(tp)[1]
        if dataclasses.is_dataclass(item_tp):  # a table of values by name (ServerHello.presets)
            return st.dictionaries(json_keys, message(item_tp), max_size=MAX_ITEMS)
        return st.dictionaries(json_keys, json_values, max_size=MAX_ITEMS)
    if dataclasses.is_dataclass(tp):
        return message(tp)
    if tp is bool:
        return st.booleans()
    if tp in (int, float):
        return _number(tp, meta)
    if tp is str:
        return _string(meta)
    if tp is Any:
        return json_values
    raise TypeError(f"no strategy for {tp!r}")


@cache
def message(cls: type) -> st.SearchStrategy[Any]:
    """Instances of the dataclass ``cls`` with every field drawn within its limits."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: value(hints[f.name], dict(f.metadata)) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


RAW_FORMATS = messages.RAW_FORMATS


@st.composite
def image_payload(draw: st.DrawFn, formats: tuple[str, ...], allow_stride: bool = True) -> dict[str, Any]:
    """format, width, height, stride and a payload whose length fits them (any bytes for encoded formats)."""
    fmt = draw(st.sampled_from(formats))
    width, height = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    stride = None
    if fmt in RAW_FORMATS:
        row = width * RAW_FORMATS[fmt]
        if allow_stride:
            stride = draw(st.none() | st.integers(row, row + 8))
        length = (stride or row) * (height - 1) + row
        payload = draw(st.binary(min_size=length, max_size=length))
    else:
        payload = draw(st.binary(min_size=1, max_size=64))
    return {"format": fmt, "width": width, "height": height, "stride": stride, "payload": payload}


@st.composite
def blob_frame(draw: st.DrawFn) -> tuple[messages.BlobHeader, bytes]:
    image = draw(image_payload(typing.get_args(messages.ImageFormat)))
    payload = image.pop("payload")
    return messages.BlobHeader(hash=blob_hash(payload), **image), payload


@st.composite
def server_frame(draw: st.DrawFn) -> tuple[Any, bytes]:
    cls = draw(st.sampled_from((messages.PreviewHeader, messages.ResultHeader)))
    header = draw(message(cls))
    formats = messages.PREVIEW_FORMATS if cls is messages.PreviewHeader else messages.RESULT_FORMATS
    image = draw(image_payload(formats, allow_stride=cls is messages.ResultHeader))
    payload = image.pop("payload")
    if cls is messages.PreviewHeader:
        image.pop("stride")
    return dataclasses.replace(header, **image), payload
