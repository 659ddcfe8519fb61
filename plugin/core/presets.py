"""Few-step presets (protocol 1.1 ``SamplerPreset``, SPEC.md 9.3) applied to what the painter chose.

A model with ``ModelInfo.preset`` (LCM, Turbo, Lightning, ...) needs its own sampler, steps and cfg; live
painting uses them by default. The server hello's ``presets`` name the same kind of settings for LoRAs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from latentbrush.protocol import ModelInfo, SamplerPreset

from .requests import GenerationSettings


def apply_preset(settings: GenerationSettings, preset: SamplerPreset | None) -> GenerationSettings:
    """``settings`` with the preset's sampler, steps and cfg; unchanged when there is no preset."""
    if preset is None:
        return settings
    return replace(settings, sampler=preset.sampler, steps=preset.steps, cfg=preset.cfg)


def model_preset(models: Sequence[ModelInfo], model: str, default_model: str = "") -> SamplerPreset | None:
    """The preset of the model a job naming ``model`` runs on ("" = the server's ``default_model``)."""
    name = model or default_model
    return next((info.preset for info in models if info.name == name), None)
