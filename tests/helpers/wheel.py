"""The project's wheel, built from a copy of the sources (nothing is written into the checkout), offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("protocol", "plugin", "backend", "setup.py", "pyproject.toml", "README.md", "LICENSE")
TIMEOUT_S = 300


def build_wheel(tmp: Path) -> Path:
    """``latentbrush-*.whl`` in ``tmp/dist`` (pip wheel without build isolation: no index needed)."""
    src = tmp / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "vendor",
                                                                            "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"pip wheel failed:\n{done.stdout}{done.stderr}")
    (wheel,) = (tmp / "dist").glob("latentbrush-*.whl")
    return wheel
