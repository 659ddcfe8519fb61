"""Real Krita 5: the docker's "Install local server" installs the managed server, connects to it and paints.

Run: ``.venv/bin/python -m pytest tests/e2e/krita -m krita -k install``. A fresh Krita profile gets the plugin
from the zip built with ``--with-server-wheel`` (through Krita's own importer); ``LATENTBRUSH_SERVER_HOME``
points at an empty folder. The install is real: a venv from the system Python, PyTorch 2.14.1 (several GB,
from the local pip indexes, several minutes), the bundled wheel. The scenario is ``scripts/install_e2e.py``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from krita_runner import HARNESS, _installer, missing_tools, run_script
from test_krita_e2e import keep_screenshots

pytestmark = [pytest.mark.krita, pytest.mark.slow,
              pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
TORCH = "torch==2.14.1 torchvision==0.29.1"  # pinned like installers/bootstrap.sh; the local indexes hold them
TIMEOUT_S = 1200
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def import_zip(zip_path: Path, resources: Path) -> None:
    """What Krita's Tools > Scripts > Import Python Plugin from File does (its own code when it is here)."""
    resources.mkdir(parents=True, exist_ok=True)
    if KRITA_IMPORTER.is_file():
        spec = importlib.util.spec_from_file_location("krita_plugin_importer", KRITA_IMPORTER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        imported = module.PluginImporter(str(zip_path), str(resources), lambda plugin: True).import_all()
        assert [p["name"] for p in imported] == ["latentbrush"]
    else:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(resources / "pykrita")


@pytest.fixture(scope="module")
def zip_home(tmp_path_factory):
    """A Krita profile with latentbrush imported from the zip that bundles the server wheel, plus the harness."""
    tmp = tmp_path_factory.mktemp("krita-install")
    zip_path = tmp / "latentbrush-krita.zip"
    installer = _installer()
    assert installer.main(["--zip", str(zip_path), "--no-install", "--with-server-wheel", "--min-python", "3.11"]) == 0
    home = tmp / "home"
    resources, kritarc = home / ".local" / "share" / "krita", home / ".config" / "kritarc"
    import_zip(zip_path, resources)
    pykrita = resources / "pykrita"
    shutil.copytree(HARNESS / "lb_e2e_runner", pykrita / "lb_e2e_runner", dirs_exist_ok=True)
    shutil.copy2(HARNESS / "lb_e2e_runner.desktop", pykrita / "lb_e2e_runner.desktop")
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    text = installer.enable_in_kritarc("")
    kritarc.write_text(installer.enable_in_kritarc(text, "lb_e2e_runner"), encoding="utf-8")
    return home


def install_env(server_home: Path) -> dict[str, str]:
    # the system's programs only (as a painter's desktop has them): the install finds /usr/bin/python3.11
    env = {"LATENTBRUSH_SERVER_HOME": str(server_home), "LATENTBRUSH_TORCH": TORCH, "LATENTBRUSH_GPU": "none",
           "HF_HUB_OFFLINE": "1", "PATH": SYSTEM_PATH}
    user_pip = Path.home() / ".config" / "pip" / "pip.conf"  # HOME moves to the profile: keep the local indexes
    if user_pip.is_file() and "PIP_CONFIG_FILE" not in os.environ:
        env["PIP_CONFIG_FILE"] = str(user_pip)
    return env


def test_install_local_server_from_the_docker_then_connect_and_generate(zip_home, tmp_path):
    server_home = tmp_path / "server"
    run = run_script(zip_home, "install_e2e", tmp_path / "out", timeout_s=TIMEOUT_S, extra_env=install_env(server_home))
    r = run.results
    print(f"install took {r.get('install_seconds')} s; steps {r.get('steps')}; connect {r.get('connect_seconds')} s")
    assert run.rc == 0 and run.e2e_rc == "0", run.describe()

    # before: the plugin from the zip carries the wheel; nothing installed, the button and what it does
    assert r["layout_root"] == str(server_home)
    assert Path(r["bundled_wheel"]).name.startswith("latentbrush-") and "/pykrita/latentbrush/wheels/" in \
        r["bundled_wheel"], r["bundled_wheel"]
    before = r["before"]
    assert before["install_visible"] and not before["manage_visible"] and not before["installed"], before
    assert "2.5 GB" in before["info"] and str(server_home) in before["info"]
    assert str(server_home) in r["confirm_text"] and r["confirm_title"] == "Install the local server"
    assert r["running_after_click"] and r["progress_visible"], r.get("message")

    # the install: every step ran, it ended well, the log has it all
    assert r["finished"] == [[True, ""]], (r["message"], r["last_lines"], run.describe())
    titles = [s[2] for s in r["steps"]]
    assert titles[0] == "Removing the old Python environment" and titles[-1] == "Recording what was installed"
    assert any(t.startswith("Installing PyTorch") for t in titles), titles
    assert r["installed"] and r["log_bytes"] > 1000 and r["log_button_visible"]
    assert (server_home / "install.json").is_file() and (server_home / "venv" / "bin" / "python").exists()
    assert r["settings_mode"] == "local" and str(server_home / "venv" / "bin" / "python") in r["settings_command"]

    # the docker connected to the managed server it started, which offers the built-in models: the notice
    assert r["connected"], (r.get("server_output"), run.describe())
    assert r["runs_managed_server"] and r["manage_visible_after"]
    assert r["models"][:1] == ["tiny"] and all(m.startswith("tiny") for m in r["models"]), r["models"]
    assert r["first_run_visible"] and "paints noise" in r["first_run_text"]
    assert r["screenshot_install"] and r["screenshot_first_run"]
    keep_screenshots(tmp_path / "out", ("krita-install.png", "krita-first-run.png"))
    for title, tab in r["layout"]["tabs"].items():
        assert not tab["scrolls"] and tab["clipped"] == [], (title, r["layout"])

    # one Generate job on the tiny model: its layer is in the document
    job = r["job"]
    assert job["state"] == "done", job
    assert len(job["layers"]) == len(job["layers_before"]) + 1, job
