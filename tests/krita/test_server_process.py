"""LocalServer: starts a command, learns its URL from the "listening" line, reports failures."""

from __future__ import annotations

import sys

import pytest
from latentbrush.plugin.hosts.krita.server_process import LocalServer, split_command
from qt_wait import spin_until

# stands in for latentbrush-server: checks it was asked for any free port, then announces one
FAKE_SERVER = (
    "import sys, time; assert sys.argv[sys.argv.index('--port') + 1] == '0'; print('loading models'); "
    "print('latentbrush-server listening on ws://127.0.0.1:4567', flush=True); time.sleep(60)"
)


@pytest.fixture
def server(qapp):
    s = LocalServer()
    yield s
    s.stop(2000)


def events(server: LocalServer) -> dict[str, list]:
    seen: dict[str, list] = {"listening": [], "failed": [], "stopped": []}
    server.listening.connect(seen["listening"].append)
    server.failed.connect(seen["failed"].append)
    server.stopped.connect(seen["stopped"].append)
    return seen


def test_listening_line_gives_the_url_and_stop_ends_the_process(server):
    seen = events(server)
    server.start([sys.executable, "-c", FAKE_SERVER])
    spin_until(lambda: seen["listening"], "the listening line")
    assert seen["listening"] == ["ws://127.0.0.1:4567"] and server.url == "ws://127.0.0.1:4567"
    assert "loading models" in server.recent_output()
    assert server.running
    server.stop(5000)
    spin_until(lambda: seen["stopped"], "the stop")
    assert not server.running and seen["failed"] == []


def test_a_server_that_exits_early_reports_its_output(server):
    seen = events(server)
    server.start([sys.executable, "-c", "print('no CUDA and no luck'); raise SystemExit(3)"])
    spin_until(lambda: seen["failed"], "the failure")
    assert "code 3" in seen["failed"][0] and "no CUDA and no luck" in seen["failed"][0]


def test_a_missing_program_is_a_failure_not_an_exception(server):
    seen = events(server)
    server.start(["/nonexistent/latentbrush-server"])
    spin_until(lambda: seen["failed"], "the failure")
    assert "cannot start the server" in seen["failed"][0]


def test_no_command_and_nothing_on_path_explains_what_to_do(server, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    seen = events(server)
    server.start(split_command(""))
    assert "not on PATH" in seen["failed"][0]


def test_split_command_keeps_quoted_arguments():
    assert split_command("'/my venv/bin/python' -m latentbrush.backend --models \"/a b\"") == [
        "/my venv/bin/python", "-m", "latentbrush.backend", "--models", "/a b",
    ]


def test_stop_without_waiting_returns_at_once_and_the_server_still_ends(server):
    seen = events(server)
    server.start([sys.executable, "-c", FAKE_SERVER])
    spin_until(lambda: seen["listening"], "the listening line")
    server.stop(wait=False)
    spin_until(lambda: seen["stopped"], "the process to end")
    assert not server.running


def test_a_killed_server_says_it_crashed_and_keeps_its_last_lines(server):
    import os
    import signal

    seen = events(server)
    server.start([sys.executable, "-c", FAKE_SERVER])
    spin_until(lambda: seen["listening"], "the listening line")
    os.kill(server._process.processId(), signal.SIGKILL)
    spin_until(lambda: seen["stopped"], "the exit")
    assert server.crashed and not server.running and seen["failed"] == []
    assert "listening on" in server.recent_output()


def test_a_server_deleted_before_its_kill_timer_fires_is_no_crash(qapp):
    """Disconnect (stop without waiting) and then close the docker at once: the pending kill finds its QProcess
    deleted with its owner. That must neither raise inside Qt's event loop (which aborts Krita) nor leave the
    process running."""
    import os
    import time

    from latentbrush.plugin.qt import QT_MAJOR

    sip = __import__("PyQt6.sip" if QT_MAJOR == 6 else "PyQt5.sip", fromlist=["delete"])
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + FAKE_SERVER
    server = LocalServer()
    seen = events(server)
    server.start([sys.executable, "-c", stubborn])
    spin_until(lambda: seen["listening"], "the listening line")
    pid = server._process.processId()
    server.stop(100, wait=False)
    sip.delete(server)  # Qt kills and reaps a running QProcess it deletes
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # the kill timer fires in here
        qapp.processEvents()
        time.sleep(0.01)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
