"""Run an e2e script inside real Krita under Xvfb, with the plugin installed by the real installer.

Used by ``test_krita_e2e.py``. Each pytest run makes a fresh Krita profile (HOME) and reuses it
for its Krita starts (the first start builds Krita's resource database: ~10-25 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
HARNESS = HERE / "harness"
SCRIPTS = HERE / "scripts"
XVFB_SCREEN = "-screen 0 1600x1000x24"
KRITA_PYTHON = "3.11"  # Debian bookworm's Krita 5.1.5 embeds Python 3.11.2


def missing_tools() -> str | None:
    """Why the real-Krita e2e cannot run here, or None."""
    missing = [tool for tool in ("krita", "xvfb-run", "xauth") if shutil.which(tool) is None]
    if missing:
        return f"real-Krita e2e needs {', '.join(missing)} (apt-get install krita python3-pyqt5 xvfb xauth)"
    return None


def prepare_profile(home: Path) -> None:
    """Install latentbrush with ``installers/krita_install.py`` plus the harness plugin into ``home``."""
    resources = home / ".local" / "share" / "krita"
    kritarc = home / ".config" / "kritarc"
    done = subprocess.run(
        [sys.executable, str(ROOT / "installers" / "krita_install.py"), "--profile", str(resources),
         "--kritarc", str(kritarc), "--min-python", KRITA_PYTHON],
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"krita_install.py failed:\n{done.stdout}\n{done.stderr}")
    pykrita = resources / "pykrita"
    shutil.copytree(HARNESS / "lb_e2e_runner", pykrita / "lb_e2e_runner", dirs_exist_ok=True)
    shutil.copy2(HARNESS / "lb_e2e_runner.desktop", pykrita / "lb_e2e_runner.desktop")
    kritarc.write_text(_installer().enable_in_kritarc(kritarc.read_text(encoding="utf-8"), "lb_e2e_runner"))


def _installer() -> ModuleType:
    if str(ROOT / "installers") not in sys.path:
        sys.path.insert(0, str(ROOT / "installers"))  # krita_install imports install_common beside it
    spec = importlib.util.spec_from_file_location("latentbrush_krita_install", ROOT / "installers" / "krita_install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class KritaRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    results: dict = field(default_factory=dict)
    e2e_rc: str = "missing"

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-60:])
        return f"krita rc={self.rc} e2e_rc={self.e2e_rc} in {self.seconds:.0f} s\n--- stdout\n{self.stdout[-6000:]}" \
               f"\n--- stderr (tail)\n{tail}"


def host_path(path: str) -> str:
    """PATH without virtual environments: Krita's embedded Python takes its prefix from the first
    ``python3`` on PATH, and a venv's prefix hides the system PyQt5 (Krita then fails to load its API)."""
    keep = [p for p in path.split(os.pathsep) if p and not (Path(p).parent / "pyvenv.cfg").exists()]
    return os.pathsep.join(keep)


Launcher = Callable[[dict[str, str], int], tuple[list[str], dict[str, str] | None]]


def host_launcher(script_env: dict[str, str], timeout_s: int) -> tuple[list[str], dict[str, str] | None]:
    """Krita on this machine, under its own Xvfb, with the caller's environment minus what confuses it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "QT_QPA_PLATFORM", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                        "VIRTUAL_ENV")}
    env.update({"PATH": host_path(env.get("PATH", "")), **script_env})
    return ["xvfb-run", "-a", "-s", XVFB_SCREEN, "timeout", "-k", "10", str(timeout_s), "krita", "--nosplash"], env


def backend_env() -> dict[str, str]:
    """The environment of a script whose docker starts the real backend (local-server mode, tiny model)."""
    command = f"{sys.executable} -m latentbrush.backend --device cpu --log-level WARNING"
    return {"LB_E2E_SERVER_CMD": command, "HF_HUB_OFFLINE": "1"}


def run_script(home: Path, module: str, out: Path, timeout_s: int, extra_env: dict[str, str] | None = None,
               launcher: Launcher = host_launcher) -> KritaRun:
    """Start Krita with ``module`` as the harness's script; returns its exit status, logs and JSON results.

    ``launcher`` turns the harness's variables into a command and environment (the Krita 6 driver runs
    Krita inside a chroot this way)."""
    out.mkdir(parents=True, exist_ok=True)
    runtime = home / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    result_file = out / f"{module}.json"
    rc_file = out / f"{module}.rc"
    for stale in (result_file, rc_file):
        stale.unlink(missing_ok=True)
    script_env = {
        "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "LB_E2E_MODULE": module, "LB_E2E_PATH": str(SCRIPTS),
        "LB_E2E_RESULT": str(result_file), "LB_E2E_RC_FILE": str(rc_file), "LB_E2E_OUT": str(out),
        **(extra_env or {}),
    }
    command, env = launcher(script_env, timeout_s)
    start = time.monotonic()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s + 30)
        rc, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = -1, str(exc.stdout or ""), str(exc.stderr or "")
    run = KritaRun(rc, stdout, stderr, time.monotonic() - start)
    if rc_file.exists():
        run.e2e_rc = rc_file.read_text().strip()
    if result_file.exists():
        run.results = json.loads(result_file.read_text(encoding="utf-8"))
    (out / f"{module}.stdout.txt").write_text(stdout)
    (out / f"{module}.stderr.txt").write_text(stderr)
    return run
