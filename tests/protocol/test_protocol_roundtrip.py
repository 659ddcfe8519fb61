"""Property tests: every valid message survives encode -> decode unchanged, in both directions."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from latentbrush.protocol import (
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
    encode_frame,
    encode_message,
    from_dict,
    to_dict,
)
from latentbrush.protocol.messages import CLIENT_MESSAGES, SERVER_MESSAGES, JobRequest
from protocol_strategies import blob_frame, message, server_frame

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = 1 << 30


@pytest.mark.parametrize("cls", list(CLIENT_MESSAGES.values()), ids=list(CLIENT_MESSAGES))
def test_client_message_round_trip(cls: type) -> None:
    @SETTINGS
    @given(message(cls))
    def check(msg: object) -> None:
        text = encode_message(msg)
        assert decode_client_message(text) == msg
        assert decode_client_message(text.encode("utf-8")) == msg

    check()


@pytest.mark.parametrize("cls", list(SERVER_MESSAGES.values()), ids=list(SERVER_MESSAGES))
def test_server_message_round_trip(cls: type) -> None:
    @SETTINGS
    @given(message(cls))
    def check(msg: object) -> None:
        assert decode_server_message(encode_message(msg)) == msg

    check()


@SETTINGS
@given(blob_frame())
def test_blob_frame_round_trip(frame: tuple) -> None:
    header, payload = frame
    decoded = decode_client_frame(encode_frame(header, payload), BIG, BIG)
    assert decoded == (header, payload)


@SETTINGS
@given(server_frame())
def test_preview_and_result_frame_round_trip(frame: tuple) -> None:
    header, payload = frame
    decoded = decode_server_frame(bytearray(encode_frame(header, payload)))
    assert decoded[0] == header
    assert bytes(decoded[1]) == payload


@SETTINGS
@given(message(JobRequest))
def test_to_dict_omits_only_absent_fields(job: JobRequest) -> None:
    plain = to_dict(job)
    assert json.loads(json.dumps(plain)) == plain  # plain JSON values only
    for name, value in vars(job).items():
        assert (name in plain) == (value is not None)
    assert from_dict(JobRequest, plain) == job
