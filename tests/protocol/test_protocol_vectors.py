"""Run every conformance vector in protocol/vectors/ against the reference decoders.

This file is also the reference runner that protocol/vectors/README.md describes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from latentbrush.protocol import (
    ProtocolError,
    check_hello,
    check_job,
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
    to_dict,
)
from latentbrush.protocol.messages import ClientHello, Limits, Submit

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


VALID = _load("valid.json")
INVALID = _load("invalid.json")


def _parts(parts: list[Any], binary: bool) -> str | bytes:
    pieces = []
    for part in parts:
        piece = part if isinstance(part, str) else part["repeat"] * part["count"]
        pieces.append(bytes.fromhex(piece) if binary else piece)
    return b"".join(pieces) if binary else "".join(pieces)


def materialize(spec: dict[str, Any]) -> str | bytes:
    """The exact frame content a vector's ``input`` describes."""
    if "text" in spec:
        return spec["text"]
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if "text_parts" in spec:
        return _parts(spec["text_parts"], binary=False)
    return _parts(spec["hex_parts"], binary=True)


def run_case(case: dict[str, Any], default_limits: dict[str, int]) -> Any:
    """Decode (and check) one case the way a server or client would; returns a value or a ProtocolError."""
    limits = {**default_limits, **case.get("limits", {})}
    data = materialize(case["input"])
    to_server = case["direction"] == "client_to_server"
    if case["frame"] == "text":
        decoded = decode_client_message(data) if to_server else decode_server_message(data)
    elif to_server:
        decoded = decode_client_frame(data, limits["max_frame_bytes"], limits["max_pixels"])
    else:
        decoded = decode_server_frame(data)
    check = case.get("check", "decode")
    if isinstance(decoded, ProtocolError) or check == "decode":
        return decoded
    if check == "job":
        assert isinstance(decoded, Submit), "a job check needs a submit message"
        return check_job(decoded.job, limits=Limits(**limits)) or decoded
    if check == "hello":
        assert isinstance(decoded, ClientHello), "a hello check needs a hello message"
        return check_hello(decoded) or decoded
    raise AssertionError(f"unknown check {check!r}")


@pytest.mark.parametrize("case", VALID["cases"], ids=[c["name"] for c in VALID["cases"]])
def test_valid_vector(case: dict[str, Any]) -> None:
    decoded = run_case(case, VALID["default_limits"])
    assert not isinstance(decoded, ProtocolError), f"{case['name']}: {decoded}"
    if case["frame"] == "text":
        assert to_dict(decoded) == case["expect"]["message"]
    else:
        header, payload = decoded
        assert to_dict(header) == case["expect"]["header"]
        assert bytes(payload).hex() == case["expect"]["payload_hex"]


@pytest.mark.parametrize("case", INVALID["cases"], ids=[c["name"] for c in INVALID["cases"]])
def test_invalid_vector(case: dict[str, Any]) -> None:
    result = run_case(case, INVALID["default_limits"])
    assert isinstance(result, ProtocolError), f"{case['name']} was accepted: {result!r}"
    expected = case["expect"]["error"]
    assert (result.code.value, result.field) == (expected["code"], expected["field"]), str(result)


def test_enough_invalid_vectors_of_every_kind() -> None:
    cases = INVALID["cases"]
    assert len(cases) >= 60
    kinds = {(c["direction"], c["frame"]) for c in cases}
    assert kinds == {(d, f) for d in ("client_to_server", "server_to_client") for f in ("text", "binary")}
    checks = {c.get("check", "decode") for c in cases}
    assert checks == {"decode", "job", "hello"}


def test_every_error_code_a_decoder_can_give_has_a_vector() -> None:
    decoder_codes = {
        "bad_frame", "bad_json", "unknown_type", "missing_field", "unknown_field", "bad_field", "too_large",
        "version_mismatch", "hash_mismatch", "bad_image", "out_of_bounds", "not_supported",
    }
    assert decoder_codes <= {c["expect"]["error"]["code"] for c in INVALID["cases"]}


def test_case_names_are_unique_and_vectors_are_up_to_date() -> None:
    for doc in (VALID, INVALID):
        names = [c["name"] for c in doc["cases"]]
        assert len(names) == len(set(names))
    spec = importlib.util.spec_from_file_location("build_vectors", VECTORS / "build_vectors.py")
    assert spec and spec.loader
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for name, body in builder.documents().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == body, f"{name} is stale: run build_vectors.py"
