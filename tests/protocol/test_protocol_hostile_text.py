"""Errors that quote hostile names (lone surrogates) must still travel as UTF-8 (issue 10)."""

from __future__ import annotations

import re

import pytest
from latentbrush.protocol import Error, ProtocolError, decode_client_message, decode_server_message, encode_message

# JSON text (ASCII on the wire) whose member names or values decode to lone surrogates
HOSTILE = {
    "unknown member": ('{"type":"query_queue","\\ud800":1}', "unknown_field"),
    "nested unknown member": ('{"type":"submit","job":{"id":"j1","\\udfff":1}}', "unknown_field"),
    "unknown member with a pair split": ('{"type":"cancel","job_id":"j1","a\\udc00\\ud800b":1}', "unknown_field"),
    "unknown type": ('{"type":"\\ud800"}', "unknown_type"),
    "duplicate member": ('{"type":"cancel","\\ud800":1,"\\ud800":2}', "bad_json"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_error_about_a_hostile_name_encodes_and_decodes(name: str) -> None:
    text, code = HOSTILE[name]
    err = decode_client_message(text)
    assert isinstance(err, ProtocolError) and err.code.value == code
    reply = encode_message(Error.from_error(err))
    reply.encode("utf-8")  # what a WebSocket text frame needs; raised UnicodeEncodeError before the fix
    back = decode_server_message(reply)
    assert isinstance(back, Error) and back.code == code, back


def test_unknown_member_is_named_readably() -> None:
    err = decode_client_message('{"type":"query_queue","\\ud800":1}')
    assert isinstance(err, ProtocolError)
    assert err.field == "\\ud800"  # escaped, so the client can show it


def test_encode_message_never_raises_on_lone_surrogates() -> None:
    reply = encode_message(Error("bad_field", "bad \ud800 text", "x\udc00", None))
    reply.encode("utf-8")
    back = decode_server_message(reply)
    assert isinstance(back, Error) and back.code == "bad_field"


def test_encode_message_keeps_valid_text_unchanged() -> None:
    msg = Error("bad_field", "caf\u00e9 \U0001f600 \\ud800", "f")
    assert decode_server_message(encode_message(msg)) == msg


def test_spec_says_invalid_utf8_in_a_text_frame_closes_with_1007() -> None:
    """RFC 6455 8.1: a text frame that is not UTF-8 fails the connection (1007), before any decoder."""
    from protocol_spec_tables import SPEC_PATH

    spec = SPEC_PATH.read_text(encoding="utf-8")
    assert re.search(r"1007[^\n]*not[^\n]*UTF-8|UTF-8[^\n]*1007", spec), "SPEC.md must name close 1007"
    readme = (SPEC_PATH.parent / "vectors" / "README.md").read_text(encoding="utf-8")
    assert "1007" in readme
