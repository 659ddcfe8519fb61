"""Where the managed server lives: its venv, models, log and state file, per operating system."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "LATENTBRUSH_SERVER_HOME"  # overrides the root (tests, portable installs)


@dataclass(frozen=True)
class InstallLayout:
    root: Path  # <user data>/latentbrush/server
    venv: Path  # root / "venv"
    python: Path  # the venv's python (Windows: venv/Scripts/python.exe, else venv/bin/python)
    models_dir: Path  # root / "models"
    log_file: Path  # root / "install.log"
    state_file: Path  # root / "install.json" (what was installed: version, torch build, when)
    platform: str = sys.platform

    @property
    def scripts_dir(self) -> Path:
        """The venv's folder of programs (``latentbrush``, ``latentbrush-server``)."""
        return self.python.parent


def layout_at(root: Path, platform: str = sys.platform) -> InstallLayout:
    """The layout under ``root``."""
    venv = root / "venv"
    python = venv / "Scripts" / "python.exe" if platform == "win32" else venv / "bin" / "python"
    return InstallLayout(root=root, venv=venv, python=python, models_dir=root / "models",
                         log_file=root / "install.log", state_file=root / "install.json", platform=platform)


def _home(env: Mapping[str, str], platform: str) -> Path:
    value = env.get("USERPROFILE" if platform == "win32" else "HOME") or env.get("HOME")
    return Path(value) if value else Path(os.path.expanduser("~"))


def default_root(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> Path:
    """``<user data>/latentbrush/server``: %LOCALAPPDATA%, ~/Library/Application Support or $XDG_DATA_HOME."""
    override = env.get(HOME_ENV, "")
    if override:
        return Path(override)
    if platform == "win32":
        base = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else _home(env, platform) / "AppData" / "Local"
    elif platform == "darwin":
        base = _home(env, platform) / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg.startswith("/") else _home(env, platform) / ".local" / "share"  # XDG: absolute only
    return base / "latentbrush" / "server"


def default_layout(platform: str = sys.platform, env: Mapping[str, str] = os.environ) -> InstallLayout:
    return layout_at(default_root(platform, env), platform)


def is_installed(layout: InstallLayout) -> bool:
    """The state file is there (the last install finished) and so is the venv's python."""
    return layout.state_file.is_file() and layout.python.is_file()


def server_command(layout: InstallLayout) -> list[str]:
    """How to start the managed server; the caller adds ``--port`` / ``--token-file`` as it does for any server."""
    return [str(layout.python), "-m", "latentbrush.backend", "--models", str(layout.models_dir)]
