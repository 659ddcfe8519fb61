"""Constants both peers share about the transport (SPEC.md sections 2 and 4), defined once.

The server, the plugin client, the CLI, the hosts and the tests import these instead of
repeating a port number, a close code or the text of the server's one stdout line.
"""

from __future__ import annotations

import re

APP_NAME = "latentbrush"  # the per-user config folder's name (where the token file lives)
TOKEN_FILE_NAME = "token"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_URL = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}"

# RFC 6455 close codes the server uses, and the protocol's own (4000-4999 are for applications).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_PROTOCOL_ERROR = 1002  # after version_mismatch
CLOSE_INVALID_DATA = 1007  # a text frame that is not UTF-8 (the WebSocket layer's own check)
CLOSE_POLICY = 1008  # after unauthorized or forbidden_origin, and for nothing else
CLOSE_TOO_BIG = 1009
CLOSE_SUPERSEDED = 4000  # another connection resumed this session (SPEC.md 11)
CLOSE_NO_HELLO = 4001  # no valid hello within the server's hello timeout (SPEC.md 4)

# ``latentbrush-server`` prints exactly this line to stdout once it accepts connections.
LISTENING_PREFIX = "latentbrush-server listening on "
_LISTENING = re.compile(re.escape(LISTENING_PREFIX) + r"(wss?://\S+)")


def listening_line(url: str) -> str:
    return f"{LISTENING_PREFIX}{url}"


def parse_listening_line(line: str) -> str | None:
    """The server's URL from its "listening on" line, or None for any other line."""
    match = _LISTENING.search(line)
    return match.group(1) if match else None
