"""Token discovery, the websockets import check and the vendoring script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from latentbrush.plugin import deps
from latentbrush.plugin.core.token import TokenError, config_dir, find_token

REPO = Path(__file__).resolve().parents[2]
VENDOR_SCRIPT = REPO / "installers" / "vendor_websockets.py"


def test_config_dir_matches_platformdirs_on_each_platform():
    home = "/home/ann"
    assert config_dir("linux", {}, home) == Path("/home/ann/.config/latentbrush")
    assert config_dir("linux", {"XDG_CONFIG_HOME": "/x/cfg"}, home) == Path("/x/cfg/latentbrush")
    assert config_dir("linux", {"XDG_CONFIG_HOME": "relative"}, home) == Path("/home/ann/.config/latentbrush")
    assert config_dir("darwin", {}, home) == Path("/home/ann/Library/Application Support/latentbrush")
    assert config_dir("win32", {"LOCALAPPDATA": r"C:\Users\ann\AppData\Local"}, home) == Path(
        r"C:\Users\ann\AppData\Local") / "latentbrush"


def test_config_dir_agrees_with_platformdirs_here(monkeypatch, tmp_path):
    platformdirs = pytest.importorskip("platformdirs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_dir() == Path(platformdirs.user_config_dir("latentbrush", appauthor=False))


def test_find_token_precedence(monkeypatch, tmp_path):
    file = tmp_path / "token"
    file.write_text("from-file\n")
    monkeypatch.delenv("LATENTBRUSH_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert find_token("explicit", str(file)) == "explicit"
    assert find_token(None, str(file)) == "from-file"
    monkeypatch.setenv("LATENTBRUSH_TOKEN", "from-env")
    assert find_token() == "from-env"
    monkeypatch.delenv("LATENTBRUSH_TOKEN")
    with pytest.raises(TokenError, match="start latentbrush-server once"):
        find_token()
    (tmp_path / "cfg" / "latentbrush").mkdir(parents=True)
    (tmp_path / "cfg" / "latentbrush" / "token").write_text("default\n")
    assert find_token() == "default"
    file.write_text("  \n")
    with pytest.raises(TokenError, match="empty"):
        find_token(None, str(file))


def test_missing_websockets_gives_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "websockets", None)  # import websockets now fails
    with pytest.raises(deps.MissingDependency) as info:
        deps.ensure_websockets(tmp_path)
    message = str(info.value)
    assert "websockets" in message and "vendor_websockets.py" in message and "pip install" in message


def test_vendored_copy_is_preferred_and_version_checked(tmp_path):
    fake = tmp_path / "websockets"
    (fake / "asyncio").mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "12.0"\n')
    (fake / "asyncio" / "__init__.py").write_text("")
    (fake / "asyncio" / "client.py").write_text("")
    code = (
        "import sys; from pathlib import Path; from latentbrush.plugin import deps\n"
        "try:\n    deps.ensure_websockets(Path(sys.argv[1]))\n"
        "except deps.MissingDependency as exc:\n    print('MISSING', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "MISSING" in done.stdout and "Found websockets 12.0" in done.stdout, done.stderr


def test_python_requirement_parsing():
    vendor = _load_vendor_module()
    assert vendor.python_allowed(">=3.9", "3.10") and not vendor.python_allowed(">=3.11", "3.10")
    assert vendor.python_allowed(">=3.8, !=3.9.*", "3.10") and not vendor.python_allowed(">=3.8,<3.10", "3.10")
    assert vendor.python_allowed("", "3.10")
    assert vendor.python_allowed("~=3.9", "3.10") and not vendor.python_allowed(">=3.10.1", "3.10")
    with pytest.raises(vendor.VendorError, match="cannot read Requires-Python"):
        vendor.python_allowed(">=three", "3.10")


def test_vendor_script_refuses_a_too_new_wheel_and_copies_a_fitting_one(tmp_path):
    import websockets

    target = tmp_path / "vendor"
    # the installed websockets: accepted for a bundle whose oldest Python is the one running here
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    done = subprocess.run([sys.executable, str(VENDOR_SCRIPT), "--target", str(target), "--min-python", here],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    package = target / "websockets"
    assert (package / "asyncio" / "client.py").is_file() and (package / "VENDORED.json").is_file()
    assert not list(package.rglob("*.so")) and not list(package.rglob("__pycache__"))
    assert websockets.__version__ in done.stdout
    # an impossible floor: refused with the reason and the fix
    done = subprocess.run([sys.executable, str(VENDOR_SCRIPT), "--target", str(tmp_path / "v2"),
                           "--min-python", "3.0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "requires Python" in done.stderr and "websockets>=13,<16" in done.stderr
    assert not (tmp_path / "v2" / "websockets").exists()


def _load_vendor_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vendor_websockets", VENDOR_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
