"""A real ``latentbrush server install`` on this machine, through the CLI, from a wheel built here.

One module-scoped install (a few minutes, ~6 GB) into a temporary ``--home``: then the managed server
runs a job with the built-in tiny model, a deleted package file is repaired, an update reports JSON
progress, and uninstall removes the venv but keeps the models. torch comes pinned from this machine's
package indexes (pip's global config, which a fresh venv sees too): LATENTBRUSH_TORCH names the pins
without pytorch.org's index, which is out of reach here. The install's wall time and size are printed
(``pytest -s``) and recorded as junit properties.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.live_server import stop
from helpers.wheel import build_wheel
from latentbrush.plugin.core.install.layout import InstallLayout, is_installed, layout_at, server_command
from latentbrush.plugin.core.install.state import read_state
from latentbrush.protocol.transport import parse_listening_line
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
INSTALL_TIMEOUT_S = 2400  # torch and its CUDA libraries: ~6 GB to unpack on a shared 2-core machine
STEP_TIMEOUT_S = 900
PINS = "torch==2.14.1 torchvision==0.29.1"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_S + 1200)]


@dataclass(frozen=True)
class Installed:
    layout: InstallLayout
    wheel: Path
    env: dict[str, str]
    seconds: float
    size_bytes: int
    stderr: str


def run(*cmd: str | Path, timeout: float = STEP_TIMEOUT_S, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def cli(env: dict[str, str], *args: str | Path, timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """The real ``latentbrush`` command of this checkout's environment."""
    program = Path(sys.executable).with_name("latentbrush")
    command = [program] if program.exists() else [Path(sys.executable), "-m", "latentbrush.plugin.cli"]
    return run(*command, *args, timeout=timeout, env=env)


def disk_usage(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("server-install")
    wheel = build_wheel(tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LATENTBRUSH_SERVER_HOME")}
    env.update(HOME=str(tmp), LATENTBRUSH_TORCH=PINS, HF_HUB_OFFLINE="1")
    home = tmp / "home"
    start = time.monotonic()
    done = cli(env, "server", "install", "--yes", "--wheel", wheel, "--home", home, timeout=INSTALL_TIMEOUT_S)
    seconds = time.monotonic() - start
    layout = layout_at(home)
    assert done.returncode == 0, done.stderr[-6000:] + (layout.log_file.read_text()[-4000:] if
                                                         layout.log_file.exists() else "")
    size = disk_usage(home)
    print(f"\nlatentbrush server install: {seconds:.0f} s wall time, {size / 2**30:.2f} GiB in {home}")
    return Installed(layout, wheel, env, seconds, size, done.stderr)


def test_install_reports_the_server_and_how_to_start_it(installed: Installed,
                                                        record_property: pytest.RecordProperty) -> None:
    record_property("install_seconds", round(installed.seconds))
    record_property("install_bytes", installed.size_bytes)
    layout = installed.layout
    assert is_installed(layout)
    assert "] Installing PyTorch (set by LATENTBRUSH_TORCH), the big download" in installed.stderr
    assert f"Start it with: {layout.python} -m latentbrush.backend --models {layout.models_dir}" in installed.stderr
    state = read_state(layout.state_file)
    assert state is not None and state.version == "0.1.0" and state.source == str(installed.wheel)
    assert state.torch_build.startswith("2.14.1") and state.tool in ("pip", "uv")
    log = layout.log_file.read_text(encoding="utf-8")
    assert f"$ {layout.python} -m pip install torch==2.14.1 torchvision==0.29.1" in log or " uv pip " in log
    assert "exit code 0" in log and layout.models_dir.is_dir()
    done = cli(installed.env, "server", "status", "--home", layout.root)
    assert done.returncode == 0 and "latentbrush server: installed" in done.stdout
    assert "2.14.1" in done.stdout and str(layout.python) in done.stdout


def _wait_listening(process: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"the managed server exited with {process.wait()} before listening")
        url = parse_listening_line(line)
        if url is not None:
            return url


def test_the_managed_server_runs_a_job(installed: Installed, tmp_path: Path) -> None:
    layout = installed.layout
    token_file = tmp_path / "token"
    Image.new("RGB", (48, 32), (200, 120, 40)).save(tmp_path / "in.png")
    with open(tmp_path / "server.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen([*server_command(layout), "--port", "0", "--token-file", str(token_file)],
                                   stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                                   env={**installed.env, "PYTHONUNBUFFERED": "1"})
    try:
        try:
            url = _wait_listening(process, 300)
        except (AssertionError, queue.Empty):
            pytest.fail("the managed server did not listen:\n" + (tmp_path / "server.log").read_text()[-4000:])
        client = layout.scripts_dir / "latentbrush"  # the client installed alongside, in the managed venv
        done = run(client, "inpaint", tmp_path / "in.png", "--rect", "8,8,16,16", "-p", "a cat", "--steps", "2",
                   "--url", url, "--token-file", token_file, "-o", tmp_path / "out.png", "-q",
                   env=installed.env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr + (tmp_path / "server.log").read_text()[-4000:]
    finally:
        stop(process)
    assert Image.open(tmp_path / "out.png").size == (48, 32)
    assert Image.open(tmp_path / "out.layer.png").mode == "RGBA"


def _site_packages(layout: InstallLayout) -> Path:
    return Path(run(layout.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())


def test_repair_puts_back_a_deleted_package_file(installed: Installed) -> None:
    layout = installed.layout
    engine = _site_packages(layout) / "latentbrush" / "backend" / "engine.py"
    engine.unlink()
    assert run(layout.python, "-c", "import latentbrush.backend.engine").returncode != 0
    done = cli(installed.env, "server", "repair", "--yes", "--home", layout.root)
    assert done.returncode == 0, done.stderr[-6000:]
    assert "Reinstalling the latentbrush package" in done.stderr and "Removing the old Python" not in done.stderr
    assert engine.is_file() and run(layout.python, "-c", "import latentbrush.backend.engine").returncode == 0


def test_update_reports_json_progress(installed: Installed) -> None:
    layout = installed.layout
    done = cli(installed.env, "server", "update", "--yes", "--wheel", installed.wheel, "--home", layout.root,
               "--progress", "json")
    assert done.returncode == 0, done.stderr[-6000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "done" and "output" in kinds
    progress = [e["progress"] for e in events if e["event"] == "step"]
    assert progress == sorted(progress) and progress[0] == 0.0
    assert not any("PyTorch" in e["title"] for e in events if e["event"] == "step")  # same torch choice


def test_uninstall_removes_the_venv_and_keeps_the_models(installed: Installed) -> None:
    layout = installed.layout
    (layout.models_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (layout.models_dir / "checkpoints" / "mine.safetensors").write_bytes(b"my model")
    done = cli(installed.env, "server", "uninstall", "--yes", "--home", layout.root)
    assert done.returncode == 0, done.stderr
    assert "is kept" in done.stderr and "--models" in done.stderr
    assert not layout.venv.exists() and not layout.state_file.exists() and not is_installed(layout)
    assert (layout.models_dir / "checkpoints" / "mine.safetensors").read_bytes() == b"my model"
    done = cli(installed.env, "server", "status", "--home", layout.root)
    assert "not installed" in done.stdout and "(1 files)" in done.stdout
