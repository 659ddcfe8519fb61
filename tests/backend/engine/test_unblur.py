"""Unblur: the upscale refine pass steered by a tile ControlNet whose control image is each upscaled tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models.tiny import build_tiny_sdxl
from latentbrush.protocol import ErrorCode, Rect, Size, UpscaleParams


def upscale(make_job, unblur: float | None, model: str = ""):
    params = UpscaleParams(upscaler="lanczos", scale=2.0, refine=True, refine_strength=0.6, refine_tile=256,
                           unblur=unblur)
    return make_job(op="upscale", image=True, canvas=Size(64, 64), region=Rect(0, 0, 64, 64), steps=4, seed=7,
                    model=model, upscale=params)


def test_unblur_steers_every_refine_tile_and_weight_0_changes_nothing(tiny_engine: Engine, make_job, make_events,
                                                                      picture) -> None:
    inputs = engine_inputs(picture(64, 64), None)
    plain = tiny_engine.run(upscale(make_job, None), inputs, make_events())
    steered = tiny_engine.run(upscale(make_job, 1.0), inputs, make_events())
    zero = tiny_engine.run(upscale(make_job, 0.0), inputs, make_events())
    assert steered.images[0].shape == plain.images[0].shape == (128, 128, 4)
    assert np.abs(steered.images[0].astype(int) - plain.images[0].astype(int)).mean() > 1
    np.testing.assert_array_equal(zero.images[0], plain.images[0])  # the tile ControlNet at 0 adds nothing
    assert steered.info["unblur"] == 1.0 and plain.info["unblur"] is None


@pytest.fixture(scope="module")
def xl_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(root / "tiny-xl")
    return root


def test_unblur_without_a_tile_controlnet_for_the_family_is_refused_before_work(xl_models: Path, make_job) -> None:
    engine = Engine(EngineSettings(models_dir=xl_models, device="cpu"))
    error = engine.check(upscale(make_job, 0.8, model="tiny-xl"))
    assert error is not None and error.code is ErrorCode.NOT_SUPPORTED and error.field == "job.upscale.unblur"
    assert "no tile ControlNet for sdxl models" in error.message
    assert engine.check(upscale(make_job, None, model="tiny-xl")) is None
    assert engine.check(upscale(make_job, 0.8, model="tiny")) is None  # the built-in tiny one has a tiny tile net
