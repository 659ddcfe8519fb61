"""The docker with the managed server: install from the Connection tab -> settings switched, server started and
connected; the first-run notice -> model download into the managed models folder -> the server restarts.

The plan's steps are real processes. The "venv python" they install is a script that answers like the
managed server would: ``-m latentbrush.backend models list|download ...`` print the JSON the backend prints,
anything else runs the protocol's fake server (tests/plugin/plugin_fake_server.py) and prints its listening line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from latentbrush.plugin.core.install.layout import is_installed
from latentbrush.plugin.core.install.plan import InstallPlan, Step
from latentbrush.plugin.core.install.state import InstallState
from latentbrush.plugin.hosts.krita.first_run import NOTICE_TEXT
from latentbrush.plugin.hosts.krita.install_panel import managed_command
from latentbrush.plugin.hosts.krita.server_process import join_command
from latentbrush.plugin.hosts.krita.settings import LOCAL, REMOTE, load
from qt_wait import spin_until
from test_first_run import hello

FAKE_PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin"
MANAGED_PYTHON = """#!{python}
import asyncio, json, sys
sys.path.insert(0, {path!r})
args = sys.argv[1:]
if args[:4] == ["-m", "latentbrush.backend", "models", "list"]:
    print(json.dumps({{"sets": [{{"name": "sd15", "title": "SD 1.5", "total_bytes": 4300000000,
                                 "recommended": True}}]}}))
    sys.exit(0)
if args[:4] == ["-m", "latentbrush.backend", "models", "download"]:
    models = args[args.index("--models") + 1]
    for event in ({{"event": "plan", "total_bytes": 10, "files": 1}},
                  {{"event": "progress", "file": "m.safetensors", "done_bytes": 10, "total_bytes": 10,
                    "overall_done": 10, "overall_total": 10}}, {{"event": "done"}}):
        print(json.dumps(event), flush=True)
    open(models + "/downloaded-" + args[4], "w").close()
    sys.exit(0)
from plugin_fake_server import FakeServer
async def main():
    fake = FakeServer(token="local-secret")
    print("started with", " ".join(args), flush=True)
    print("latentbrush-server listening on", await fake.start(), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


@pytest.fixture(autouse=True)
def server_home(tmp_path, monkeypatch):
    """Set before the ``plugin`` fixture registers the plugin: its docker plans into this folder."""
    monkeypatch.setenv("LATENTBRUSH_SERVER_HOME", str(tmp_path / "server"))
    monkeypatch.setenv("LATENTBRUSH_TOKEN", "local-secret")


def fake_install_planner(layout):
    script = MANAGED_PYTHON.format(python=sys.executable, path=str(FAKE_PLUGIN_DIR))
    write_python = ("import os, pathlib, sys; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True); "
                    "p.write_text(sys.argv[2]); os.chmod(p, 0o755); print('created', p)")
    state = InstallState(version="0.1.0", torch_label="CPU only", torch_requirements=(), torch_index_url=None,
                         source="", tool="pip")

    def plan(action: str) -> InstallPlan:
        return InstallPlan(action, (
            Step("Creating the Python environment", (sys.executable, "-c", write_python, str(layout.python), script)),
            Step("Recording what was installed", ("latentbrush:write-state", state.to_json()), weight=0.1),
        ), None, layout)
    return plan


def install(docker, session) -> None:
    panel = docker.install_panel
    panel._planner = fake_install_planner(panel.layout_)
    panel._confirm = lambda *_: True
    docker.show_tab("Connection")
    assert panel.install.isVisibleTo(docker) and not panel.installed
    panel.install.click()
    spin_until(lambda: session.connected, "the install, the managed server and the connection")


def test_installing_switches_the_docker_to_the_managed_server_and_connects(plugin, app, tmp_path):
    _, docker, session = plugin
    docker.connection.set_mode(REMOTE)
    install(docker, session)
    layout = docker.install_panel.layout_
    assert layout.root == tmp_path / "server" and is_installed(layout)
    saved = load(app.readSetting)
    assert saved.server_mode == LOCAL and saved.server_command == managed_command(layout)
    assert docker.connection.current_mode() == LOCAL
    assert docker.connection.command.text() == managed_command(layout)
    output = session.server.recent_output()
    assert f"started with -m latentbrush.backend --models {layout.models_dir} --port 0" in output
    panel = docker.install_panel
    assert panel.manage.isVisibleTo(panel) and panel.install.isHidden() and docker.runs_managed_server()


def test_the_first_run_notice_downloads_into_the_managed_models_and_restarts_the_server(plugin, tmp_path):
    _, docker, session = plugin
    install(docker, session)
    assert not docker.first_run.isHidden()  # the fake server's one model is a built-in (source "builtin")
    session.server_info_changed.emit(hello("tiny", "dreamshaper_8"))
    assert docker.first_run.isHidden()
    session.server_info_changed.emit(hello("tiny", "tiny-inpaint"))
    assert not docker.first_run.isHidden() and NOTICE_TEXT in docker.first_run.text()
    first_process = session.server._process
    dialog = docker.download_models()
    spin_until(lambda: dialog.sets.count() == 1, "the set list")
    assert dialog.total.text() == "Total: 4.3 GB"
    dialog.start_download()
    models = docker.install_panel.layout_.models_dir
    spin_until(lambda: (models / "downloaded-sd15").exists(), "the download")
    spin_until(lambda: session.connected and session.server._process is not first_process, "the restart")
    assert session.server.url and "--models " + str(models) in session.server.recent_output()


def test_uninstall_forgets_the_managed_command_and_keeps_the_models(plugin, app):
    _, docker, session = plugin
    install(docker, session)
    layout = docker.install_panel.layout_
    (layout.models_dir / "mine.safetensors").write_bytes(b"w")
    panel = docker.install_panel

    def uninstall_plan(action: str) -> InstallPlan:
        return InstallPlan(action, (Step("Removing the venv", ("latentbrush:remove-tree", str(layout.venv))),
                                    Step("Removing the record", ("latentbrush:remove-file", str(layout.state_file)))),
                           None, layout)

    panel._planner = uninstall_plan
    panel.menu_actions["uninstall"].trigger()
    spin_until(lambda: not panel.running and not panel.installed, "the uninstall")
    assert not session.server.running and not session.connected  # stopped before its files went
    assert docker.connection.command.text() == "" and load(app.readSetting).server_command == ""
    assert (layout.models_dir / "mine.safetensors").exists()


def test_a_server_not_installed_here_gets_the_commands_to_run(plugin):
    _, docker, _ = plugin
    dialog = docker.download_models()
    assert "latentbrush-server models download" in dialog.commands.toPlainText()
    dialog.close()



@pytest.mark.slow
def test_the_real_backend_with_no_models_brings_up_the_notice(plugin, tmp_path, monkeypatch):
    """The contract behind the notice: what the real backend offers from an empty models folder is all built-in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the server's token file and the client's
    monkeypatch.delenv("LATENTBRUSH_TOKEN")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, docker, session = plugin
    (tmp_path / "models").mkdir()
    docker.connection.set_mode(LOCAL)
    docker.connection.command.setText(join_command([sys.executable, "-m", "latentbrush.backend", "--device", "cpu",
                                                    "--models", str(tmp_path / "models")]))
    docker.connection.button.click()
    spin_until(lambda: session.connected or session.state == "failed", "the real backend", limit=240)
    assert session.connected, session.server.recent_output()
    assert {m.name for m in session.client.hello.models} >= {"tiny", "tiny-inpaint"}
    assert not docker.first_run.isHidden() and NOTICE_TEXT in docker.first_run.text()
    docker.connection.button.click()  # disconnect: stops the server
    spin_until(lambda: not session.server.running, "the server to stop")
