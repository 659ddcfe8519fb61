"""Few-step samplers and presets: each new sampler runs 1-4 steps repeatably, and few-step models are found by
their names and files with the preset their card recommends (backend/ops/presets.py)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models.ldm_layout import write_sd15_checkpoint
from latentbrush.backend.models.registry import BUILTINS
from latentbrush.backend.models.tiny import build_tiny_sd15, build_tiny_sdxl
from latentbrush.backend.ops import op_txt2img
from latentbrush.backend.ops.denoise import DenoiseCall, run_denoise
from latentbrush.backend.ops.presets import PRESETS, detect_preset, preset_for_name
from latentbrush.backend.ops.samplers import SAMPLERS, make_scheduler
from latentbrush.protocol import ErrorCode, Rect, SamplerPreset, Size

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)

FAST = ("LCM", "TCD", "Euler trailing", "Euler a trailing", "DDIM trailing")
SMALL = {"resolution": Size(64, 64), "region": Rect(0, 0, 64, 64), "canvas": Size(64, 64)}


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("sampler", FAST)
def test_fast_sampler_is_repeatable_per_seed(tiny_engine: Engine, make_job, make_events, sampler: str,
                                             steps: int) -> None:
    def image(seed: int) -> np.ndarray:
        events = make_events()
        out = tiny_engine.run(make_job(sampler=sampler, steps=steps, cfg=1.0, seed=seed, **SMALL), {}, events)
        assert [p[0] for p in events.of("progress")] == list(range(1, steps + 1))
        return out.images[0]

    first = image(7)
    assert np.array_equal(first, image(7))
    assert not np.array_equal(first, image(8))


def test_fast_img2img_runs_its_share_of_the_steps(tiny_engine: Engine, make_job, events, picture) -> None:
    job = make_job(op="img2img", image=True, sampler="Euler trailing", steps=4, cfg=1.0, strength=0.5, **SMALL)
    out = tiny_engine.run(job, engine_inputs(picture(64, 64)), events)
    assert out.images[0].shape == (64, 64, 4)
    assert [p[0] for p in events.of("progress")] == [1, 2]


def test_tcd_previews_show_x0_not_its_noised_sample(tiny_engine: Engine) -> None:
    model = tiny_engine.load("tiny")
    seen: list[str] = []
    call = DenoiseCall(op_txt2img.TASK, "a cat", "", "TCD", 3, 1.0, 1.0, 1, 64, 64)
    run_denoise(model, call, None, None, threading.Event(), lambda i, n, capture: seen.append(capture.source))
    assert seen == ["computed"] * 3  # TCD's own second output is x at the next timestep, still noisy


def test_trailing_samplers_start_at_the_last_training_timestep(tiny_engine: Engine) -> None:
    config = tiny_engine.load("tiny").scheduler_config  # SD's own: "leading" spacing, steps_offset 1
    for name in ("Euler trailing", "Euler a trailing", "DDIM trailing"):
        scheduler = make_scheduler(name, config)
        scheduler.set_timesteps(4)
        assert int(scheduler.timesteps[0]) == 999, name
    plain = make_scheduler("DDIM", config)
    plain.set_timesteps(4)
    assert int(plain.timesteps[0]) < 999


def test_every_preset_names_a_listed_sampler(tiny_engine: Engine) -> None:
    assert all(p.sampler in SAMPLERS and 1 <= p.steps <= 12 and 1.0 <= p.cfg <= 8.0 for p in PRESETS.values())
    info = tiny_engine.describe()
    assert dict(info.presets) == PRESETS and set(FAST) <= set(info.samplers)
    assert all(m.preset is None for m in info.models)  # the built-in tiny ones are ordinary models


@pytest.mark.parametrize(("name", "preset"), [
    ("sdxl_lightning_4step_unet", "lightning-4step"),
    ("SDXL-Lightning/sdxl_lightning_2step", "lightning-2step"),
    ("sdxl_lightning_8step_lora", "lightning-8step"),
    ("juggernautXL_lightning", "lightning-4step"),
    ("sdxl_lightning_1step_unet_x0", ""),  # predicts x0: no preset rather than a wrong one
    ("Hyper-SDXL-8steps-CFG-lora", "hyper-sd-8step-cfg"),
    ("Hyper-SD15-12steps-CFG-lora", "hyper-sd-12step-cfg"),
    ("Hyper-SD15-1step-lora", "hyper-sd-1step"),
    ("Hyper-SDXL-2steps-lora", "hyper-sd-2step"),
    ("Hyper-SDXL-4steps-lora", "hyper-sd-4step"),
    ("Hyper-SDXL-8steps-lora", "hyper-sd-8step"),
    ("stabilityai/sdxl-turbo", "turbo"),
    ("sd_turbo", "turbo"),
    ("TCD-SDXL-LoRA", "tcd"),
    ("dmd2_sdxl_4step_unet_fp16", "dmd2"),
    ("lcm-lora-sdv1-5", "lcm"),
    ("LCM_Dreamshaper_v7", "lcm"),
])
def test_preset_from_the_model_name(name: str, preset: str) -> None:
    assert preset_for_name(name) == preset
    assert preset == "" or preset in PRESETS


@pytest.mark.parametrize("name", ["dreamshaper_8", "hyperRealism_v30", "sd_xl_base_1.0", "runwayml/sd-v1-5"])
def test_ordinary_names_get_no_preset(name: str) -> None:
    assert preset_for_name(name) is None and detect_preset(name) == ""


def test_preset_from_the_model_files() -> None:
    assert detect_preset("my-model", {"time_cond_proj_dim": 256}) == "lcm-guided"
    turbo_scheduler = {"_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing"}
    assert detect_preset("my-model", {}, turbo_scheduler) == "turbo"
    assert detect_preset("sdxl_lightning_4step", {}, turbo_scheduler) == "lightning-4step"  # the name is surer
    sd_scheduler = {"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading"}
    assert detect_preset("my-model", {"time_cond_proj_dim": None}, sd_scheduler) == ""


@pytest.fixture(scope="module")
def fast_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder of tiny checkpoints named like few-step models, one ordinary one, and one whose scheduler
    config is SDXL-Turbo's."""
    root = tmp_path_factory.mktemp("fast-models")
    sd15 = build_tiny_sd15(inpaint=False, seed=2)
    sd15.save_pretrained(root / "lcm-dreamshaper")
    for name in ("sd_turbo", "plain-model", "quiet-turbo"):
        shutil.copytree(root / "lcm-dreamshaper", root / name)
    config_path = root / "quiet-turbo" / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update(_class_name="EulerAncestralDiscreteScheduler", timestep_spacing="trailing")
    config_path.write_text(json.dumps(config))
    build_tiny_sdxl(inpaint=False, seed=3).save_pretrained(root / "sdxl_lightning_4step")
    (root / "hyper").mkdir()
    write_sd15_checkpoint(sd15, root / "hyper" / "Hyper-SD15-8steps-CFG-merged.safetensors")
    return root


@pytest.fixture(scope="module")
def fast_engine(fast_models: Path) -> Engine:
    return Engine(EngineSettings(models_dir=fast_models, device="cpu"))


def test_models_folder_states_each_models_preset(fast_engine: Engine) -> None:
    presets = {m.name: m.preset for m in fast_engine.describe().models}
    assert presets == {
        "hyper/Hyper-SD15-8steps-CFG-merged": SamplerPreset("DDIM trailing", 8, 5.0),
        "lcm-dreamshaper": SamplerPreset("LCM", 4, 1.0),
        "plain-model": None,
        "quiet-turbo": PRESETS["turbo"],
        "sd_turbo": PRESETS["turbo"],
        "sdxl_lightning_4step": SamplerPreset("Euler trailing", 4, 1.0),
        **{name: None for name in BUILTINS},  # the built-in test models have no preset
    }


@pytest.mark.parametrize("model", ["sdxl_lightning_4step", "lcm-dreamshaper", "sd_turbo"])
def test_a_few_step_model_runs_with_its_preset(fast_engine: Engine, make_job, events, model: str) -> None:
    preset = fast_engine.registry.get(model).info.preset
    assert preset is not None
    job = make_job(model=model, sampler=preset.sampler, steps=preset.steps, cfg=preset.cfg, **SMALL)
    out = fast_engine.run(job, {}, events)
    assert out.images[0].shape == (64, 64, 4) and out.info["sampler"] == preset.sampler
    assert len(events.of("progress")) == preset.steps


@pytest.mark.parametrize("sampler", ["LCM", "TCD"])
def test_more_steps_than_a_distilled_schedule_has_is_refused_before_work(tiny_engine: Engine, make_job,
                                                                        sampler: str) -> None:
    error = tiny_engine.check(make_job(sampler=sampler, steps=51))
    assert error is not None and error.code is ErrorCode.NOT_SUPPORTED and error.field == "job.steps"
    assert "at most 50 steps" in error.message
    assert tiny_engine.check(make_job(sampler=sampler, steps=50)) is None
