"""Where the managed server lives on each system, and what starts it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

import tomllib
from latentbrush.plugin.core.install.layout import default_layout, is_installed, layout_at, server_command
from latentbrush.plugin.core.install.version import VERSION, package_version

REPO = Path(__file__).resolve().parents[3]


def win(path: object) -> PureWindowsPath:
    """A Windows path built on this (POSIX) machine, as Windows reads it."""
    return PureWindowsPath(str(path))


def test_windows_uses_localappdata_and_scripts_python() -> None:
    layout = default_layout("win32", {"LOCALAPPDATA": r"C:\Users\Ann\AppData\Local", "USERPROFILE": r"C:\Users\Ann"})
    root = PureWindowsPath(r"C:\Users\Ann\AppData\Local\latentbrush\server")
    assert win(layout.root) == root
    assert win(layout.python) == root / "venv" / "Scripts" / "python.exe"
    assert win(layout.models_dir) == root / "models"
    assert win(layout.log_file) == root / "install.log" and win(layout.state_file) == root / "install.json"


def test_windows_without_localappdata_falls_back_to_the_profile() -> None:
    layout = default_layout("win32", {"USERPROFILE": r"C:\Users\Bo"})
    assert win(layout.root) == PureWindowsPath(r"C:\Users\Bo\AppData\Local\latentbrush\server")


def test_macos_uses_application_support() -> None:
    layout = default_layout("darwin", {"HOME": "/Users/ann"})
    assert PurePosixPath(layout.root) == PurePosixPath("/Users/ann/Library/Application Support/latentbrush/server")
    assert PurePosixPath(layout.python) == PurePosixPath(layout.root) / "venv" / "bin" / "python"


def test_linux_follows_xdg_data_home_but_only_an_absolute_one() -> None:
    assert default_layout("linux", {"HOME": "/home/ann", "XDG_DATA_HOME": "/data"}).root == Path(
        "/data/latentbrush/server")
    for xdg in ("", "relative/dir"):
        layout = default_layout("linux", {"HOME": "/home/ann", "XDG_DATA_HOME": xdg})
        assert layout.root == Path("/home/ann/.local/share/latentbrush/server")
        assert layout.python == layout.root / "venv" / "bin" / "python"


def test_the_home_variable_wins_everywhere() -> None:
    for platform in ("linux", "darwin", "win32"):
        layout = default_layout(platform, {"LATENTBRUSH_SERVER_HOME": "/portable/lb", "HOME": "/home/x"})
        assert layout.root == Path("/portable/lb") and layout.venv == Path("/portable/lb/venv")


def test_server_command_runs_the_venv_python_with_the_models_folder() -> None:
    layout = layout_at(Path("/srv/lb"))
    assert server_command(layout) == ["/srv/lb/venv/bin/python", "-m", "latentbrush.backend", "--models",
                                      "/srv/lb/models"]


def test_installed_needs_both_the_state_file_and_the_python(tmp_path: Path) -> None:
    layout = layout_at(tmp_path)
    assert not is_installed(layout)
    layout.python.parent.mkdir(parents=True)
    layout.python.write_text("")
    assert not is_installed(layout)  # an install that never finished
    layout.state_file.write_text("{}")
    assert is_installed(layout)
    layout.python.unlink()
    assert not is_installed(layout)


def test_the_built_in_version_is_the_projects() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert VERSION == project["version"] == package_version()
