"""Start ``latentbrush-server`` as a child process (``--local``) and stop it again.

The plugin never imports the backend; like the Krita docker, the CLI runs it as a process and
reads its one stdout line ``latentbrush-server listening on ws://HOST:PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from latentbrush.protocol.transport import parse_listening_line

START_TIMEOUT_S = 300.0  # importing torch and diffusers on a busy machine takes a while
STOP_TIMEOUT_S = 15.0
BACKEND_MODULES = ("torch", "diffusers")  # what the `backend` extra adds that a server cannot run without


class ServerStartError(RuntimeError):
    pass


class LocalServer:
    """``async with LocalServer(models_dir=...) as server: server.url, server.token_file``"""

    def __init__(self, *, models_dir: str | None = None, device: str | None = None,
                 extra_args: tuple[str, ...] = (), python: str = sys.executable) -> None:
        self.models_dir, self.device, self.extra_args, self.python = models_dir, device, extra_args, python
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.log_path: Path | None = None

    @property
    def token_file(self) -> str:
        if self._tmp is None:
            raise RuntimeError("server not started")
        return str(Path(self._tmp.name) / "token")

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "latentbrush.backend", "--port", "0", "--token-file", self.token_file]
        if self.models_dir:
            cmd += ["--models", str(self.models_dir)]
        if self.device:
            cmd += ["--device", self.device]
        return cmd + list(self.extra_args)

    def check_installed(self) -> None:
        """A plain ``pip install latentbrush`` is the client only: say how to get the server."""
        if self.python != sys.executable:
            return  # another interpreter: its own error (in the log) says what it lacks
        missing = [name for name in BACKEND_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise ServerStartError(
                f"--local starts latentbrush-server, which is not installed here ({', '.join(missing)} missing "
                f"in {sys.executable}): pip install 'latentbrush[backend]', or pass --url of a running server"
            )

    async def start(self) -> str:
        self.check_installed()
        self._tmp = tempfile.TemporaryDirectory(prefix="latentbrush-cli-")
        self.log_path = Path(self._tmp.name) / "server.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(), stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=env
            )
        try:
            self.url = await asyncio.wait_for(self._read_url(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            await self.stop()
            raise ServerStartError(f"latentbrush-server did not start within {START_TIMEOUT_S:.0f} s")
        except ServerStartError:
            await self.stop()
            raise
        return self.url

    async def _read_url(self) -> str:
        stdout = self._proc.stdout if self._proc else None
        if stdout is None:
            raise ServerStartError("server process has no stdout")
        while True:
            line = await stdout.readline()
            if not line:
                code = await self._proc.wait() if self._proc else None
                raise ServerStartError(
                    f"latentbrush-server exited with code {code} before listening:\n{self.log_tail()}"
                )
            text = line.decode("utf-8", "replace").strip()
            url = parse_listening_line(text)
            if url is not None:
                return url

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
