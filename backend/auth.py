"""Who may talk to the server: the per-install token and the handshake header checks.

Browsers can open WebSockets to 127.0.0.1 from any web page (cross-site WebSocket hijacking),
and DNS rebinding can make a foreign name resolve to loopback. Browsers always send ``Origin``
and, in current versions, ``Sec-Fetch-*`` on such handshakes, and they send the page's host name
in ``Host``; painting-app clients send none of these. So refusing Origin/Sec-Fetch-* and any
Host that does not name this server and its port closes both holes before a message is read.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from latentbrush.protocol.transport import APP_NAME, TOKEN_FILE_NAME

from .config import is_loopback_host

TOKEN_BYTES = 32


def default_token_path() -> Path:
    from platformdirs import user_config_dir  # imported here: only the CLI needs it

    return Path(user_config_dir(APP_NAME, appauthor=False)) / TOKEN_FILE_NAME


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


def authorization_refusal(authorization: str | None, expected: str) -> str | None:
    """Why an ``Authorization`` header is refused (HTTP 401), or None when absent, right, or another scheme.

    ``Bearer`` with an empty token is refused too: it is a token, just a wrong one.
    """
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None  # not ours (a proxy's Basic, say): the hello's token decides
    given = value.strip()
    if not given:
        return "empty bearer token"
    return None if token_matches(expected, given) else "wrong token"


DEFAULT_HTTP_PORT = 80  # RFC 9110 7.2: a Host without a port names the scheme's default port


def parse_host_header(value: str) -> tuple[str, int] | None:
    """``Host`` header -> (lower-case name without brackets, port), or None when malformed.

    IPv6 literals must be bracketed (``[::1]:7860``); a missing or empty port is port 80.
    """
    value = value.strip().lower()
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            return None
        name, rest = value[1:close], value[close + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        name, _, port_text = value.partition(":")
        if ":" in port_text:
            return None  # an unbracketed IPv6 address, or two ports
    if not name:
        return None
    if not port_text:
        return name, DEFAULT_HTTP_PORT
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return name, int(port_text)


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _bound_addresses(bind: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a server bound to ``bind`` listens on, as far as a Host header may name them."""
    if bind == "localhost":  # what the resolver gives for it: both loopback addresses
        return {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    address = _address(bind)
    return set() if address is None else {address}


def allowed_host(host_header: str | None, bind_host: str, port: int, allow_remote: bool) -> bool:
    """May a handshake with this ``Host`` header proceed on a server bound to ``bind_host``:``port``?

    The Host must name the server exactly, port included: ``localhost`` (no trailing dot, no
    subdomain) when it listens on loopback, or an address it is bound to (any loopback address
    under a wildcard bind). With ``--allow-remote`` the bound name passes too, and under a
    wildcard bind any Host does: such a server cannot know its public names or ports, and the
    token is the guard.
    """
    bind = bind_host.strip().strip("[]").lower()
    wildcard = is_wildcard(bind)
    if allow_remote and wildcard:
        return True
    parsed = parse_host_header(host_header) if host_header else None
    if parsed is None or parsed[1] != port:
        return False
    name = parsed[0]
    bound = _bound_addresses(bind)
    address = _address(name)
    if address is not None:
        if not (address.is_loopback or allow_remote):
            return False
        return address in bound or (wildcard and address.is_loopback)
    if name == "localhost":
        return wildcard or any(a.is_loopback for a in bound)
    return name == bind and (allow_remote or is_loopback_host(bind))


def refusal_reason(
    headers: Iterable[tuple[str, str]], host_header: str | None, bind_host: str, port: int, allow_remote: bool
) -> str | None:
    """Why this opening handshake is refused (HTTP 403), or None to let it through."""
    for name, _ in headers:
        lower = name.lower()
        if lower == "origin":
            return "browser handshakes are refused (Origin header present)"
        if lower.startswith("sec-fetch-"):
            return f"browser handshakes are refused ({name} header present)"
    if not allowed_host(host_header, bind_host, port, allow_remote):
        return f"Host {host_header!r} does not name this server and its port"
    return None
