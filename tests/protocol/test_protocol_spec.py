"""SPEC.md must say what the code does: every message table, error code and sampler name."""

from __future__ import annotations

import dataclasses
import re

import pytest
from latentbrush.protocol import FATAL_CODES, ErrorCode
from latentbrush.protocol.messages import CLIENT_FRAMES, CLIENT_MESSAGES, SERVER_FRAMES, SERVER_MESSAGES
from protocol_spec_tables import SPEC_PATH, expected_rows, message_classes, spec_tables

SPEC = SPEC_PATH.read_text(encoding="utf-8")
TABLES = spec_tables(SPEC)
CLASSES = message_classes()


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_message_table_matches_dataclass(cls: type) -> None:
    assert cls.__name__ in TABLES, f"SPEC.md has no heading with `{cls.__name__}`"
    rows = TABLES[cls.__name__]
    assert [row[:4] for row in rows] == expected_rows(cls)
    assert all(len(row) == 5 and row[4] for row in rows), "every field needs a meaning"
    if not dataclasses.fields(cls):
        assert rows == []


def test_every_message_type_is_specified_with_its_direction() -> None:
    for table in (CLIENT_MESSAGES, CLIENT_FRAMES, SERVER_MESSAGES, SERVER_FRAMES):
        for tag, cls in table.items():
            assert re.search(rf"^#+ .*`{cls.__name__}` \((binary frame, )?type `{tag}`\)", SPEC, re.M), cls


def _error_table() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_]+)` \| (\*\*yes\*\*|no) \|", SPEC, re.M)
    return dict(rows)


def test_error_table_lists_every_code_and_the_fatal_ones() -> None:
    table = _error_table()
    assert set(table) == {code.value for code in ErrorCode}
    assert {code for code, fatal in table.items() if fatal != "no"} == {c.value for c in FATAL_CODES}


def test_standard_sampler_names_are_listed() -> None:
    for name in ("Euler a", "Euler", "LMS", "PLMS", "DDIM", "DPM2", "DPM2 a", "DPM++ 2M Karras", "UniPC"):
        assert f"`{name}`" in SPEC
