"""The upgrade request's ``Host`` and ``Authorization`` headers (SPEC.md 4 and 13; issue 10).

Raw HTTP on a socket, so a test can send any Host header (or none), which a WebSocket
client library would not.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import pytest
from server_harness import TOKEN, running_server

HANG_GUARD_S = 30.0


async def upgrade_status(address: tuple[str, int], headers: list[tuple[str, str]]) -> int:
    """The HTTP status the server answers a WebSocket upgrade request with ``headers`` (plus the required ones)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    reader, writer = await asyncio.open_connection(address[0], address[1], family=family)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET / HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), HANG_GUARD_S)
        return int(status_line.split()[1])
    finally:
        writer.close()


def statuses(bind: str, hosts: list[str | None], extra: list[tuple[str, str]] = ()) -> dict[str | None, int]:
    """Host header (``{port}`` filled in; None = no Host header) -> status, on a server bound to ``bind``."""

    async def scenario() -> dict[str | None, int]:
        async with running_server(host=bind) as server:
            out = {}
            for host in hosts:
                headers = [] if host is None else [("Host", host.format(port=server.port))]
                out[host] = await upgrade_status((bind, server.port), headers + list(extra))
            return out

    return asyncio.run(scenario())


ACCEPTED_ON_127_0_0_1 = ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}"]
REFUSED_ON_127_0_0_1 = [
    "127.0.0.1",  # no port means 80, which the server does not listen on
    "localhost",
    "127.0.0.1:1{port}",
    "localhost:{port}1",
    "localhost:0{port}x",
    "localhost:",
    "localhost.:{port}",  # the trailing dot makes it a DNS name a rebinding page can own
    "127.0.0.2:{port}",  # another loopback address than the bound one
    "127.1.2.3:{port}",
    "[::1]:{port}",  # the server does not listen on ::1
    "[::ffff:127.0.0.1]:{port}",
    "app.localhost:{port}",
    "localhost:{port}:{port}",
    "[::1",
    "",
    None,
]


def test_host_must_name_the_bound_loopback_address_and_port() -> None:
    got = statuses("127.0.0.1", ACCEPTED_ON_127_0_0_1 + REFUSED_ON_127_0_0_1)
    assert {h: got[h] for h in ACCEPTED_ON_127_0_0_1} == {h: 101 for h in ACCEPTED_ON_127_0_0_1}
    assert {h: got[h] for h in REFUSED_ON_127_0_0_1} == {h: 403 for h in REFUSED_ON_127_0_0_1}


def test_another_loopback_bind_accepts_only_its_own_address() -> None:
    got = statuses("127.0.0.2", ["127.0.0.2:{port}", "localhost:{port}", "127.0.0.1:{port}"])
    assert got == {"127.0.0.2:{port}": 101, "localhost:{port}": 101, "127.0.0.1:{port}": 403}


def test_ipv6_loopback_bind() -> None:
    expected = {"[::1]:{port}": 101, "[0:0:0:0:0:0:0:1]:{port}": 101, "localhost:{port}": 101, "127.0.0.1:{port}": 403}
    assert statuses("::1", list(expected)) == expected


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer ", 401),  # empty token: refused, not waved through to the hello
        ("Bearer", 401),
        ("bearer    ", 401),
        ("Bearer wrong", 401),
        (f"Bearer {TOKEN}", 101),
        (f"bearer {TOKEN}", 101),
        ("Basic dXNlcjpwdw==", 101),  # another scheme is no latentbrush token: the hello's token decides
    ],
)
def test_authorization_header(authorization: str, status: int) -> None:
    got = statuses("127.0.0.1", ["127.0.0.1:{port}"], [("Authorization", authorization)])
    assert got == {"127.0.0.1:{port}": status}
