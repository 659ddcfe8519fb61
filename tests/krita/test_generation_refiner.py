"""The Generate tab's Refiner list and hand-over spin (SPEC.md 9.13), under PyQt offscreen with the fake Krita."""

from __future__ import annotations

import pytest
from latentbrush.plugin.hosts.krita.generation_panel import GenerationPanel
from latentbrush.plugin.hosts.krita.settings import DockerSettings
from latentbrush.protocol import Limits, ModelInfo, ServerHello

MODELS = (
    ModelInfo("juggernaut-xl", "sdxl", False, 1024), ModelInfo("sd_xl_refiner_1.0", "sdxl-refiner", False, 1024),
    ModelInfo("dreamshaper-8", "sd15", False, 512), ModelInfo("tiny-sdxl", "tiny-sdxl", False, 256),
    ModelInfo("tiny-sdxl-refiner", "tiny-sdxl-refiner", False, 256),
)


def hello() -> ServerHello:
    return ServerHello(protocol=1, minor=1, server="fake", client_id="c", resumed=False, device="cpu",
                       dtype="float32", models=MODELS, upscalers=(), samplers=("Euler a",),
                       limits=Limits(1 << 26, 1 << 24, 8, 4, 50), default_model="juggernaut-xl")


def items(combo) -> list[str]:
    return [str(combo.itemData(i)) for i in range(combo.count())]


@pytest.fixture
def panel(app, qapp):
    panel = GenerationPanel()
    panel.set_server_info(hello())
    return panel


def pick(combo, name: str) -> None:
    combo.setCurrentIndex(combo.findData(name))


def test_refiners_are_listed_for_their_models_only(panel: GenerationPanel) -> None:
    assert items(panel.model) == ["juggernaut-xl", "dreamshaper-8", "tiny-sdxl"]  # no refiner as a model
    assert items(panel.refiner) == ["", "sd_xl_refiner_1.0"] and panel.refiner.isEnabled()
    assert panel.refiner_row.isVisibleTo(panel) and panel.refiner_label.isVisibleTo(panel)
    assert not panel.refiner_at.isEnabled()  # "None" picked: nothing hands over
    pick(panel.model, "tiny-sdxl")
    assert items(panel.refiner) == ["", "tiny-sdxl-refiner"]
    pick(panel.model, "dreamshaper-8")
    assert items(panel.refiner) == [""] and not panel.refiner.isEnabled()
    # an SD 1.5 model has no refiner: its row is not shown at all (the tab stays short)
    assert not panel.refiner_row.isVisibleTo(panel) and not panel.refiner_label.isVisibleTo(panel)
    pick(panel.model, "juggernaut-xl")
    assert panel.refiner_row.isVisibleTo(panel)


def test_the_picked_refiner_reaches_the_settings(panel: GenerationPanel) -> None:
    assert panel.generation_settings("txt2img").refiner == ""
    pick(panel.refiner, "sd_xl_refiner_1.0")
    panel.refiner_at.setValue(0.7)
    assert panel.refiner_at.isEnabled() and (panel.refiner_at.minimum(), panel.refiner_at.maximum()) == (0.0, 1.0)
    for op in ("txt2img", "img2img", "inpaint"):
        settings = panel.generation_settings(op)
        assert (settings.refiner, settings.refiner_at) == ("sd_xl_refiner_1.0", pytest.approx(0.7))
    assert panel.generation_settings("upscale").refiner == ""  # an upscale takes no refiner
    pick(panel.model, "dreamshaper-8")  # an SD 1.5 model: no refiner goes out ...
    plain = panel.generation_settings("txt2img")
    assert plain.refiner == "" and plain.refiner_at is None
    pick(panel.model, "juggernaut-xl")  # ... and the painter's pick comes back with an SDXL model
    assert panel.generation_settings("txt2img").refiner == "sd_xl_refiner_1.0"


def test_the_refiner_is_remembered(panel: GenerationPanel, app, qapp) -> None:
    pick(panel.refiner, "sd_xl_refiner_1.0")
    panel.refiner_at.setValue(0.65)
    stored = panel.store(DockerSettings())
    assert (stored.refiner, stored.refiner_at) == ("sd_xl_refiner_1.0", pytest.approx(0.65))
    again = GenerationPanel()
    again.load(stored)
    assert items(again.refiner) == [""]  # not connected yet: nothing to list
    assert again.store(DockerSettings()).refiner == "sd_xl_refiner_1.0"  # kept until the server says more
    again.set_server_info(hello())
    assert again.refiner.currentData() == "sd_xl_refiner_1.0" and again.refiner_at.value() == pytest.approx(0.65)
