"""Keep secrets out of every log line, at every level (SPEC.md 13: the token is never logged).

At DEBUG, websockets logs each request header (``Authorization: Bearer ...``), the request
line (``GET /?token=...``) and each frame, long ones cut in the middle so that only part of
a token shows. ``SecretFilter`` sits on the log handlers and rewrites any record that holds
the configured token or 8 or more consecutive characters of it, and any value written as a
credential (``Authorization``, ``token=``, ``"token":``) whatever its value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_PART = 8  # shorter runs of token characters are too common to mean anything
_CREDENTIALS = (
    # an Authorization header's value: "Authorization: Bearer x", "('Authorization', 'Bearer x')"
    re.compile(r"(?i)(authorization[\"']?\s*[:=,]\s*[\"']?)[^\"'\r\n]+"),
    # "?token=x", "token=x", '"token":"x', "'token': 'x", "token='x'" (a cut-off value included)
    re.compile(r"(?i)(token[\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\"'&\s,;#)}\]]+"),
)


class SecretFilter(logging.Filter):
    """A handler filter that redacts secrets from the message, traceback and stack of each record."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._parts: frozenset[str] = frozenset()

    def add_secret(self, secret: str) -> None:
        if not secret or secret in self._secrets:
            return
        self._secrets = (*self._secrets, secret)
        windows = {secret[i : i + MIN_PART] for i in range(len(secret) - MIN_PART + 1)}
        self._parts = self._parts | windows

    def redact(self, text: str) -> str:
        for secret in self._secrets:  # also the whole of a token shorter than MIN_PART
            text = text.replace(secret, REDACTED)
        text = self._mask_parts(text)
        for pattern in _CREDENTIALS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def _mask_parts(self, text: str) -> str:
        """Replace each run of text made of token windows (a cut-off token, say) by REDACTED."""
        if not self._parts or len(text) < MIN_PART:
            return text
        spans: list[list[int]] = []
        for i in range(len(text) - MIN_PART + 1):
            if text[i : i + MIN_PART] in self._parts:
                if spans and i <= spans[-1][1]:
                    spans[-1][1] = i + MIN_PART
                else:
                    spans.append([i, i + MIN_PART])
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += (text[last:start], REDACTED)
            last = end
        out.append(text[last:])
        return "".join(out)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler would print msg and args as they are
            message = f"{record.msg} (arguments {record.args!r})"
            record.msg, record.args = message, None
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(secrets: SecretFilter, handlers: Iterable[logging.Handler]) -> None:
    """Put ``secrets`` on each handler: a handler filter sees records of every logger, websockets' too."""
    for handler in handlers:
        if secrets not in handler.filters:
            handler.addFilter(secrets)
