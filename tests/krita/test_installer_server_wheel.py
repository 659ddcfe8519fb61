"""installers/krita_install.py --with-server-wheel: the plugin zip carries the latentbrush wheel where
``core/install/plan.bundled_wheel`` finds it, so the docker's "Install local server" needs no index for it."""

from __future__ import annotations

import email.parser
import zipfile
from pathlib import Path

import pytest
from latentbrush.plugin.core.install.plan import bundled_wheel
from latentbrush.plugin.core.install.version import VERSION
from test_installer import installer

pytestmark = pytest.mark.slow


def test_the_zip_bundles_the_server_wheel_where_the_install_finds_it(tmp_path):
    zip_path = tmp_path / "latentbrush-krita.zip"
    assert installer.main(["--zip", str(zip_path), "--no-install", "--with-server-wheel", "--min-python", "3.11"]) == 0
    names = zipfile.ZipFile(zip_path).namelist()
    wheels = [n for n in names if n.startswith("latentbrush/wheels/") and n.endswith(".whl")]
    assert wheels == [f"latentbrush/wheels/latentbrush-{VERSION}-py3-none-any.whl"], wheels
    assert "latentbrush/plugin/hosts/krita/install_panel.py" in names

    zipfile.ZipFile(zip_path).extractall(tmp_path / "pykrita")
    package = tmp_path / "pykrita" / "latentbrush"
    found = bundled_wheel(package)
    assert found is not None and found.name == Path(wheels[0]).name
    # the docker looks from its own file: plugin/hosts/krita/install_panel.py -> the package
    assert (package / "plugin" / "hosts" / "krita" / "install_panel.py").resolve().parents[3] == package.resolve()

    with zipfile.ZipFile(found) as wheel:
        inside = set(wheel.namelist())
        (meta_name,) = (n for n in inside if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(wheel.read(meta_name).decode("utf-8"))
    assert {"latentbrush/backend/__main__.py", "latentbrush/plugin/core/install/plan.py",
            "latentbrush/protocol/messages.py"} <= inside
    assert meta["Version"] == VERSION
    assert any("extra == \"backend\"" in r or "extra == 'backend'" in r for r in meta.get_all("Requires-Dist") or ())


def test_without_the_option_no_wheel_is_bundled(tmp_path):
    bundle = installer.build_bundle(tmp_path / "bundle", vendor=False)
    assert bundled_wheel(bundle / "latentbrush") is None


def test_a_wheel_that_is_not_latentbrush_is_refused(tmp_path):
    other = tmp_path / "websockets-15.0-py3-none-any.whl"
    other.write_bytes(b"")
    with pytest.raises(installer.InstallError, match="not a latentbrush wheel"):
        installer.build_bundle(tmp_path / "bundle", vendor=False, server_wheel=other)
