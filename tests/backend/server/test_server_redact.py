"""``backend/redact.py``: what the log filter takes out of a record (issue 10)."""

from __future__ import annotations

import io
import logging

import pytest
from latentbrush.backend.redact import REDACTED, SecretFilter

TOKEN = "FJE6-wd3WLa-BGmvQWgKAK0nEoPQXE6Z2cGQB1KnIMs"


def secrets() -> SecretFilter:
    f = SecretFilter()
    f.add_secret(TOKEN)
    return f


@pytest.mark.parametrize(
    "text",
    [
        f"< Authorization: Bearer {TOKEN}",
        f"< GET /?token={TOKEN} HTTP/1.1",
        f'< TEXT \'{{"type":"hello","token":"{TOKEN[:30]}..."}}\' [99 bytes]',  # cut after 30 characters
        f'< TEXT \'{{"type":"hello","cl...{TOKEN[-20:]}"}}\' [99 bytes]',  # only the end shows
        f"weird {TOKEN[5:25]} place",
        f"twice {TOKEN} and {TOKEN}",
    ],
)
def test_no_eight_characters_of_the_token_survive(text: str) -> None:
    clean = secrets().redact(text)
    assert REDACTED in clean
    assert not any(TOKEN[i : i + 8] in clean for i in range(len(TOKEN) - 7)), clean


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Authorization: Bearer someone-elses", f"Authorization: {REDACTED}"),
        ("[('Authorization', 'Basic dXNlcg==')]", f"[('Authorization', '{REDACTED}')]"),
        ("GET /?a=1&token=other&b=2 HTTP/1.1", f"GET /?a=1&token={REDACTED}&b=2 HTTP/1.1"),
        ('{"type": "hello", "token": "other"}', f'{{"type": "hello", "token": "{REDACTED}"}}'),
        ("ClientHello(protocol=1, token='other')", f"ClientHello(protocol=1, token='{REDACTED}')"),
        ("token file /home/u/.config/latentbrush/token", "token file /home/u/.config/latentbrush/token"),
        ("refused: several Authorization headers", "refused: several Authorization headers"),
        ('{"token":""}', '{"token":""}'),
    ],
)
def test_credential_values_are_redacted_whatever_they_are(text: str, clean: str) -> None:
    assert secrets().redact(text) == clean


def capture(record_args: tuple, exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(secrets())
    logger = logging.getLogger("test_server_redact")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    try:
        if exc is None:
            logger.debug(*record_args)
        else:
            try:
                raise exc
            except type(exc):
                logger.exception(*record_args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_arguments_tracebacks_and_bad_format_strings_are_redacted() -> None:
    assert TOKEN not in capture(("header %s: %s", "X-Key", TOKEN))
    out = capture(("failed",), ValueError(f"bad header {TOKEN}"))
    assert "ValueError" in out and TOKEN[:8] not in out
    out = capture(("%d broken", TOKEN))  # a wrong format string: the record is still written, redacted
    assert TOKEN[:8] not in out and "broken" in out
