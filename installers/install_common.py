"""What the Krita and GIMP installers share: per-user folders, copying source trees, vendoring websockets.

Standard library only; runs on Python >= 3.10. Imported by the installer scripts beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR_SCRIPT = Path(__file__).resolve().parent / "vendor_websockets.py"
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


class InstallError(RuntimeError):
    pass


def user_home(env: dict[str, str]) -> Path:
    return Path(env.get("HOME") or env.get("USERPROFILE") or os.path.expanduser("~"))


def user_folder(app: str, platform: str, env: dict[str, str] | None, *, windows_var: str,
                windows_default: tuple[str, ...], mac: tuple[str, ...], xdg_var: str,
                xdg_default: tuple[str, ...]) -> Path:
    """``app``'s per-user folder: Windows under ``%windows_var%``, macOS under ~/``mac``, else XDG."""
    env = dict(os.environ) if env is None else env
    home = user_home(env)
    if platform == "win32":
        return Path(env.get(windows_var) or home.joinpath(*windows_default)) / app
    if platform == "darwin":
        return home.joinpath(*mac) / app
    xdg = env.get(xdg_var, "")
    return (Path(xdg) if xdg.startswith("/") else home.joinpath(*xdg_default)) / app


def copy_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy a source folder without caches and byte code; ``skip`` names paths relative to ``src``."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(src).as_posix()
        dropped = {n for n in names if n in SKIP_DIRS or n.endswith((".pyc", ".pyo"))}
        dropped |= {n for n in names if (f"{rel}/{n}" if rel != "." else n) in skip}
        return dropped

    shutil.copytree(src, dst, ignore=ignore)


def vendor_websockets(target: Path, wheel: Path | None = None, min_python: str | None = None) -> None:
    """Put websockets into ``target`` (``latentbrush/plugin/vendor``) for the host's own Python."""
    if (target / "websockets").is_dir():
        return  # came along with plugin/ (a checkout that already vendored it)
    prebuilt = ROOT / "plugin" / "vendor"
    if wheel is None and (prebuilt / "websockets").is_dir():
        shutil.copytree(prebuilt, target, dirs_exist_ok=True)
        return
    command = [sys.executable, str(VENDOR_SCRIPT), "--target", str(target)]
    if wheel is not None:
        command += ["--wheel", str(wheel)]
    if min_python:
        command += ["--min-python", min_python]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not (target / "websockets").is_dir():
        raise InstallError(f"vendoring websockets failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
