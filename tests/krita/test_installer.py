"""installers/krita_install.py: the bundle zip, the profile install, kritarc, and the bundle in Krita's Python."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
KRITA_PYTHON = Path("/usr/bin/python3")  # Debian's Krita embeds the system Python


def load(name: str, path: Path):
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # the installers import install_common beside them
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


installer = load("krita_install_under_test", ROOT / "installers" / "krita_install.py")


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zip") / "latentbrush-krita.zip"
    assert installer.main(["--zip", str(path), "--no-install", "--min-python", "3.11"]) == 0
    return path


def test_zip_holds_the_pykrita_package_with_protocol_and_vendored_websockets(bundle_zip):
    names = set(zipfile.ZipFile(bundle_zip).namelist())
    for required in (
        "latentbrush.desktop", "latentbrush.action", "latentbrush/__init__.py",
        "latentbrush/plugin/qt.py", "latentbrush/plugin/core/controller.py",
        "latentbrush/plugin/hosts/krita/extension.py", "latentbrush/protocol/messages.py",
        "latentbrush/plugin/vendor/websockets/__init__.py",
    ):
        assert required in names, required
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith("latentbrush/plugin/hosts/gimp") for n in names)
    desktop = zipfile.ZipFile(bundle_zip).read("latentbrush.desktop").decode()
    assert "X-KDE-Library=latentbrush" in desktop and "ServiceTypes=Krita/PythonPlugin" in desktop


@pytest.mark.skipif(not KRITA_IMPORTER.is_file(), reason="Krita's plugin importer is not installed")
def test_krita_own_importer_accepts_the_zip(bundle_zip, tmp_path):
    importer = load("krita_plugin_importer", KRITA_IMPORTER)
    imported = importer.PluginImporter(str(bundle_zip), str(tmp_path), lambda plugin: True).import_all()
    assert [p["name"] for p in imported] == ["latentbrush"]
    assert (tmp_path / "pykrita" / "latentbrush" / "plugin" / "hosts" / "krita" / "docker.py").is_file()
    assert (tmp_path / "pykrita" / "latentbrush.desktop").is_file()
    assert (tmp_path / "actions" / "latentbrush.action").is_file()  # default shortcuts go with it


def test_install_into_a_profile_enables_the_plugin_and_keeps_kritarc(tmp_path):
    resources, kritarc = tmp_path / "share" / "krita", tmp_path / "config" / "kritarc"
    kritarc.parent.mkdir(parents=True)
    kritarc.write_text("[General]\nwindowTitle=yes\n\n[python]\nenable_scripter=true\n")
    assert installer.main(["--profile", str(resources), "--kritarc", str(kritarc), "--min-python", "3.11"]) == 0
    assert (resources / "pykrita" / "latentbrush" / "__init__.py").is_file()
    assert (resources / "pykrita" / "latentbrush.desktop").is_file()
    assert (resources / "actions" / "latentbrush.action").is_file()
    text = kritarc.read_text()
    assert "windowTitle=yes" in text and "enable_scripter=true" in text and "enable_latentbrush=true" in text
    # installing again replaces the package and does not repeat the key
    assert installer.main(["--profile", str(resources), "--kritarc", str(kritarc), "--min-python", "3.11"]) == 0
    assert kritarc.read_text().count("enable_latentbrush") == 1


def test_profile_without_kritarc_leaves_every_kritarc_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert installer.main(["--profile", str(tmp_path / "res"), "--no-vendor"]) == 0
    assert not (tmp_path / "home").exists()
    assert "kritarc not changed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "[python]\nenable_latentbrush=true\n"),
        ("[General]\na=1\n", "[General]\na=1\n\n[python]\nenable_latentbrush=true\n"),
        ("[python]\nenable_latentbrush=false\n[Other]\nx=2\n", "[python]\nenable_latentbrush=true\n[Other]\nx=2\n"),
        ("[python]\nenable_x=true\n[Other]\nenable_latentbrush=false\n",
         "[python]\nenable_latentbrush=true\nenable_x=true\n[Other]\nenable_latentbrush=false\n"),
    ],
)
def test_enable_in_kritarc(before, after):
    assert installer.enable_in_kritarc(before) == after


def test_default_locations_per_platform():
    env = {"HOME": "/h", "APPDATA": r"C:\Users\a\AppData\Roaming", "LOCALAPPDATA": r"C:\Users\a\AppData\Local"}
    assert installer.default_resources_dir("linux", env) == Path("/h/.local/share/krita")
    assert installer.default_resources_dir("linux", {**env, "XDG_DATA_HOME": "/x"}) == Path("/x/krita")
    assert installer.default_resources_dir("darwin", env) == Path("/h/Library/Application Support/krita")
    assert installer.default_resources_dir("win32", env) == Path(r"C:\Users\a\AppData\Roaming") / "krita"
    assert installer.default_kritarc("linux", env) == Path("/h/.config/kritarc")
    assert installer.default_kritarc("darwin", env) == Path("/h/Library/Preferences/kritarc")
    assert installer.default_kritarc("win32", env) == Path(r"C:\Users\a\AppData\Local") / "kritarc"


def _has_system_pyqt5() -> bool:
    if not KRITA_PYTHON.is_file():
        return False
    return subprocess.run([str(KRITA_PYTHON), "-c", "import PyQt5.QtWidgets"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_system_pyqt5(), reason="needs /usr/bin/python3 with PyQt5 (Debian's Krita Python)")
def test_the_bundle_is_self_contained_in_kritas_python_with_pyqt5(bundle_zip, tmp_path):
    """Krita's Python has no venv: the bundle alone must import, pick PyQt5 and find its websockets."""
    zipfile.ZipFile(bundle_zip).extractall(tmp_path / "pykrita")
    shutil.copy2(Path(__file__).parent / "fake_krita.py", tmp_path / "fake_krita.py")
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import PyQt5.QtWidgets, fake_krita; sys.modules['krita'] = fake_krita\n"
        "app = PyQt5.QtWidgets.QApplication([])\n"
        "import latentbrush\n"  # the bundle's __init__ registers the plugin, as Krita's import of it does
        "from latentbrush.plugin.qt import QT_API\n"
        "from latentbrush.plugin.deps import ensure_websockets\n"
        "version = ensure_websockets()\n"  # puts the bundle's vendor folder on sys.path
        "import websockets, latentbrush.protocol\n"
        "from latentbrush.plugin.hosts.krita.extension import find_docker\n"
        "k = fake_krita.Krita.instance(); ext = k.extensions[0]; k.open_window(); d = find_docker(k.window)\n"
        "print(QT_API, version, websockets.__file__.startswith(sys.argv[1]), d.windowTitle(),\n"
        "      sorted(k.window.actions)[0])\n"
        "ext.session.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run([str(KRITA_PYTHON), "-c", code, str(tmp_path / "pykrita"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    api, version, vendored, title, first_action = done.stdout.split()
    assert (api, vendored, title, first_action) == ("PyQt5", "True", "latentbrush", "latentbrush_cancel")
    assert int(version.split(".")[0]) >= 13
    assert sys.version_info >= (3, 10)


def test_vendoring_a_wheel_skips_entries_that_climb_out_of_the_package(tmp_path):
    vendor = importlib.import_module("vendor_websockets")  # beside the installers, already on sys.path
    wheel = tmp_path / "websockets-14.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("websockets-14.0.dist-info/METADATA", "Metadata-Version: 2.1\nVersion: 14.0\n")
        archive.writestr("websockets/__init__.py", "")
        archive.writestr("websockets/../../escaped.py", "")
    assert sorted(vendor.from_wheel(wheel).files) == ["websockets/__init__.py"]
