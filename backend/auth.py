"""Who may talk to the server: the per-install token and the handshake header checks.

Browsers can open WebSockets to 127.0.0.1 from any web page (cross-site WebSocket hijacking),
and DNS rebinding can make a foreign name resolve to loopback. Browsers always send ``Origin``
and, in current versions, ``Sec-Fetch-*`` on such handshakes, and they send the page's host name
in ``Host``; painting-app clients send none of these. So refusing Origin/Sec-Fetch-* and any
non-loopback Host closes both holes before a single message is read.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from .config import is_loopback_host

TOKEN_FILE_NAME = "token"
TOKEN_BYTES = 32


def default_token_path() -> Path:
    from platformdirs import user_config_dir  # imported here: only the CLI needs it

    return Path(user_config_dir("latentbrush", appauthor=False)) / TOKEN_FILE_NAME


def load_or_create_token(path: Path) -> str:
    """Read the token at ``path``; create it (mode 0600, parents 0700) when missing or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        _tighten(path)
        return token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file, not to a stale one left behind
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)  # atomic: a client never reads a half-written token
    return token


def _tighten(path: Path) -> None:
    """A token file readable by others is no secret: make it owner-only (no-op on Windows)."""
    if os.name == "posix" and path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison, so response timing leaks nothing about the token."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, if one was sent."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def split_host_header(value: str) -> str:
    """``Host`` header -> host name without port (handles ``[::1]:7860`` and bare IPv6)."""
    value = value.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # bare name, or an unbracketed IPv6 address


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def allowed_host(host_header: str | None, bind_host: str, allow_remote: bool) -> bool:
    """May a handshake with this ``Host`` header proceed?

    Loopback names always may. With ``--allow-remote`` the bound address may too; a wildcard
    bind (0.0.0.0, ::) cannot know its public names, so any Host passes there and the token
    (still required in the hello) is the guard.
    """
    if not host_header:
        return False
    name = split_host_header(host_header).lower().rstrip(".")
    if is_loopback_host(name):
        return True
    if not allow_remote:
        return False
    return is_wildcard(bind_host) or name == bind_host.strip("[]").lower()


def refusal_reason(
    headers: Iterable[tuple[str, str]], host_header: str | None, bind_host: str, allow_remote: bool
) -> str | None:
    """Why this opening handshake is refused (HTTP 403), or None to let it through."""
    for name, _ in headers:
        lower = name.lower()
        if lower == "origin":
            return "browser handshakes are refused (Origin header present)"
        if lower.startswith("sec-fetch-"):
            return f"browser handshakes are refused ({name} header present)"
    if not allowed_host(host_header, bind_host, allow_remote):
        return f"Host {host_header!r} is not a loopback name or address"
    return None
