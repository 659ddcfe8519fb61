"""The reference runner for protocol/vectors/ (see its README.md): build a case's frame, decode it, check it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentbrush.protocol import (
    ProtocolError,
    check_hello,
    check_job,
    decode_client_frame,
    decode_client_message,
    decode_server_frame,
    decode_server_message,
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
