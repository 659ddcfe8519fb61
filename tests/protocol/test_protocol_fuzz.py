"""Hostile input: every decoder returns a message or a ProtocolError for any input, never raises.

Random bytes, byte-level mutations of valid frames, structural mutations of valid messages
(any field replaced by any JSON value), and a few deliberately expensive inputs (deep
nesting, huge numbers, megabyte strings) that an unguarded decoder would choke on.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from latentbrush.protocol import (
    ErrorCode,
    ProtocolError,
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
    encode_message,
    from_dict,
    to_dict,
)
from latentbrush.protocol.codec import MAX_HEADER_BYTES, MAX_TEXT_BYTES
from latentbrush.protocol.messages import (
    CLIENT_FRAMES,
    CLIENT_MESSAGES,
    SERVER_FRAMES,
    SERVER_MESSAGES,
    Done,
    JobRequest,
)
from protocol_strategies import blob_frame, json_values, message, server_frame
from protocol_vector_runner import VALID, materialize

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 1 << 20


def _client_frame(data: Any) -> Any:
    return decode_client_frame(data, LIMIT, 1 << 24)


TEXT_DECODERS = {"client": (decode_client_message, CLIENT_MESSAGES), "server": (decode_server_message, SERVER_MESSAGES)}
FRAME_DECODERS = {"client": (_client_frame, CLIENT_FRAMES), "server": (decode_server_frame, SERVER_FRAMES)}


def assert_text_result(result: Any, table: dict[str, type]) -> None:
    if isinstance(result, ProtocolError):
        assert isinstance(result.code, ErrorCode) and result.message
        return
    assert type(result) in table.values()


def assert_frame_result(result: Any, table: dict[str, type]) -> None:
    if isinstance(result, ProtocolError):
        assert isinstance(result.code, ErrorCode) and result.message
        return
    header, payload = result
    assert type(header) in table.values()
    assert isinstance(payload, memoryview)


def decode_everywhere(data: Any) -> None:
    for decode, table in TEXT_DECODERS.values():
        assert_text_result(decode(data), table)
    for decode, table in FRAME_DECODERS.values():
        assert_frame_result(decode(data), table)


VALID_INPUTS = [materialize(case["input"]) for case in VALID["cases"]]


# ----------------------------------------------------------------------------- random and mutated bytes


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    decode_everywhere(data)


@SETTINGS
@given(st.text(max_size=256))
def test_random_text(data: str) -> None:
    decode_everywhere(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(VALID_INPUTS))
    data = bytearray(base.encode("utf-8", "surrogatepass") if isinstance(base, str) else base)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(("flip", "cut", "insert", "delete", "repeat")))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_valid_frames(data: bytes) -> None:
    decode_everywhere(data)
    try:
        decode_everywhere(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass  # not text; the bytes were decoded above


# ----------------------------------------------------------------------------- structural mutations

hostile_values = st.one_of(
    json_values,
    st.integers(-(10**39), 10**39),
    st.sampled_from([[], {}, "", -1, 0, 2**31, 2**53 + 1, 1e308, -1e308, 5e-324, "\x00", "\u202e", "🐈" * 70]),
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated_message(draw: st.DrawFn, classes: tuple[type, ...]) -> dict[str, Any]:
    """A valid message as a dict, with one spot replaced, deleted, or given an extra member."""
    obj = to_dict(draw(st.sampled_from(classes).flatmap(message)))
    path = draw(st.sampled_from(_paths(obj)))
    action = draw(st.sampled_from(("replace", "delete", "add")))
    if not path:
        obj[draw(st.text(max_size=8))] = draw(hostile_values)
        return obj
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "replace":
        parent[last] = draw(hostile_values)
    elif action == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][draw(st.text(max_size=8))] = draw(hostile_values)
    else:
        parent[last] = [parent[last], draw(hostile_values)]
    return obj


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, allow_nan=True, ensure_ascii=False)


@SETTINGS
@given(mutated_message(tuple(CLIENT_MESSAGES.values())))
def test_mutated_client_messages(obj: dict[str, Any]) -> None:
    text = _dumps(obj)
    result = decode_client_message(text)
    assert_text_result(result, CLIENT_MESSAGES)
    if not isinstance(result, ProtocolError):  # whatever the server accepts, it can send back unchanged
        assert decode_client_message(encode_message(result)) == result
    assert_text_result(decode_server_message(text), SERVER_MESSAGES)


@SETTINGS
@given(mutated_message(tuple(SERVER_MESSAGES.values())))
def test_mutated_server_messages(obj: dict[str, Any]) -> None:
    result = decode_server_message(_dumps(obj))
    assert_text_result(result, SERVER_MESSAGES)
    if not isinstance(result, ProtocolError):
        assert decode_server_message(encode_message(result)) == result


@st.composite
def mutated_frame(draw: st.DrawFn) -> bytes:
    header, payload = draw(blob_frame() | server_frame())
    obj = to_dict(header)
    key = draw(st.sampled_from(sorted(obj)))
    if draw(st.booleans()):
        obj[key] = draw(hostile_values)
    else:
        del obj[key]
    head = _dumps(obj).encode("utf-8", "surrogatepass")
    return struct.pack(">I", len(head)) + head + payload


@SETTINGS
@given(mutated_frame())
def test_mutated_frame_headers(data: bytes) -> None:
    for decode, table in FRAME_DECODERS.values():
        assert_frame_result(decode(data), table)


# ----------------------------------------------------------------------------- expensive inputs

_CANCEL = '{"type":"cancel","job_id":'
HOSTILE_TEXTS = {
    "million_digit_integer": _CANCEL + "9" * (MAX_TEXT_BYTES - 40) + "}",
    "million_brackets": _CANCEL + "[" * (MAX_TEXT_BYTES - 40) + "}",
    "deep_but_balanced": _CANCEL + "[" * 50000 + "]" * 50000 + "}",
    "many_unknown_keys": "{" + ",".join(f'"k{i}":0' for i in range(90000)) + ',"type":"query_queue"}',
    "many_hashes": '{"type":"query_blobs","hashes":[' + ",".join(["0"] * 400000) + "]}",
    "megabyte_prompt": '{"type":"submit","job":{"id":"j","op":"txt2img","canvas":{"width":8,"height":8},'
    '"region":{"x":0,"y":0,"width":8,"height":8},"prompt":"' + "p" * (MAX_TEXT_BYTES - 200) + '"}}',
    "lone_surrogates": _CANCEL + '"' + "\\ud800" * 150000 + '"}',
    "huge_exponent": _CANCEL + "1e999999999}",
    "one_byte_over": '{"type":"query_queue","x":"' + "x" * MAX_TEXT_BYTES + '"}',
    "multibyte_over": '{"type":"query_queue","x":"' + "é" * (MAX_TEXT_BYTES // 2) + '"}',
}


@pytest.mark.parametrize("name", list(HOSTILE_TEXTS))
def test_expensive_texts_fail_cleanly(name: str) -> None:
    text = HOSTILE_TEXTS[name]
    for decode, table in TEXT_DECODERS.values():
        result = decode(text)
        assert_text_result(result, table)
        assert isinstance(result, ProtocolError)


def test_multibyte_text_is_measured_in_bytes() -> None:
    assert decode_client_message(HOSTILE_TEXTS["multibyte_over"]).code is ErrorCode.TOO_LARGE
    small = '{"type":"query_queue"}'
    assert decode_client_message(small + " " * (MAX_TEXT_BYTES - len(small))) is not None


def _frame_with_header(head: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(head)) + head + payload


HOSTILE_FRAMES = {
    "header_of_brackets": _frame_with_header(b"[" * MAX_HEADER_BYTES),
    "header_of_digits": _frame_with_header(b'{"type":"blob","width":' + b"9" * 60000 + b"}"),
    "huge_dimensions": _frame_with_header(
        b'{"type":"blob","hash":"sha256:' + b"0" * 64 + b'","format":"rgba8","width":65536,"height":65536}'
    ),
    "huge_stride": _frame_with_header(
        b'{"type":"result","job_id":"j","index":0,"rect":{"x":0,"y":0,"width":1,"height":1},'
        b'"format":"rgba8","width":65536,"height":65536,"stride":262144}'
    ),
    "header_length_max": b"\xff\xff\xff\xff" + b"{}",
}


@pytest.mark.parametrize("name", list(HOSTILE_FRAMES))
def test_expensive_frames_fail_cleanly(name: str) -> None:
    for decode, table in FRAME_DECODERS.values():
        result = decode(HOSTILE_FRAMES[name])
        assert_frame_result(result, table)
        assert isinstance(result, ProtocolError)


@pytest.mark.parametrize("data", [None, 17, 1.5, ["{}"], {"type": "cancel"}, object()], ids=repr)
def test_non_frame_inputs(data: Any) -> None:
    for decode in (decode_client_message, decode_server_message, _client_frame, decode_server_frame):
        result = decode(data)
        assert isinstance(result, ProtocolError) and result.code is ErrorCode.BAD_FRAME


def test_frames_from_any_buffer() -> None:
    names = [c["name"] for c in VALID["cases"]]
    data = VALID_INPUTS[names.index("blob_rgba8_2x2")]
    expected = _client_frame(data)
    assert not isinstance(expected, ProtocolError)
    for buffer in (bytearray(data), memoryview(data), memoryview(bytearray(data))):
        header, payload = _client_frame(buffer)
        assert header == expected[0]
        assert bytes(payload) == bytes(expected[1])


# ----------------------------------------------------------------------------- from_dict with Python values


@pytest.mark.parametrize(
    ("cls", "data", "field"),
    [
        (JobRequest, {"steps": 10**5000}, "steps"),
        (JobRequest, {"cfg": 10**400}, "cfg"),
        (JobRequest, {"cfg": math.nan}, "cfg"),
        (JobRequest, {"cfg": -math.inf}, "cfg"),
        (JobRequest, {"prompt": "\ud800"}, "prompt"),
        (JobRequest, {"prefill_color": (1, 2, 3)}, "prefill_color"),
        (JobRequest, {"op": ["inpaint"]}, "op"),
        (JobRequest, {"op": 1}, "op"),
        (Done, {"info": {1: 2}}, "info"),
        (Done, {"info": {"x": math.nan}}, "info"),
        (Done, {"info": {"x": {1, 2}}}, "info"),
        (Done, {"info": {"x": b"bytes"}}, "info"),
        (Done, {"info": {"x": "\udfff"}}, "info"),
    ],
)
def test_from_dict_refuses_values_json_cannot_carry(cls: type, data: dict[str, Any], field: str) -> None:
    base = {"id": "j", "op": "inpaint", "canvas": {"width": 8, "height": 8},
            "region": {"x": 0, "y": 0, "width": 8, "height": 8}}
    if cls is Done:
        base = {"job_id": "j", "results": 1}
    result = from_dict(cls, {**base, **data})
    assert isinstance(result, ProtocolError)
    assert result.code is ErrorCode.BAD_FIELD
    assert result.field == field


def test_decoded_values_are_plain_and_finite() -> None:
    """Whatever a decoder accepts can be encoded again without allow_nan."""
    for data in VALID_INPUTS:
        for decode in (decode_client_message, decode_server_message):
            result = decode(data)
            if not isinstance(result, ProtocolError):
                json.dumps(to_dict(result), allow_nan=False)
