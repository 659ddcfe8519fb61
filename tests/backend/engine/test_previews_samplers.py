"""Samplers and step previews: every sampler runs, previews come from x0 (not x_t), one per step."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny, DDIMScheduler, EulerDiscreteScheduler
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.ops import op_txt2img
from latentbrush.backend.ops.denoise import DenoiseCall, run_denoise
from latentbrush.backend.ops.previews import LATENT_RGB, LinearDecoder, RegionPreview, x0_from_model_output
from latentbrush.backend.ops.samplers import SAMPLERS, available_samplers, make_scheduler
from latentbrush.protocol import ErrorCode, Rect, Size

# numpy 2 warns about torch tensors inside diffusers' schedulers (np.array(tensor)); not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)


def test_every_listed_sampler_is_available_here() -> None:
    assert available_samplers() == tuple(SAMPLERS)
    assert len(SAMPLERS) == 15  # the 9 of SPEC.md 9.3, 5 few-step ones (ops/presets.py) and Heun (SD3's too)


def test_make_scheduler_keeps_the_model_config_and_is_fresh(tiny_engine: Engine) -> None:
    config = {"beta_start": 0.001, "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "v_prediction"}
    first, second = make_scheduler("DPM++ 2M Karras", config), make_scheduler("DPM++ 2M Karras", config)
    assert first is not second
    assert first.config.beta_end == 0.02 and first.config.prediction_type == "v_prediction"
    assert first.config.use_karras_sigmas and first.config.algorithm_type == "dpmsolver++"
    with pytest.raises(EngineError) as info:
        make_scheduler("Heun++", config)
    assert info.value.code == ErrorCode.UNKNOWN_SAMPLER and info.value.field == "job.sampler"


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_each_sampler_runs_two_steps_with_a_preview_per_step(
    tiny_engine: Engine, make_job, events, sampler: str
) -> None:
    out = tiny_engine.run(make_job(sampler=sampler, resolution=Size(64, 64), region=Rect(0, 0, 64, 64)),
                          {}, events)
    assert out.images[0].shape == (64, 64, 4) and out.info["sampler"] == sampler
    assert [p[0] for p in events.previews] == [1, 2]
    assert [p[0] for p in events.of("progress")] == [1, 2]


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_each_sampler_yields_a_real_x0(tiny_engine: Engine, sampler: str) -> None:
    model, _ = tiny_engine.cache.get(tiny_engine.registry.get("tiny"))
    seen: list[tuple[str, torch.Tensor]] = []
    call = DenoiseCall(op_txt2img.TASK, "a cat", "", sampler, 3, 5.0, 1.0, 1, 64, 64)
    run_denoise(model, call, None, None, threading.Event(), lambda i, n, cap: seen.append((cap.source, cap.latest)))
    assert seen and all(source in ("scheduler", "solver", "computed") for source, _ in seen), seen
    final_x0 = seen[-1][1]
    assert final_x0.shape == (1, 4, 8, 8) and torch.isfinite(final_x0).all()


def test_previews_are_the_linear_image_of_x0_not_x_t(
    tiny_engine: Engine, make_job, events, monkeypatch: pytest.MonkeyPatch
) -> None:
    spied: list[tuple[torch.Tensor, torch.Tensor]] = []
    original_step = EulerDiscreteScheduler.step

    def spy(self, *args, **kwargs):
        out = original_step(self, *args, **kwargs)
        spied.append((out[0].clone(), out[1].clone()))  # (x_t, pred_original_sample)
        return out

    monkeypatch.setattr(EulerDiscreteScheduler, "step", spy)
    tiny_engine.run(make_job(steps=3, sampler="Euler"), {}, events)
    assert len(spied) == len(events.previews) == 3
    # the linear image of the whole 128 px canvas, brought to the region's size as every preview is
    decode = RegionPreview(LinearDecoder("sd15"), Rect(0, 0, 128, 128), Rect(0, 0, 128, 128), 512)
    rgbs = [p[2] for p in events.previews]
    for (_, x0), rgb in zip(spied, rgbs, strict=True):
        np.testing.assert_array_equal(rgb, decode(x0))
    for (x_t, _), rgb in zip(spied[:-1], rgbs[:-1], strict=True):  # Euler's last step ends at sigma 0: x_t == x0
        assert not np.array_equal(rgb, decode(x_t))


def test_computed_x0_matches_what_ddim_reports() -> None:
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    eps = torch.randn(1, 4, 8, 8, generator=generator)
    t = scheduler.timesteps[3]
    expected = scheduler.step(eps, t, sample).pred_original_sample
    torch.testing.assert_close(x0_from_model_output(scheduler, eps, t, sample), expected)


def test_linear_decoder_applies_factors_and_bias() -> None:
    zero = torch.zeros(1, 4, 2, 3)
    assert (LinearDecoder("sd15")(zero) == 128).all()  # (0 + 1) * 127.5 rounds to 128
    bias = np.array(LATENT_RGB["sdxl"][1])
    np.testing.assert_array_equal(LinearDecoder("sdxl")(zero)[0, 0], np.round((bias + 1) * 127.5))
    one = torch.zeros(1, 4, 1, 1)
    one[0, 0] = 1.0
    first_row = np.array(LATENT_RGB["sd15"][0][0])
    np.testing.assert_array_equal(LinearDecoder("sd15")(one)[0, 0], np.round((first_row + 1) * 127.5))


def test_region_preview_cuts_the_region_out_of_the_context() -> None:
    decoded = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    preview = RegionPreview(lambda _x0: decoded, Rect(100, 100, 256, 256), Rect(164, 132, 128, 64), max_side=512)
    out = preview(torch.zeros(1))
    assert out.shape == (64, 128, 3)  # the region's own size, whatever the decoder's resolution
    np.testing.assert_array_equal(out, decoded[32:96, 64:192])
    small = RegionPreview(lambda _x0: decoded, Rect(0, 0, 256, 256), Rect(0, 0, 256, 256), max_side=16)(torch.zeros(1))
    assert small.shape == (16, 16, 3)


@pytest.fixture(scope="module")
def taesd_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder: Path = tmp_path_factory.mktemp("taesd")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(folder)
    return Engine(EngineSettings(device="cpu", taesd_dir=folder))


def test_taesd_previews_are_full_resolution(taesd_engine: Engine, make_job, events) -> None:
    out = taesd_engine.run(make_job(steps=2, resolution=Size(64, 64), region=Rect(0, 0, 64, 64)), {}, events)
    assert out.info["preview"] == "taesd"
    assert [p[2].shape for p in events.previews] == [(64, 64, 3)] * 2
