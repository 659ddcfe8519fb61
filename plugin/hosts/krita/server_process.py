"""Start and stop a local ``latentbrush-server`` as a child process (QProcess: never blocks the UI).

The server prints ``latentbrush-server listening on ws://HOST:PORT`` once it accepts connections;
``--port 0`` lets it pick a free port, so that line is how the docker learns the URL.
The plugin never imports the backend: it only runs the command the painter configured.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections import deque

from latentbrush.protocol.transport import parse_listening_line

from ...qt import QObject, QProcess, QTimer, pyqtSignal, qbytes
from .child_process import child_process

SERVER_PROGRAM = "latentbrush-server"
LOG_LINES = 40  # kept for the error message when the server dies


def split_command(text: str) -> list[str]:
    """A configured command line -> argv; "" means ``latentbrush-server`` from PATH."""
    text = text.strip()
    if not text:
        found = shutil.which(SERVER_PROGRAM)
        return [found] if found else []
    words = shlex.split(text, posix=sys.platform != "win32")
    if sys.platform == "win32":  # posix=False keeps the quotes around a word with spaces ("C:\Users\Ann Lee\...")
        words = [w[1:-1] if len(w) >= 2 and w[0] == w[-1] == '"' else w for w in words]
    return words



def join_command(argv: list[str], platform: str = sys.platform) -> str:
    """argv as the Command field holds it: what ``split_command`` turns back into ``argv``."""
    return subprocess.list2cmdline(argv) if platform == "win32" else shlex.join(argv)

class LocalServer(QObject):
    """One backend child process. Signals: ``listening(url)``, ``failed(message)``, ``stopped(code)``.

    ``stopped`` fires however it ended (asked to, crashed, killed); ``crashed`` and ``exit_code`` then say
    how, and ``recent_output()`` holds its last lines. ``url`` stays the address it listened on.
    """

    listening = pyqtSignal(str)
    failed = pyqtSignal(str)
    stopped = pyqtSignal(int)
    output = pyqtSignal(str)  # every line the server prints

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._buffer = ""
        self._lines: deque[str] = deque(maxlen=LOG_LINES)
        self.url = ""
        self.exit_code: int | None = None
        self.crashed = False  # killed by a signal or crashed (QProcess.CrashExit), not a normal exit

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def start(self, argv: list[str], extra_args: tuple[str, ...] = ("--port", "0")) -> None:
        """Launch ``argv + extra_args``; ``listening`` or ``failed`` follows."""
        if self.running:
            raise RuntimeError("the local server is already running")
        if not argv:
            self.failed.emit(
                f"'{SERVER_PROGRAM}' is not on PATH: install the backend (installers/setup.sh) or set the "
                "server command, e.g. '/path/to/venv/bin/python -m latentbrush.backend'"
            )
            return
        self.url, self._buffer = "", ""
        self.exit_code, self.crashed = None, False
        self._lines.clear()
        process = child_process(self, on_output=self._read, on_error=self._error, on_finished=self._finished)
        self._process = process
        process.start(argv[0], [*argv[1:], *extra_args])

    def stop(self, timeout_ms: int = 5000, *, wait: bool = True) -> None:
        """Terminate the server (it shuts down cleanly on SIGTERM); kill it if it lingers.

        ``wait=False`` returns at once (the docker's Disconnect button must not freeze Krita);
        ``wait=True`` blocks until it is gone (Krita is closing and will not run the timer).
        """
        process = self._process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
            return
        process.terminate()
        if not wait:
            QTimer.singleShot(timeout_ms, lambda: self._kill_if_running(process))
            return
        if not process.waitForFinished(timeout_ms):
            process.kill()
            process.waitForFinished(1000)

    @staticmethod
    def _kill_if_running(process: QProcess) -> None:
        try:
            if process.state() != QProcess.ProcessState.NotRunning:
                process.kill()
        except RuntimeError:  # its owner (the docker) was deleted meanwhile, and Qt killed the process with it
            pass

    def recent_output(self) -> str:
        return "\n".join(self._lines)

    def _read(self) -> None:
        if self._process is None:
            return
        self._buffer += qbytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            line = line.rstrip("\r")
            self._lines.append(line)
            self.output.emit(line)
            url = parse_listening_line(line)
            if url and not self.url:
                self.url = url
                self.listening.emit(self.url)

    def _error(self, error: object) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self.failed.emit(f"cannot start the server ({self._process.program()}): {self._process.errorString()}")

    def _finished(self, code: int, status: object = None) -> None:
        self.exit_code, self.crashed = int(code), status == QProcess.ExitStatus.CrashExit
        if not self.url:
            tail = self.recent_output().strip()
            self.failed.emit(f"the server exited with code {code} before listening" + (f":\n{tail}" if tail else ""))
        self.stopped.emit(int(code))
