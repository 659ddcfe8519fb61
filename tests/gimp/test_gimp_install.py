"""installers/gimp_install.py: folder layout per GIMP version and platform, executable entry file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "installers"))
import gimp_install  # noqa: E402


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"HOME": "/home/p"}, "/home/p/.config/GIMP"),
        ("linux", {"HOME": "/home/p", "XDG_CONFIG_HOME": "/xdg"}, "/xdg/GIMP"),
        ("linux", {"HOME": "/home/p", "XDG_CONFIG_HOME": "relative"}, "/home/p/.config/GIMP"),
        ("darwin", {"HOME": "/Users/p"}, "/Users/p/Library/Application Support/GIMP"),
        ("win32", {"USERPROFILE": "C:/Users/p", "APPDATA": "C:/Users/p/AppData/Roaming"},
         "C:/Users/p/AppData/Roaming/GIMP"),
    ],
)
def test_default_config_dir(platform, env, expected):
    assert gimp_install.default_config_dir(platform, env) == Path(expected)


def test_install_writes_an_executable_plugin_per_version(tmp_path):
    folders = gimp_install.install(tmp_path, ("3.0", "3.2"))
    assert folders == [tmp_path / v / "plug-ins" / "latentbrush" for v in ("3.0", "3.2")]
    for folder in folders:
        entry = folder / "latentbrush.py"  # GIMP requires folder name == file name
        assert entry.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3")
        assert os.access(entry, os.X_OK)  # not executable = silently ignored by GIMP
        lib = folder / "lib" / "latentbrush"
        assert (lib / "plugin" / "hosts" / "gimp" / "plugin.py").is_file()
        assert (lib / "protocol" / "messages.py").is_file()
        assert (lib / "plugin" / "vendor" / "websockets" / "asyncio" / "client.py").is_file()
        assert not (lib / "plugin" / "hosts" / "krita").exists()  # Qt code stays out of GIMP
        assert not list(lib.rglob("*.so")) and not list(lib.rglob("__pycache__"))


def test_bundle_imports_in_a_clean_python_without_the_checkout(tmp_path):
    (folder,) = gimp_install.install(tmp_path, ("3.2",))
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]];"
        "import latentbrush.plugin.hosts.gimp.procedures as p, latentbrush.plugin.deps as d;"
        "print(len(p.PROCEDURES), d.ensure_websockets(), p.__file__)"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(folder / "lib")],
                          capture_output=True, text=True, check=True)
    count, version, where = done.stdout.split()
    assert count == "5" and int(version.split(".")[0]) >= 13
    assert where.startswith(str(folder))


def test_reinstall_replaces_and_uninstall_removes(tmp_path):
    (folder,) = gimp_install.install(tmp_path, ("3.0",))
    (folder / "stale.txt").write_text("old", encoding="utf-8")
    gimp_install.install(tmp_path, ("3.0",))
    assert not (folder / "stale.txt").exists()
    assert gimp_install.uninstall(tmp_path, ("3.0", "3.2")) == [folder]
    assert not folder.exists()


def test_cli_rejects_an_unknown_version(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gimp_install.main(["--config-dir", str(tmp_path), "--version", "2.10"])
    assert "invalid choice" in capsys.readouterr().err
