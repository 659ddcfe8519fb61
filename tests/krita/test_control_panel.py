"""The docker's control-layer list under PyQt offscreen, with the fake Krita API and the scripted protocol server.

Rows -> the Generate tab's settings, on/off, modes from a hello, the layer lists, and whole jobs through the
docker whose control input is a layer's own pixels (the current layer, a hidden one, a deleted one).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from latentbrush.plugin.core.client import Blob
from latentbrush.plugin.core.requests import ControlSpec, ReferenceSpec
from latentbrush.plugin.hosts.krita.control_modes import KNOWN_MODES, control_modes, model_family
from latentbrush.plugin.hosts.krita.control_panel import ControlList
from latentbrush.plugin.hosts.krita.extension import find_docker, register
from latentbrush.plugin.hosts.krita.layers import CURRENT_LAYER, LayerSource, node_id
from latentbrush.plugin.hosts.krita.settings import REMOTE
from latentbrush.protocol import ControlInfo, Limits, ModelInfo, ServerHello
from plugin_fake_server import FakeServer
from qt_wait import spin_until

W, H = 96, 64


def hello(**fields) -> ServerHello:
    base = dict(protocol=1, minor=1, server="fake", client_id="c", resumed=False, device="cpu", dtype="float32",
                models=(ModelInfo("tiny", "tiny", False, 64), ModelInfo("photo", "sd15", False, 512),
                        ModelInfo("xl", "sdxl", False, 1024)),
                upscalers=(), samplers=("Euler a",), limits=Limits(1 << 26, 1 << 24, 8, 4, 50), default_model="tiny",
                controls=(ControlInfo("tiny-scribble", "scribble", "tiny"), ControlInfo("tiny-canny", "canny", "tiny"),
                          ControlInfo("control_v11f1p_sd15_depth", "depth", "sd15")),
                preprocessors=("", "scribble", "canny"))
    return ServerHello(**{**base, **fields})


@pytest.fixture
def plugin(app):
    extension = register(app)
    extension.setup()
    app.open_window()
    yield find_docker(app.window), extension.session
    extension.session.shutdown()


@pytest.fixture
def server(plugin):
    _, session = plugin
    fake = FakeServer(token="secret", steps=2)
    spin_until(session.pump.submit(fake.start()).done, "the fake server to listen")
    yield fake
    spin_until(session.pump.submit(fake.stop()).done, "the fake server to stop")


def connect(docker, session, server) -> None:
    docker.connection.set_mode(REMOTE)
    docker.connection.url.setText(server.url)
    docker.connection.token.setText("secret")
    docker.connection.button.click()
    spin_until(lambda: session.connected, "the connection")


def scribble_doc(app):
    """A white document with a "sketch" layer on top: two dark strokes on transparency."""
    doc = app.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    sketch = doc.createNode("sketch", "paintlayer")
    doc.rootNode().addChildNode(sketch, None)
    sketch.pixels[20:23, 10:80] = (30, 30, 30, 255)
    sketch.pixels[10:50, 40:43] = (30, 30, 30, 255)
    doc.refreshProjection()
    return doc, sketch


def names(doc) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes()]


def control_inputs(job) -> list:
    return [i for i in job.inputs if i.role == "control"]


# ----------------------------------------------------------------------------- modes


def test_modes_that_steer_the_model_come_first():
    tiny = control_modes(hello(), "tiny")
    assert [c.mode for c in tiny[:2]] == ["scribble", "canny"] and all(c.steers for c in tiny[:2])
    assert {c.mode for c in tiny} == set(KNOWN_MODES) and not any(c.steers for c in tiny[2:])
    assert [c.preprocessor for c in tiny[:2]] == ["scribble", "canny"]
    assert next(c for c in tiny if c.mode == "depth").preprocessor == ""  # no depth preprocessor on this server
    photo = control_modes(hello(), "photo")
    assert photo[0].mode == "depth" and photo[0].steers and not any(c.steers for c in photo[1:])
    assert control_modes(hello(), "")[0].mode == "scribble"  # "" is the server's default model (tiny)
    assert model_family(hello(), "xl") == "sdxl" and model_family(None, "tiny") == ""
    assert [c.mode for c in control_modes(None)] == list(KNOWN_MODES)  # no hello yet: every mode, none steers
    assert control_modes(None)[0].label == "scribble (no ControlNet for this model)"


def test_the_list_follows_the_hello_and_the_model(qapp):
    panel = ControlList()
    row = panel.add_control_row()
    assert row.mode.count() == len(KNOWN_MODES) and not row.make_image.isEnabled()  # no preprocessors known
    panel.set_server_info(hello())
    panel.set_model("tiny")
    assert row.mode.itemText(0) == "scribble" and row.current_mode() == "scribble"  # kept while re-ordered
    assert row.make_image.isEnabled()
    panel.set_model("photo")
    assert row.mode.itemData(0) == "depth" and row.current_mode() == "scribble"
    assert row.mode.currentText() == "scribble (no ControlNet for this model)"
    row.select_mode("depth")
    assert not row.make_image.isEnabled() and "no preprocessor" in row.make_image.toolTip()


# ----------------------------------------------------------------------------- rows -> settings


def test_rows_become_the_settings_of_generate_inpaint_and_refine(plugin, app):
    docker, _ = plugin
    doc, sketch = scribble_doc(app)
    gen = docker.generation
    gen.set_server_info(hello())
    control = gen.controls.add_control_row("scribble")
    control.layer.opening.emit()  # what opening its list does: the layers are read again
    labels = [control.layer.itemText(i) for i in range(control.layer.count())]
    assert labels == ["Current layer", "sketch", "Background"]
    control.layer.setCurrentIndex(1)
    control.set_weight(0.75)
    control.start.setValue(10)
    control.end.setValue(80)
    reference = gen.controls.add_reference_row("style", LayerSource(node_id(sketch), "sketch"))
    reference.set_weight(0.5)
    source = LayerSource(node_id(sketch), "sketch")
    for op in ("txt2img", "inpaint", "img2img", None):
        settings = gen.generation_settings(op)
        assert settings.controls == (ControlSpec(source, "scribble", "", "scribble", 0.75, 0.1, 0.8),), op
        assert settings.references == (ReferenceSpec(source, "style", "", 0.5),), op
    assert gen.generation_settings("upscale").controls == () and gen.generation_settings("upscale").references == ()

    control.enabled.setChecked(False)  # off: the jobs ignore it, the row stays
    assert gen.generation_settings("txt2img").controls == () and len(gen.controls.rows) == 2
    assert not control.strength.isEnabled()
    control.enabled.setChecked(True)
    control.start.setValue(90)  # the range stays a range
    assert (control.start.value(), control.end.value()) == (90, 90)
    reference.remove.click()
    assert gen.generation_settings("txt2img").references == () and gen.controls.rows == [control]
    assert names(doc) == ["Background", "sketch"]  # the layers are untouched


def test_the_layer_lists_follow_the_document(plugin, app):
    docker, _ = plugin
    doc, sketch = scribble_doc(app)
    row = docker.generation.controls.add_control_row()
    assert row.layer.source() == CURRENT_LAYER  # a new row reads the current layer
    group = doc.createGroupLayer("inks")
    inner = doc.createNode("pen", "paintlayer")
    group.setChildNodes([inner])
    doc.rootNode().addChildNode(group, None)
    docker.canvasChanged(None)
    labels = [row.layer.itemText(i) for i in range(row.layer.count())]
    assert labels == ["Current layer", "inks", "  pen", "sketch", "Background"]
    row.layer.set_source(LayerSource(node_id(sketch), "sketch"))
    sketch.remove()
    docker.generation.controls.refresh_layers()
    assert row.layer.currentText() == "sketch (deleted)"  # still chosen: the job says what is wrong


# ----------------------------------------------------------------------------- jobs through the docker


def test_generate_sends_the_control_layers_own_pixels(plugin, server, app):
    docker, session = plugin
    connect(docker, session, server)
    doc, sketch = scribble_doc(app)
    sketch.setVisible(False)  # a hidden control layer is still read
    doc.refreshProjection()
    before = sketch.pixels.copy()
    row = docker.generation.controls.add_control_row("scribble", LayerSource(node_id(sketch), "sketch"))
    row.set_weight(1.5)
    assert docker.run_operation("generate")
    spin_until(lambda: session.running_jobs == 0, "the job")
    job = server.submitted[-1]
    (control,) = control_inputs(job)
    expected = sketch.pixelData(0, 0, W, H)
    assert control.blob == Blob(expected, "bgra8", W, H).hash  # the layer, not the (white) composite
    assert control.param("mode") == "scribble" and control.param("weight") == 1.5
    assert names(doc) == ["Background", "sketch", "[Generated] txt2img (1234)"]
    np.testing.assert_array_equal(sketch.pixels, before)  # the painter's layer is untouched
    assert not sketch.visible()


def test_the_current_layer_is_the_one_active_when_the_job_starts(plugin, server, app):
    docker, session = plugin
    connect(docker, session, server)
    doc, sketch = scribble_doc(app)
    docker.generation.controls.add_control_row("scribble")  # "Current layer"
    doc.setActiveNode(sketch)
    assert docker.run_operation("generate")
    spin_until(lambda: session.running_jobs == 0, "the job")
    (control,) = control_inputs(server.submitted[-1])
    assert control.blob == Blob(sketch.pixelData(0, 0, W, H), "bgra8", W, H).hash


def test_a_deleted_control_layer_is_said_in_plain_words(plugin, server, app):
    docker, session = plugin
    connect(docker, session, server)
    doc, sketch = scribble_doc(app)
    docker.generation.controls.add_control_row("scribble", LayerSource(node_id(sketch), "sketch"))
    sketch.remove()
    docker.run_operation("generate")
    spin_until(lambda: session.running_jobs == 0, "the job to end")
    assert "The control layer 'sketch' no longer exists" in docker.progress.status.text()
    assert server.submitted == [] and names(doc) == ["Background"]


def test_make_control_image_submits_one_control_from_the_row_or_the_canvas(plugin, app, monkeypatch):
    docker, session = plugin
    doc, sketch = scribble_doc(app)
    docker.generation.set_server_info(hello())
    row = docker.generation.controls.add_control_row("scribble")
    started = []
    monkeypatch.setattr(session, "start_job", lambda *args, **kw: started.append((args, kw)) or True)
    assert docker.make_control_image(row)
    (document, op, settings), kw = started[-1]
    assert callable(kw["on_done"])
    assert document is doc and op == "preprocess" and settings.batch == 1 and settings.references == ()
    assert settings.controls == (ControlSpec(None, "scribble", preprocessor="scribble"),)

    source = LayerSource(node_id(sketch), "sketch")
    row.layer.set_source(source)
    docker.make_control_image(row)
    assert started[-1][0][2].controls == (ControlSpec(source, "scribble", preprocessor="scribble"),)

    # the job's result layer becomes the row's layer, read as it is from then on
    made = doc.createNode("[Generated] scribble", "paintlayer")
    doc.rootNode().addChildNode(made, None)
    started[-1][1]["on_done"](SimpleNamespace(results=[SimpleNamespace(layer=made)]))
    assert row.layer.source() == LayerSource(node_id(made), "[Generated] scribble")
    assert row.layer.currentText() == "[Generated] scribble"
    (spec,) = docker.generation.generation_settings("txt2img").controls
    assert spec.preprocessor == "" and spec.mode == "scribble"
    row.layer.set_source(source)  # another layer: the preprocessor runs again
    assert docker.generation.generation_settings("txt2img").controls[0].preprocessor == "scribble"

    row.select_mode("depth")  # no depth preprocessor on this server: nothing to run
    assert not docker.make_control_image(row) and "no preprocessor for depth" in docker.progress.status.text()


def test_make_control_image_adds_a_layer_the_row_then_reads(plugin, server, app):
    docker, session = plugin
    connect(docker, session, server)
    # the fake server's own hello lists no preprocessors: this one does, with its model
    docker.generation.set_server_info(hello(models=(ModelInfo("fake", "tiny", False, 64),), default_model="fake"))
    doc, sketch = scribble_doc(app)
    row = docker.generation.controls.add_control_row("scribble", LayerSource(node_id(sketch), "sketch"))
    before = sketch.pixels.copy()
    undo_before = len(doc.history)
    row.make_image.click()
    spin_until(lambda: session.running_jobs == 0 and row.ready is not None, "the control image")
    job = server.submitted[-1]
    (control,) = control_inputs(job)
    assert job.op == "preprocess" and control.param("preprocessor") == "scribble"
    assert control.blob == Blob(sketch.pixelData(0, 0, W, H), "bgra8", W, H).hash
    assert names(doc) == ["Background", "sketch", "[Control] scribble"]
    assert doc.history[undo_before:] == ["Add Layer"]  # one undo step takes it away
    made = doc.rootNode().childNodes()[-1]
    assert row.layer.source() == LayerSource(node_id(made), "[Control] scribble")
    np.testing.assert_array_equal(sketch.pixels, before)
    assert docker.run_operation("generate")  # the new layer steers as it is: no preprocessor runs on it again
    spin_until(lambda: session.running_jobs == 0, "the job")
    (control,) = control_inputs(server.submitted[-1])
    assert control.param("preprocessor") == "" and control.blob == Blob(made.pixelData(0, 0, W, H), "bgra8", W, H).hash
