"""Finding uv or a Python >= 3.10 on a real PATH (programs in a temporary folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from latentbrush.plugin.core.install.plan import find_tools

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX shell scripts stand in for programs")


def program(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_a_python_on_path_is_probed_and_an_old_one_skipped(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    program(bin_dir, "python3.12", "exit 127")  # a shim without its interpreter
    program(bin_dir, "python3.11", 'echo "3 9"')  # answers, but too old
    bin_dir.joinpath("python3").symlink_to(sys.executable)
    tools = find_tools({"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert tools.uv is None
    assert tools.python == (str(bin_dir / "python3"),)
    assert tools.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_uv_is_found_where_its_installer_puts_it_even_off_path(tmp_path: Path) -> None:
    uv = program(tmp_path / ".local" / "bin", "uv", "exit 0")
    tools = find_tools({"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)})
    assert tools.uv == str(uv) and tools.python is None and tools.name == "uv"
