"""The client side of few-step presets: a model's preset replaces sampler, steps and cfg, and nothing else."""

from __future__ import annotations

from dataclasses import replace

from latentbrush.plugin.core.presets import apply_preset, model_preset
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.protocol import ModelInfo, SamplerPreset

LIGHTNING = SamplerPreset("Euler trailing", 4, 1.0)
MODELS = (
    ModelInfo("dreamshaper", "sd15", False, 512, "file"),
    ModelInfo("sdxl_lightning_4step", "sdxl", False, 1024, "folder", LIGHTNING),
)


def test_apply_preset_sets_sampler_steps_and_cfg_only() -> None:
    chosen = GenerationSettings(prompt="a fox", model="sdxl_lightning_4step", seed=3, strength=0.6, batch=2)
    applied = apply_preset(chosen, LIGHTNING)
    assert (applied.sampler, applied.steps, applied.cfg) == ("Euler trailing", 4, 1.0)
    assert applied == replace(chosen, sampler="Euler trailing", steps=4, cfg=1.0)


def test_no_preset_leaves_the_settings_alone() -> None:
    chosen = GenerationSettings(sampler="DDIM", steps=30, cfg=6.5)
    assert apply_preset(chosen, None) is chosen


def test_model_preset_follows_the_job_model_or_the_default() -> None:
    assert model_preset(MODELS, "sdxl_lightning_4step") == LIGHTNING
    assert model_preset(MODELS, "dreamshaper") is None
    assert model_preset(MODELS, "", default_model="sdxl_lightning_4step") == LIGHTNING
    assert model_preset(MODELS, "gone") is None
