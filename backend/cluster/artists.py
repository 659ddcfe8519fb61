"""Per-artist tokens from a file the studio's admin edits; an edit takes effect at the next connection.

The file is either JSON (``{"ana": "TOKEN", "ben": "TOKEN"}``) or lines of ``NAME TOKEN`` (``#``
starts a comment). It is read again whenever it changed (modification time or size), at each
hello: deleting an artist's line revokes their token for every new connection. A file that no
longer parses admits nobody until it is fixed (a typo must not keep a revoked token alive).
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from latentbrush.protocol import ErrorCode, ProtocolError

from ..auth import token_matches
from ..jobs import JobRecord
from .scheduler import ArtistQueue

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16  # a shorter token is guessable; `secrets.token_urlsafe(32)` gives 43
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
DEFAULT_ARTIST_QUEUE = 8  # unfinished jobs per artist, all their connections together


class ArtistsFileError(ValueError):
    """The artists file cannot be used; the message says which line and why (never the token)."""


def parse_artists(text: str) -> dict[str, str]:
    """name -> token from the file's text (JSON object, or ``NAME TOKEN`` lines)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ArtistsFileError(f"the artists file is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ArtistsFileError('the artists file must be one JSON object of "name": "token"')
        pairs = [(str(name), token, f"entry {name!r}") for name, token in data.items()]
    else:
        pairs = []
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].replace(":", " ", 1).split()
            if not words:
                continue
            if len(words) != 2:
                raise ArtistsFileError(f"line {number} of the artists file must be NAME TOKEN")
            pairs.append((words[0], words[1], f"line {number}"))
    artists: dict[str, str] = {}
    for name, token, where in pairs:
        if not NAME.match(name):
            raise ArtistsFileError(f"{where}: an artist's name is letters, digits and _ . @ - (at most 64)")
        if len(token) < MIN_TOKEN_CHARS:
            raise ArtistsFileError(f"{where}: the token of {name} is shorter than {MIN_TOKEN_CHARS} characters")
        if name in artists:
            raise ArtistsFileError(f"{where}: {name} is listed twice")
        if any(token_matches(other, token) for other in artists.values()):
            raise ArtistsFileError(f"{where}: {name} has the same token as another artist")
        artists[name] = token
    return artists


class Artists:
    """``server.Tenants`` from an artists file: who may connect, their fair queue, their queue cap."""

    def __init__(
        self,
        path: Path,
        max_queue: int = DEFAULT_ARTIST_QUEUE,
        on_load: Callable[[Iterable[str]], None] = lambda tokens: None,
    ) -> None:
        self.path = path
        self.max_queue = max_queue
        self._on_load = on_load  # the log's secret filter learns every token it might ever see
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, str] = {}
        self.reload()  # a missing or broken file at start is the admin's error to fix now: it raises

    def reload(self) -> dict[str, str]:
        """Read the file now; raises ``ArtistsFileError`` or ``OSError``."""
        stat = os.stat(self.path)
        artists = parse_artists(self.path.read_text(encoding="utf-8"))
        self._on_load(artists.values())
        with self._lock:
            self._tokens, self._stamp = artists, (stat.st_mtime_ns, stat.st_size)
        log.info("artists file %s: %d artists (%s)", self.path, len(artists), ", ".join(sorted(artists)))
        return artists

    def _current(self) -> dict[str, str]:
        try:
            stat = os.stat(self.path)
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                return self.reload()
        except (OSError, ArtistsFileError) as exc:
            log.error("artists file %s unusable, nobody is admitted until it is fixed: %s", self.path, exc)
            with self._lock:
                self._tokens, self._stamp = {}, None
        with self._lock:
            return self._tokens

    def identify(self, token: str) -> str | None:
        found = None
        for name, expected in self._current().items():  # every comparison runs: no timing by position
            if token_matches(expected, token):
                found = name
        return found

    def queue(self, tenant_of: Callable[[JobRecord], str]) -> ArtistQueue:
        return ArtistQueue(tenant_of)

    def refusal(self, tenant: str, unfinished: int) -> ProtocolError | None:
        if unfinished >= self.max_queue:
            return ProtocolError(
                ErrorCode.QUEUE_FULL,
                f"{tenant or 'this artist'} has {unfinished} unfinished jobs already (at most {self.max_queue} "
                "per artist); wait for one to finish",
            )
        return None
