"""Live mode with the fake Krita and the scripted protocol server: the docker's Live tab through the real client.

The server runs on the session's own loop (as in test_docker.py); ``server.gated`` holds every job at its
next step, so a test can change the canvas while a live job runs, without timing assumptions.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from fake_krita import Selection
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.plugin.hosts.krita.extension import find_docker, register
from latentbrush.plugin.hosts.krita.live import hello_preset, live_settings
from latentbrush.plugin.hosts.krita.live_watch import CanvasWatch, sample_rows
from latentbrush.plugin.hosts.krita.preview import LIVE_LAYER_NAME
from latentbrush.plugin.hosts.krita.settings import REMOTE
from latentbrush.protocol import ModelInfo, SamplerPreset
from latentbrush.protocol.geometry import Rect
from plugin_fake_server import FakeServer, result_color
from qt_wait import spin_until


@pytest.fixture
def plugin(app):
    extension = register(app)
    extension.setup()
    app.open_window()
    docker = find_docker(app.window)
    yield docker, extension.session
    docker.live.stop()
    extension.session.shutdown()


@pytest.fixture
def server(plugin):
    _, session = plugin
    fake = FakeServer(token="secret", steps=4)
    task = session.pump.submit(fake.start())
    spin_until(task.done, "the fake server to listen")
    yield fake
    fake.gate.set()
    stop = session.pump.submit(fake.stop())
    spin_until(stop.done, "the fake server to stop")


@pytest.fixture
def live(plugin, server, app):
    """Connected, a 96x64 document with a selection, the Live tab shown: (docker, session, document)."""
    docker, session = plugin
    docker.connection.set_mode(REMOTE)
    docker.connection.url.setText(server.url)
    docker.connection.token.setText("secret")
    docker.connection.button.click()
    spin_until(lambda: session.connected, "the connection")
    doc = app.createDocument(96, 64, "t", "RGBA", "U8", "", 72.0)
    sel = Selection()
    sel.select(30, 20, 24, 16, 255)
    doc.setSelection(sel)
    docker.generation.prompt.setPlainText("a lighthouse")
    docker.show_tab("Live")
    return docker, session, doc


def names(doc) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes()]


def stroke(doc, x: int, y: int, bgr=(0, 0, 200)) -> None:
    """A 6x6 dab on the background layer, as the painter's brush would leave it."""
    background = doc.rootNode().childNodes()[0]
    background.setPixelData(bytes((*bgr, 255)) * 36, x, y, 6, 6)


def settled(live_mode, count: int):
    """Wait until ``count`` live jobs were started and all of them ended; returns their records."""
    spin_until(lambda: len(live_mode.runs) >= count and live_mode.running_jobs == 0, f"{count} live job(s)")
    return [live_mode.history.get(run.job_id) for run in live_mode.runs]


def layer_pixel(doc, name: str, x: int, y: int) -> tuple[int, ...]:
    node = doc.nodeByName(name)
    return tuple(node.pixels[y, x])


def test_turning_live_on_streams_into_one_live_layer_and_leaves_the_painters_layer_alone(live):
    docker, session, doc = live
    background = doc.rootNode().childNodes()[0].pixels.copy()
    frames = []
    docker.live.picture_changed.connect(frames.append)
    docker.live_panel.toggle.click()
    assert docker.live.active and docker.live_panel.toggle.isChecked()
    (record,) = settled(docker.live, 1)
    assert record.state == "done" and record.op == "img2img"
    assert record.settings.seed == 1 and record.settings.steps == 6 and record.settings.batch == 1
    assert record.settings.strength == docker.generation.strength.value() / 100  # the Refine slider
    assert frames == [False] * 4 + [True]  # every streamed step, then the result, into the same layer
    assert names(doc) == ["Background", LIVE_LAYER_NAME]
    assert doc.nodeByName(LIVE_LAYER_NAME).locked()
    assert doc.history == ["Add Layer"]  # the live layer itself; its pictures record nothing
    r, g, b = result_color(0, 1)
    assert layer_pixel(doc, LIVE_LAYER_NAME, 40, 25) == (b, g, r, 255)  # the result, inside the selection
    assert layer_pixel(doc, LIVE_LAYER_NAME, 2, 2)[3] == 0  # and nothing outside the region
    assert np.array_equal(doc.rootNode().childNodes()[0].pixels, background)
    assert docker.live_panel.apply.isEnabled()
    assert not session.history.records  # live jobs are not the History tab's
    assert "done" in docker.live_panel.status.text()


def test_no_job_without_a_change_and_one_after_a_stroke(live, server):
    docker, _, doc = live
    docker.live_panel.toggle.click()
    settled(docker.live, 1)
    for _ in range(5):  # a quiet canvas: checks find nothing to do
        docker.live.check()
    assert len(docker.live.runs) == 1 and len(server.submitted) == 1
    assert len(docker.live.check_seconds) >= 5
    stroke(doc, 36, 24)
    docker.live.check()  # sees the change...
    assert len(docker.live.runs) == 1
    docker.live.check()  # ...and acts once it has settled
    records = settled(docker.live, 2)
    assert [r.state for r in records] == ["done", "done"]
    first, second = server.submitted[0], server.submitted[-1]
    assert (second.image, second.inputs) != (first.image, first.inputs)  # the new stroke was sent
    docker.live.check()
    assert len(docker.live.runs) == 2


def test_a_stroke_outside_the_context_or_on_the_live_layer_is_no_change(live, server):
    docker, _, doc = live
    docker.live_panel.toggle.click()
    settled(docker.live, 1)
    box = server.submitted[0].context
    stroke(doc, 0, 0) if box.x > 6 else stroke(doc, 90, 58)
    doc.nodeByName(LIVE_LAYER_NAME).setPixelData(bytes(4 * 36), 30, 20, 6, 6)
    for _ in range(3):
        docker.live.check()
    assert len(docker.live.runs) == 1


def test_a_second_change_supersedes_the_running_job(live, server):
    docker, _, doc = live
    server.gated = True  # the first job waits at its first step
    docker.live_panel.toggle.click()
    spin_until(lambda: docker.live.runs and docker.live.runs[0].job_id, "the first job to be queued")
    first = docker.live.runs[0].job_id
    stroke(doc, 36, 24)
    docker.live.check()
    docker.live.check()
    assert len(docker.live.runs) == 2
    # cancelled by the server: the second job's stream supersedes it
    spin_until(lambda: any(s.state(first) == "cancelling" for s in server.sessions.values()), "the supersede")
    server.gate.set()
    records = settled(docker.live, 2)
    assert records[0].job_id == first and records[0].state == "cancelled" and records[0].error is None
    assert records[1].state == "done"
    assert docker.live.runs[0].result_at is None  # nothing of the stale job reached the layer
    assert docker.live.layer.final and names(doc) == ["Background", LIVE_LAYER_NAME]


def test_apply_adds_one_layer_under_the_live_layer_and_starts_no_job(live):
    docker, _, doc = live
    docker.live_panel.toggle.click()
    settled(docker.live, 1)
    docker.live_panel.apply.click()
    applied = "[Generated] a lighthouse (1)"
    assert names(doc) == ["Background", applied, LIVE_LAYER_NAME]
    assert doc.history == ["Add Layer", "Add Layer"]
    assert not doc.nodeByName(applied).locked()
    assert np.array_equal(doc.nodeByName(applied).pixels, doc.nodeByName(LIVE_LAYER_NAME).pixels)
    for _ in range(3):
        docker.live.check()
    assert len(docker.live.runs) == 1


def test_turning_live_off_removes_the_live_layer_and_ends_the_job(live, server):
    docker, _, doc = live
    server.gated = True
    docker.live_panel.toggle.click()
    spin_until(lambda: LIVE_LAYER_NAME in names(doc) or docker.live.runs[0].job_id, "the live job")
    server.gate.set()
    settled(docker.live, 1)
    server.gate.clear()
    stroke(doc, 36, 24)
    docker.live.check()
    docker.live.check()
    spin_until(lambda: docker.live.runs[-1].job_id, "the second job to be queued")
    docker.live_panel.toggle.click()  # off, mid-job
    assert not docker.live.active and names(doc) == ["Background"]
    server.gate.set()
    records = settled(docker.live, 2)
    assert records[-1].state == "cancelled"
    assert names(doc) == ["Background"]  # nothing late brought it back
    assert docker.live_panel.status.text() == "Live is off" and not docker.live_panel.apply.isEnabled()


def test_closing_the_document_or_undoing_the_live_layer_ends_live(live, app):
    docker, _, doc = live
    docker.live_panel.toggle.click()
    settled(docker.live, 1)
    doc.undo()  # the painter undoes the live layer's "Add Layer"
    docker.live.check()
    assert not docker.live.active and not docker.live_panel.toggle.isChecked()
    assert "removed" in docker.live_panel.status.text() and names(doc) == ["Background"]

    docker.live_panel.toggle.click()
    settled(docker.live, 2)
    app._documents.remove(doc)
    docker.live.check()
    assert not docker.live.active and "closed" in docker.live_panel.status.text()


def test_live_needs_a_connection_and_inpaint_needs_a_selection(plugin, server, app, live):
    docker, _, doc = live
    doc.setSelection(Selection())  # nothing selected
    docker.live_panel.operation.setCurrentIndex(docker.live_panel.operation.findData("inpaint"))
    docker.live_panel.toggle.click()
    assert not docker.live.active and not docker.live_panel.toggle.isChecked()
    assert "selection" in docker.live_panel.status.text()
    docker.connection.button.click()  # disconnect
    spin_until(lambda: not docker.session.connected, "the disconnect")
    docker.live_panel.toggle.click()
    assert not docker.live.active and "Not connected" in docker.live_panel.status.text()


def test_the_live_preset_is_the_models_few_step_preset_else_few_steps():
    base = GenerationSettings(prompt="p", sampler="Euler a", steps=30, cfg=7.0, seed=None, batch=3, strength=0.4)
    plain = live_settings(base, None, 6, 1)
    assert (plain.sampler, plain.steps, plain.cfg, plain.seed, plain.batch, plain.strength) == \
        ("Euler a", 6, 7.0, 1, 1, 0.4)
    preset = SamplerPreset("LCM", 4, 1.5)
    fast = live_settings(base, preset, 6, None)
    assert (fast.sampler, fast.steps, fast.cfg, fast.seed) == ("LCM", 4, 1.5, None)
    hello = SimpleNamespace(default_model="a", models=(ModelInfo("a", "sd15", False, 512, preset=preset),
                                                       ModelInfo("b", "sd15", False, 512)))
    assert hello_preset(hello, "") is preset and hello_preset(hello, "b") is None and hello_preset(None, "a") is None


def test_a_check_reads_at_most_its_budget_of_rows():
    assert sample_rows(Rect(0, 0, 100, 10), budget=5000) == list(range(10))  # small: every row
    rows = sample_rows(Rect(0, 10, 1024, 768), budget=64 * 1024)
    assert len(rows) == 64 and rows == sorted(set(rows)) and rows[0] >= 10 and rows[-1] < 778
    assert sample_rows(Rect(0, 0, 0, 0)) == []


def test_the_watch_reads_only_the_active_layer_of_the_box(app):
    doc = app.createDocument(64, 48, "t", "RGBA", "U8", "", 72.0)
    reads = []
    watch = CanvasWatch(doc, lambda selection: Rect(8, 8, 32, 24), budget=32 * 4)  # 4 of the box's 24 rows
    base = watch.baseline()
    assert watch.signature() == base
    layer = doc.rootNode().childNodes()[0]
    original = layer.pixelData
    layer.pixelData = lambda *xywh: reads.append(xywh) or original(*xywh)
    rows = sample_rows(Rect(8, 8, 32, 24), budget=32 * 4)
    layer.setPixelData(bytes((9, 9, 9, 255)) * 32, 8, rows[1], 32, 1)  # a line across a sampled row
    assert watch.signature() != base
    assert reads and all(w == 32 and h == 1 and x == 8 for x, _, w, h in reads)  # rows of the box only


def test_live_inpaint_waits_while_nothing_is_selected(live):
    docker, _, doc = live
    docker.live_panel.operation.setCurrentIndex(docker.live_panel.operation.findData("inpaint"))
    docker.live_panel.toggle.click()
    assert settled(docker.live, 1)[0].op == "inpaint"
    doc.setSelection(Selection())
    docker.live.check()
    assert docker.live.active and "selection" in docker.live_panel.status.text()
    sel = Selection()
    sel.select(10, 10, 20, 20, 255)
    doc.setSelection(sel)
    docker.live.check()
    docker.live.check()
    records = settled(docker.live, 2)
    assert records[-1].state == "done" and records[-1].plan.region == Rect(10, 10, 20, 20)


def test_the_watch_keeps_the_painters_layer_when_ours_becomes_active(app):
    doc = app.createDocument(64, 48, "t", "RGBA", "U8", "", 72.0)
    watch = CanvasWatch(doc, lambda selection: Rect(0, 0, 64, 48))
    base = watch.baseline()
    ours = doc.createNode(LIVE_LAYER_NAME, "paintlayer")
    doc.rootNode().addChildNode(ours, None)
    doc.setActiveNode(ours)  # what Krita 5.1.5 does to a layer shown again after a refresh
    assert watch.signature() == base  # our layer is not the painter's
    doc.rootNode().childNodes()[0].setPixelData(bytes((1, 2, 3, 255)) * 4, 10, 10, 2, 2)
    assert watch.signature() != base  # the painter's layer is still the one watched
