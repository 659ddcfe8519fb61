"""The docker's Style row and editor: picking a style fills the widgets, a job carries its template, negative
prompt and sampling, live takes its live block, the editor saves into the painter's folder (PyQt offscreen,
fake Krita, the scripted protocol server)."""

from __future__ import annotations

import json

import pytest
from latentbrush.plugin.core.styles import load_styles
from latentbrush.plugin.hosts.krita.extension import find_docker, register
from latentbrush.plugin.hosts.krita.settings import REMOTE, SETTINGS_GROUP
from latentbrush.plugin.hosts.krita.style_dialog import StyleDialog, parse_loras
from latentbrush.protocol import LoraRef
from plugin_fake_server import FakeServer
from qt_wait import spin_until

HARBOUR = {"name": "Harbour", "description": "foggy harbours", "prompt": "foggy harbour, {prompt}, muted",
           "negative_prompt": "sunny", "sampler": "Euler a", "steps": 3, "cfg": 4.5,
           "live": {"steps": 2, "cfg": 2.0}, "loras": [{"name": "detail", "weight": 0.5}]}


@pytest.fixture
def user_styles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "config"))
    folder = tmp_path / "config" / "latentbrush" / "styles"
    folder.mkdir(parents=True)
    (folder / "harbour.json").write_text(json.dumps(HARBOUR), encoding="utf-8")
    return folder


@pytest.fixture
def plugin(app, user_styles):
    extension = register(app)
    extension.setup()
    app.open_window()
    yield extension, find_docker(app.window), extension.session
    extension.session.shutdown()


@pytest.fixture
def server(plugin):
    _, _, session = plugin
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


def pick(picker, name: str) -> None:
    """What a click in the combo does: the index changes and ``activated`` fires."""
    index = picker.combo.findData(name)
    assert index >= 0, name
    picker.combo.setCurrentIndex(index)
    picker.combo.activated.emit(index)


def test_the_style_row_lists_the_built_ins_and_the_painters(plugin):
    _, docker, _ = plugin
    picker = docker.generation.style_picker
    names = [picker.combo.itemData(i) for i in range(picker.combo.count())]
    assert names[0] == "Default" and names[-1] == "Harbour" and "Ink sketch" in names
    assert picker.combo.itemText(len(names) - 1) == "Harbour (yours)" and picker.current_name() == "Default"
    assert not picker.note.isVisibleTo(docker)  # no broken files


def test_a_picked_style_fills_the_widgets_and_reaches_the_job(plugin, server, app):
    _, docker, session = plugin
    connect(docker, session, server)
    gen = docker.generation
    gen.cfg.setValue(9.0)
    pick(gen.style_picker, "Harbour")
    assert (gen.steps.value(), gen.cfg.value(), gen.sampler.currentText()) == (3, 4.5, "Euler a")
    assert docker.live_panel.steps.value() == 2  # the style's live steps
    gen.steps.setValue(4)  # the painter's change after picking wins
    gen.prompt.setPlainText("two boats")
    gen.negative.setPlainText("people")
    app.createDocument(64, 64, "t", "RGBA", "U8", "", 72.0)
    assert docker.run_operation("generate")
    spin_until(lambda: session.running_jobs == 0 and server.submitted, "the job")
    job = server.submitted[-1]
    assert (job.prompt, job.negative_prompt) == ("foggy harbour, two boats, muted", "sunny, people")
    assert (job.steps, job.cfg, job.loras) == (4, 4.5, None)  # the fake server offers no LoRAs
    assert "LoRAs skipped" in gen.style_picker.note.text() and "detail" in gen.style_picker.note.text()
    assert app.settings[(SETTINGS_GROUP, "style")] == "Harbour"

    _op, live = docker._live_settings()
    assert (live.prompt, live.steps, live.cfg, live.batch) == ("foggy harbour, two boats, muted", 2, 2.0, 1)


def test_a_style_whose_models_the_server_lacks_keeps_the_model_and_says_so(plugin, server, user_styles):
    _, docker, session = plugin
    (user_styles / "picky.json").write_text(json.dumps({"name": "Picky", "models": ["sdxl-only"], "steps": 9}))
    docker.generation.style_picker.reload()
    connect(docker, session, server)
    pick(docker.generation.style_picker, "Picky")
    gen = docker.generation
    assert gen.model.currentData() == "fake" and gen.steps.value() == 9
    assert "none of the models of Picky (sdxl-only)" in gen.style_picker.note.text()


def test_the_remembered_style_is_chosen_again(app, user_styles):
    app.settings[(SETTINGS_GROUP, "style")] = "harbour"
    extension = register(app)
    extension.setup()
    app.open_window()
    try:
        assert find_docker(app.window).generation.style_picker.current_name() == "Harbour"
    finally:
        extension.session.shutdown()


def test_the_editor_saves_a_built_in_as_the_painters_copy(plugin, user_styles, monkeypatch):
    _, docker, _ = plugin
    gen = docker.generation
    pick(gen.style_picker, "Ink sketch")

    def edit_and_accept(dialog: StyleDialog) -> int:
        dialog.template.setPlainText("my ink of {prompt}")
        dialog.steps.setValue(17)
        dialog.loras.setText("inky:0.4, grain")
        dialog.accept()
        return int(dialog.result())

    monkeypatch.setattr(StyleDialog, "exec", edit_and_accept)
    saved = gen.style_picker.open_editor()
    assert saved is not None and saved.name == "Ink sketch" and saved.source == "user"
    assert saved.path == str(user_styles / "ink-sketch.json")
    assert gen.style_picker.current() == saved and gen.steps.value() == 17  # chosen: the widgets follow
    styles, problems = load_styles(None, user_styles)
    mine = {s.name: s for s in styles}["Ink sketch"]
    assert problems == () and (mine.prompt, mine.steps) == ("my ink of {prompt}", 17)
    assert mine.loras == (LoraRef("inky", 0.4), LoraRef("grain", 1.0))
    assert mine.negative_prompt.startswith("color")  # the built-in's other fields came along
    assert gen.style_picker.combo.currentText() == "Ink sketch (yours)"


def test_the_editor_refuses_what_would_not_load(plugin, user_styles):
    _, docker, _ = plugin
    dialog = StyleDialog(docker.generation.style_picker.current(), user_styles)
    dialog.name.setText("Broken")
    dialog.loras.setText("grain:9")
    dialog.accept()
    assert dialog.saved is None and "loras" in dialog.error.text() and "-4.0..4.0" in dialog.error.text()
    dialog.loras.setText("")
    dialog.name.setText("  ")
    dialog.accept()
    assert dialog.saved is None and "name" in dialog.error.text()
    assert sorted(p.name for p in user_styles.iterdir()) == ["harbour.json"]  # nothing written


def test_lora_text_parses_names_and_weights():
    assert parse_loras(" a:0.5, b , c:d:1.5,") == (LoraRef("a", 0.5), LoraRef("b", 1.0), LoraRef("c:d", 1.5))
