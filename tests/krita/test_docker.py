"""The docker and session under PyQt offscreen, with the fake Krita API and a scripted protocol server.

The fake server runs on the session's own asyncio loop, so the whole path is real: docker widgets
-> session -> core controller and client -> websocket -> server -> events -> KritaHost -> layers.
"""

from __future__ import annotations

import pytest
from fake_krita import Selection
from latentbrush.plugin.hosts.krita.preview import PREVIEW_LAYER_NAME
from latentbrush.plugin.hosts.krita.settings import REMOTE, SETTINGS_GROUP, DockerSettings
from latentbrush.plugin.qt import QWidget
from plugin_fake_server import FakeServer
from qt_wait import spin_until


@pytest.fixture
def server(plugin):
    _, _, session = plugin
    fake = FakeServer(token="secret", steps=4)
    task = session.pump.submit(fake.start())
    spin_until(task.done, "the fake server to listen")
    yield fake
    stop = session.pump.submit(fake.stop())
    spin_until(stop.done, "the fake server to stop")


def connect(docker, session, server) -> None:
    docker.connection.set_mode(REMOTE)
    docker.connection.url.setText(server.url)
    docker.connection.token.setText("secret")
    docker.connection.button.click()
    spin_until(lambda: session.connected, "the connection")


def document(app, w=96, h=64):
    doc = app.createDocument(w, h, "t", "RGBA", "U8", "", 72.0)
    sel = Selection()
    sel.select(30, 20, 24, 16, 255)
    doc.setSelection(sel)
    return doc


def names(doc) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes()]


def test_registration_gives_a_docker_and_the_actions(plugin, app):
    _, docker, _ = plugin
    assert docker is not None and docker.windowTitle() == "latentbrush"
    assert set(app.window.actions) == {"latentbrush_inpaint", "latentbrush_generate", "latentbrush_refine",
                                       "latentbrush_upscale", "latentbrush_cancel"}
    assert docker.connection.status.text().endswith("Not connected")


def test_the_docker_is_five_tabs_with_a_big_primary_action(plugin, app):
    _, docker, _ = plugin
    tabs = docker.tabs
    assert [tabs.tabText(i) for i in range(tabs.count())] == ["Generate", "Live", "Upscale", "History", "Connection"]
    assert tabs.tabText(tabs.currentIndex()) == "Connection"  # not connected yet: that comes first
    names = {w.objectName() for w in docker.findChildren(QWidget)}
    assert {"latentbrush_run", "latentbrush_generate", "latentbrush_inpaint", "latentbrush_refine",
            "latentbrush_upscale", "latentbrush_prompt", "latentbrush_history", "latentbrush_cancel",
            "latentbrush_progress", "latentbrush_connection_status", "latentbrush_blend_outward"} <= names
    run, inpaint = docker.generation.run, docker.generation.buttons["inpaint"]
    assert run.minimumHeight() >= 2 * inpaint.sizeHint().height() - 2 and run.font().bold()
    assert docker.generation.buttons["upscale"].font().bold()  # the Upscale tab's own primary action
    document(app)
    run.click()  # the primary action is the auto one (inpaint the selection): without a server it says why
    assert "Not connected" in docker.progress.status.text()


def test_connecting_from_the_connection_tab_moves_on_to_generate(plugin, server):
    _, docker, session = plugin
    docker.show_tab("Connection")
    connect(docker, session, server)
    spin_until(lambda: docker.tabs.tabText(docker.tabs.currentIndex()) == "Generate", "the Generate tab")
    assert docker.tabs.tabToolTip(4) == "Connected"


def test_generating_without_a_connection_says_why(plugin, app):
    _, docker, _ = plugin
    document(app)
    assert docker.run_operation("inpaint") is False
    assert "Not connected" in docker.progress.status.text()


def test_connecting_fills_models_and_shows_the_server(plugin, server):
    _, docker, session = plugin
    connect(docker, session, server)
    assert docker.generation.model.currentData() == "fake"
    assert "fake · cpu" in docker.connection.server_label.text()
    assert docker.connection.button.text() == "Disconnect"
    assert not docker.connection.url.isEnabled()


def test_ranges_come_from_the_protocol_and_shrink_to_the_servers_limits(plugin, server):
    _, docker, session = plugin
    gen = docker.generation
    assert (gen.steps.maximum(), gen.batch.maximum(), gen.cfg.maximum()) == (200, 16, 30.0)  # JobRequest metadata
    assert (gen.upscale_factor.minimum(), gen.upscale_factor.maximum()) == (1.0, 8.0)  # UpscaleParams.scale
    gen.steps.setValue(180)
    connect(docker, session, server)
    assert (gen.steps.maximum(), gen.batch.maximum()) == (50, 4)  # the fake server's hello limits
    assert gen.steps.value() == 50 and gen.generation_settings("inpaint").steps == 50  # never above the server's
    docker.connection.button.click()  # disconnect: back to the protocol's ranges
    spin_until(lambda: gen.steps.maximum() == 200, "the protocol's ranges again")


def test_a_wrong_token_is_reported(plugin, server):
    _, docker, session = plugin
    docker.connection.set_mode(REMOTE)
    docker.connection.url.setText(server.url)
    docker.connection.token.setText("wrong")
    docker.connection.button.click()
    spin_until(lambda: session.state == "failed", "the refusal")
    assert "refused the token" in docker.connection.status.text()  # in plain words, not "unauthorized"
    assert "unauthorized" not in docker.progress.status.text()


def test_inpaint_action_streams_previews_and_adds_one_result_layer(plugin, server, app, monkeypatch):
    _, docker, session = plugin
    connect(docker, session, server)
    doc = document(app)
    docker.generation.prompt.setPlainText("a red barn")
    docker.generation.random_seed.setChecked(False)
    docker.generation.seed.setValue(77)
    seen_preview = []
    shown = session._preview_shown

    def sample_layers() -> None:  # the layer stack right after each frame reached the canvas
        node = doc.nodeByName(PREVIEW_LAYER_NAME)
        seen_preview.append((names(doc).count(PREVIEW_LAYER_NAME), node is not None and node.locked()))
        shown()

    monkeypatch.setattr(session, "_preview_shown", sample_layers)
    app.window.actions["latentbrush_inpaint"].trigger()
    assert not docker.generation.buttons["inpaint"].isEnabled()  # one job at a time
    spin_until(lambda: session.running_jobs == 0, "the job")

    record = session.history.records[-1]
    assert record.state == "done" and record.op == "inpaint" and record.seed == 77
    assert seen_preview == [(1, True)] * server.steps  # one locked preview layer, every frame
    assert names(doc) == ["Background", "[Generated] a red barn (77)"]
    assert doc.history == ["Add Layer"]  # the preview became the result: one undo step
    assert len(session.preview_latencies) == server.steps
    assert docker.progress.bar.format() == "done"
    assert docker.history.job_ids() == [record.job_id]
    assert not docker.history.list.item(0).icon().isNull()  # a thumbnail of the result
    assert docker.generation.buttons["inpaint"].isEnabled()
    assert app.settings[(SETTINGS_GROUP, "prompt")] == "a red barn"


def test_cancel_action_mid_job_leaves_no_preview(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    doc = document(app)
    server.steps = 500  # long enough to cancel in the middle
    app.window.actions["latentbrush_inpaint"].trigger()
    spin_until(lambda: PREVIEW_LAYER_NAME in names(doc), "the first preview")
    app.window.actions["latentbrush_cancel"].trigger()
    spin_until(lambda: session.running_jobs == 0, "the cancel")
    record = session.history.records[-1]
    assert record.state == "cancelled" and 0 < record.step < 500
    assert names(doc) == ["Background"]
    assert docker.progress.bar.format() == "cancelled"


def test_batch_is_one_group_and_history_apply_and_discard(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    doc = document(app)
    docker.generation.batch.setValue(2)
    docker.generation.random_seed.setChecked(False)
    docker.generation.seed.setValue(5)
    docker.generation.buttons["generate"].click()
    spin_until(lambda: session.running_jobs == 0 and session.history.records, "the job")
    record = session.history.records[-1]
    assert record.state == "done" and record.op == "txt2img"
    group = doc.rootNode().childNodes()[-1]
    assert group.type() == "grouplayer" and len(group.childNodes()) == 2
    assert doc.history[-1] == "Add Layer"

    assert session.apply(record.job_id)
    assert [n.type() for n in doc.rootNode().childNodes()][-2:] == ["grouplayer", "grouplayer"]
    docker.history.list.setCurrentRow(0)
    docker.history.discard.click()
    assert names(doc) == ["Background"]
    assert docker.history.job_ids() == []


def test_refine_uses_the_strength_slider_and_upscale_resizes(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    doc = document(app, 48, 32)
    docker.generation.strength.setValue(35)
    docker.generation.buttons["refine"].click()
    spin_until(lambda: session.running_jobs == 0 and session.history.records, "the refine")
    refine = session.history.records[-1]
    assert refine.op == "img2img" and refine.settings.strength == 0.35 and refine.state == "done"

    row = docker.history.list.item(0).text()
    assert row.startswith("Refine · ") and "img2img" not in row  # the docker's words, not the protocol's

    doc.setSelection(Selection())
    docker.generation.upscale_factor.setValue(2.0)
    docker.generation.buttons["upscale"].click()
    spin_until(lambda: session.running_jobs == 0 and len(session.history.records) == 2, "the upscale")
    upscale = session.history.records[-1]
    assert upscale.state == "done", upscale.error
    assert (doc.width(), doc.height()) == (96, 64)
    assert doc.rootNode().childNodes()[-1].bounds().getRect() == (0, 0, 96, 64)
    assert upscale.request.upscale.refine is False and upscale.request.upscale.unblur is None


def test_the_upscale_tab_sends_its_refine_pass_and_unblur(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    document(app, 48, 32)
    gen = docker.generation
    assert not gen.unblur.isEnabled()  # unblur steers the refine pass: off without one
    gen.upscale_refine.setChecked(True)
    gen.refine_strength.setValue(55)
    gen.unblur.setValue(0.8)
    assert (gen.unblur.minimum(), gen.unblur.maximum()) == (0.0, 2.0)  # UpscaleParams.unblur
    gen.buttons["upscale"].click()
    spin_until(lambda: session.running_jobs == 0 and session.history.records, "the upscale")
    params = session.history.records[-1].request.upscale
    assert (params.refine, params.refine_strength, params.unblur) == (True, 0.55, 0.8)
    stored = gen.store(DockerSettings())
    assert (stored.upscale_refine, stored.upscale_refine_strength, stored.upscale_unblur) == (True, 0.55, 0.8)


def test_disconnect_ends_running_jobs_and_the_preview(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    doc = document(app)
    server.steps = 500
    docker.generation.buttons["inpaint"].click()
    spin_until(lambda: PREVIEW_LAYER_NAME in names(doc), "the first preview")
    docker.connection.button.click()  # disconnect
    spin_until(lambda: session.running_jobs == 0, "the job to end")
    assert names(doc) == ["Background"]
    assert docker.connection.button.text() == "Connect"


def test_a_second_window_docker_shows_the_shared_history(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    document(app)
    docker.generation.buttons["inpaint"].click()
    spin_until(lambda: session.running_jobs == 0 and session.history.records, "the job")
    second = app.factories[0].createDockWidget()
    assert second.history.job_ids() == docker.history.job_ids()
    assert second.connection.button.text() == "Disconnect"


# A local "server" process: the scripted fake server behind the listening line the docker waits for.
LOCAL_FAKE = (
    "import asyncio, sys; sys.path.insert(0, {path!r}); from plugin_fake_server import FakeServer\n"
    "async def main():\n"
    "    fake = FakeServer(token='local-secret', steps=500)\n"
    "    print('latentbrush-server listening on', await fake.start(), flush=True)\n"
    "    await asyncio.Event().wait()\n"
    "asyncio.run(main())\n"
)


def test_a_killed_local_server_ends_the_job_at_once_and_offers_restart(plugin, app, monkeypatch, tmp_path):
    import os
    import signal
    import sys
    from pathlib import Path

    from latentbrush.plugin.core import history as hs
    from latentbrush.plugin.core.events import SERVER_STOPPED
    from latentbrush.plugin.core.messages import painter_message

    monkeypatch.setenv("LATENTBRUSH_TOKEN", "local-secret")
    _, docker, session = plugin
    script = tmp_path / "local_fake.py"
    script.write_text(LOCAL_FAKE.format(path=str(Path(__file__).parents[1] / "plugin")), encoding="utf-8")
    command = f"{sys.executable} {script}"
    docker.connection.set_mode("local")
    docker.connection.command.setText(command)
    docker.connection.button.click()
    spin_until(lambda: session.connected, "the local server and the connection")
    doc = document(app)
    docker.generation.buttons["inpaint"].click()
    spin_until(lambda: PREVIEW_LAYER_NAME in names(doc), "the first preview")
    os.kill(session.server._process.processId(), signal.SIGKILL)
    spin_until(lambda: session.running_jobs == 0, "the job to end")
    record = session.history.records[-1]
    assert record.state == hs.ERROR and record.error_code == SERVER_STOPPED
    assert record.error == painter_message(SERVER_STOPPED, "inpaint")
    assert names(doc) == ["Background"]
    assert session.state == "failed" and docker.connection.button.text() == "Restart"
    assert "crashed" in docker.connection.status.text() and "listening on" in docker.connection.status.toolTip()
    assert docker.progress.bar.value() == 0  # the bar does not keep the last step
    docker.connection.button.click()  # Restart
    spin_until(lambda: session.connected, "the restarted server")
    assert docker.connection.button.text() == "Disconnect"
