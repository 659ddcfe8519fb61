"""The inpaint ControlNet: a model that is not an inpainting model sees the hole through it (SPEC.md 9.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_HASH
from engine_helpers import engine_inputs
from latentbrush.backend.control.models import inpaint_condition
from latentbrush.backend.control.tiny import save_tiny_controlnet
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.inputs import InputPixels
from latentbrush.backend.models.tiny import build_tiny_sdxl
from latentbrush.protocol import ErrorCode, JobInput


def test_the_condition_marks_the_hole_and_keeps_the_rest() -> None:
    rgb = np.array([[[255, 0, 51], [10, 20, 30]]], np.uint8)
    mask = np.array([[127, 128]], np.uint8)
    condition = inpaint_condition(rgb, mask)
    np.testing.assert_allclose(condition[0, 0], [1.0, 0.0, 0.2], atol=1e-6)  # kept: the picture in 0..1
    np.testing.assert_array_equal(condition[0, 1], [-1.0, -1.0, -1.0])  # repainted: -1, as it was trained
    assert condition.dtype == np.float32 and rgb[0, 1, 0] == 10  # the picture itself is untouched


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two models folders with the same SDXL-shaped checkpoints, one with an inpaint ControlNet besides."""
    plain, with_net = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("inpaint-net")
    for root in (plain, with_net):
        build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(root / "tiny-xl")
        build_tiny_sdxl(inpaint=True, seed=6).save_pretrained(root / "tiny-xl-inpainting")
    save_tiny_controlnet(with_net / "controlnet" / "controlnet_xl_inpaint_tiny", layout="folder", xl=True, seed=8)
    return plain, with_net


def hole() -> np.ndarray:
    mask = np.zeros((128, 128), np.uint8)
    mask[40:88, 40:88] = 255
    return mask


def inpaint(engine: Engine, make_job, make_events, picture, model: str, inputs: tuple[JobInput, ...] = ()):
    request = make_job(op="inpaint", model=model, strength=1.0, prefill="blur",
                       **({"inputs": (JobInput("image", FAKE_HASH), JobInput("mask", FAKE_HASH), *inputs)}
                          if inputs else {"image": True, "mask": True}))
    pixels = engine_inputs(picture(128, 128), hole())
    if inputs:
        pixels["control"] = tuple(InputPixels(item, picture(128, 128), f"job.inputs[{2 + i}].blob")
                                  for i, item in enumerate(inputs))
    assert engine.check(request) is None
    return engine.run(request, pixels, make_events())


def test_an_inpaint_of_a_plain_model_is_steered_by_the_models_folders_inpaint_controlnet(
        models: tuple[Path, Path], make_job, make_events, picture) -> None:
    plain = Engine(EngineSettings(models_dir=models[0], device="cpu"))
    steered = Engine(EngineSettings(models_dir=models[1], device="cpu"))
    without = inpaint(plain, make_job, make_events, picture, "tiny-xl")
    with_net = inpaint(steered, make_job, make_events, picture, "tiny-xl")
    assert without.info["controls"] == []
    assert with_net.info["controls"] == [{"mode": "inpaint", "weight": 1.0, "start": 0.0, "end": 1.0}]
    inside = (slice(40, 88), slice(40, 88))
    assert np.abs(with_net.images[0][inside].astype(int) - without.images[0][inside].astype(int)).mean() > 1
    outside = hole() == 0
    np.testing.assert_array_equal(with_net.images[0][outside], without.images[0][outside])  # the contract holds
    # an inpainting model sees the hole itself: no inpaint ControlNet
    assert inpaint(steered, make_job, make_events, picture, "tiny-xl-inpainting").info["controls"] == []


def test_a_named_inpaint_control_replaces_the_automatic_one(models: tuple[Path, Path], make_job, make_events,
                                                            picture) -> None:
    steered = Engine(EngineSettings(models_dir=models[1], device="cpu"))
    off = JobInput("control", FAKE_HASH, mode="inpaint", weight=0.0)  # a painter's way to turn it off
    out = inpaint(steered, make_job, make_events, picture, "tiny-xl", (off,))
    assert out.info["controls"] == [{"mode": "inpaint", "weight": 0.0, "start": 0.0, "end": 1.0}]


def test_an_inpaint_control_needs_a_selection(models: tuple[Path, Path], make_job) -> None:
    engine = Engine(EngineSettings(models_dir=models[1], device="cpu"))
    request = make_job(model="tiny-xl", inputs=(JobInput("control", FAKE_HASH, mode="inpaint"),))
    error = engine.check(request)
    assert error is not None and error.code is ErrorCode.BAD_FIELD and error.field == "job.inputs[0].mode"
    assert "selection" in error.message
