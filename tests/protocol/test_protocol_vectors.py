"""Run every conformance vector in protocol/vectors/ against the reference decoders."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from latentbrush.protocol import ProtocolError, to_dict
from protocol_vector_runner import INVALID, VALID, VECTORS, run_case


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


def test_case_names_are_unique() -> None:
    for doc in (VALID, INVALID):
        names = [c["name"] for c in doc["cases"]]
        assert len(names) == len(set(names))


def test_vectors_are_up_to_date_and_built_by_the_standard_library_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(VECTORS / "build_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
