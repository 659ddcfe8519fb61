"""The decoders' typed results: each returns its side's message union or a ProtocolError (mypy checks the
callers, see ``.ci/typecheck``); the type tables are built from those unions, so they cannot drift."""

from __future__ import annotations

import typing

import pytest
from latentbrush.protocol import codec, messages
from latentbrush.protocol.errors import ProtocolError
from latentbrush.protocol.messages import BlobHeader, ClientMessage, ServerFrameHeader, ServerMessage


@pytest.mark.parametrize(
    ("decoder", "expected"),
    [
        (codec.decode_client_message, ClientMessage | ProtocolError),
        (codec.decode_server_message, ServerMessage | ProtocolError),
        (codec.decode_client_frame, tuple[BlobHeader, memoryview] | ProtocolError),
        (codec.decode_server_frame, tuple[ServerFrameHeader, memoryview] | ProtocolError),
    ],
)
def test_decoders_return_typed_unions(decoder: object, expected: object) -> None:
    hints = typing.get_type_hints(decoder, vars(codec))
    assert hints["return"] == expected


@pytest.mark.parametrize(
    ("table", "union"),
    [
        (messages.CLIENT_MESSAGES, ClientMessage),
        (messages.SERVER_MESSAGES, ServerMessage),
        (messages.SERVER_FRAMES, ServerFrameHeader),
    ],
)
def test_type_tables_are_the_unions(table: dict[str, type], union: object) -> None:
    members = typing.get_args(union)
    assert tuple(table.values()) == members
    assert all(table[cls.TYPE] is cls for cls in members)


def test_a_decoded_message_is_a_member_of_its_union() -> None:
    decoded = codec.decode_client_message('{"type":"query_queue"}')
    assert isinstance(decoded, typing.get_args(ClientMessage))
    assert isinstance(codec.decode_client_message('{"type":"done","job_id":"a"}'), ProtocolError)  # server-only
