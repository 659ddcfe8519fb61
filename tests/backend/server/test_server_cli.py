"""``python -m latentbrush.backend`` as a process: listening line, token file, options, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys

import pytest
from helpers.live_server import FAKE_ENGINE, live_server, stop
from latentbrush.protocol import ClientHello, decode_server_message, encode_message
from server_harness import TestClient, job, submit
from websockets.asyncio.client import connect

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and file modes are POSIX here")


async def hello_and_job(url: str, token: str) -> tuple[object, object]:
    async with TestClient.connect(url, token=token) as client:
        await client.send(submit(job("cli1", steps=2)))
        return client.hello, (await client.finish("cli1")).final


def test_listens_creates_token_and_stops_cleanly_on_sigint(tmp_path):
    log_file = tmp_path / "logs" / "server.log"
    with live_server(tmp_path, "--log-file", str(log_file), engine_factory=FAKE_ENGINE) as server:
        assert server.url.startswith("ws://127.0.0.1:") and server.port > 0
        assert stat.S_IMODE(server.token_file.stat().st_mode) == 0o600
        assert len(server.token) >= 32
        hello, final = asyncio.run(hello_and_job(server.url, server.token))
        assert type(hello).TYPE == "hello" and hello.device == "fake"
        assert type(final).TYPE == "done"
        assert stop(server.process) == 0  # SIGINT: cancel, close connections, exit 0
    text = log_file.read_text()
    assert "job cli1 done" in text and "device fake" in text and "stopped" in text
    assert server.token not in text  # the token is never logged


def test_sigterm_stops_cleanly_and_token_is_reused(tmp_path):
    with live_server(tmp_path, engine_factory=FAKE_ENGINE) as first:
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=30) == 0
    with live_server(tmp_path, engine_factory=FAKE_ENGINE) as second:
        assert second.token == first.token  # created once, read afterwards


def test_wrong_token_refused_by_process(tmp_path):
    async def scenario(url: str) -> str:
        async with connect(url, compression=None) as ws:
            await ws.send(encode_message(ClientHello(protocol=1, client="t", token="nope")))
            return decode_server_message(await ws.recv()).code

    with live_server(tmp_path, engine_factory=FAKE_ENGINE) as server:
        assert asyncio.run(scenario(server.url)) == "unauthorized"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1"])
def test_non_loopback_bind_needs_allow_remote(tmp_path, host):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentbrush.backend",
            "--host",
            host,
            "--port",
            "0",
            "--token-file",
            str(tmp_path / "token"),
            "--engine-factory",
            FAKE_ENGINE,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr and result.stdout == ""


def test_allow_remote_binds_with_token(tmp_path):
    with live_server(tmp_path, "--host", "0.0.0.0", "--allow-remote", engine_factory=FAKE_ENGINE) as server:
        assert server.url.startswith("ws://0.0.0.0:")
        url = f"ws://127.0.0.1:{server.port}"
        _, final = asyncio.run(hello_and_job(url, server.token))
        assert type(final).TYPE == "done"


def test_engine_that_cannot_start_exits_nonzero_with_the_reason(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentbrush.backend",
            "--port",
            "0",
            "--token-file",
            str(tmp_path / "token"),
            "--engine-factory",
            FAKE_ENGINE.replace(":make_engine", ":broken_engine"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "no usable GPU driver (fake)" in result.stderr
