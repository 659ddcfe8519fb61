"""Start a real ``latentbrush-server`` process for a test, and stop it afterwards.

    from helpers.live_server import live_server

    def test_something(tmp_path):
        with live_server(tmp_path) as server:          # the real engine (built-in tiny model)
            ...connect to server.url with server.token...

    with live_server(tmp_path, "--max-queue", "4", engine_factory=FAKE) as server: ...

The server runs as ``python -m latentbrush.backend --port 0 --token-file <tmp>/token ...``;
the helper waits for its one stdout line ``latentbrush-server listening on ws://HOST:PORT``
and fails with the server's own log when it does not come. On exit it sends SIGINT (the
server shuts down cleanly) and kills it if it has not ended after a grace period. The server's
log is in ``LiveServer.log_file``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from latentbrush.protocol.transport import parse_listening_line

START_TIMEOUT_S = 180.0  # importing torch and diffusers on a busy 2-core machine is slow
STOP_GRACE_S = 20.0
# the protocol tests' fake engine: fast, deterministic, no torch
FAKE_ENGINE = str(Path(__file__).resolve().parents[1] / "backend" / "server" / "server_fakes.py") + ":make_engine"


@dataclass(frozen=True)
class LiveServer:
    url: str  # ws://127.0.0.1:PORT
    token: str
    token_file: Path
    process: subprocess.Popen[str]
    log_file: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


class ServerStartError(RuntimeError):
    pass


def _read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def live_server(
    tmp_path: Path,
    *args: str,
    engine_factory: str | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = START_TIMEOUT_S,
) -> Iterator[LiveServer]:
    """Run the server in a subprocess for the ``with`` block; extra CLI ``args`` are passed on."""
    token_file = tmp_path / "server-token"
    log_file = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "latentbrush.backend", "--port", "0", "--token-file", str(token_file), *args]
    if engine_factory:
        cmd += ["--engine-factory", engine_factory]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env=full_env
        )
    try:
        url = _wait_listening(process, log_file, start_timeout)
        token = token_file.read_text(encoding="utf-8").strip()
        yield LiveServer(url, token, token_file, process, log_file)
    finally:
        stop(process)


def _wait_listening(process: subprocess.Popen[str], log_file: Path, timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                raise ServerStartError(
                    f"latentbrush-server exited with {process.wait()} before listening:\n{_tail(log_file)}"
                )
            url = parse_listening_line(line)
            if url is not None:
                return url
    except queue.Empty:
        raise ServerStartError(f"latentbrush-server did not listen within {timeout:.0f} s:\n{_tail(log_file)}")


def _tail(log_file: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen[str], grace: float = STOP_GRACE_S) -> int:
    """SIGINT (clean shutdown), then kill after ``grace`` seconds; returns the exit code."""
    if process.poll() is None:
        if os.name == "posix":
            process.send_signal(signal.SIGINT)
        else:
            process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode
