"""Few-step models and LoRAs (LCM, TCD, Hyper-SD, SDXL-Turbo / SD-Turbo, SDXL-Lightning, DMD2, SD3.5 Large Turbo,
FLUX.1-schnell) and their settings.

Configs as data, in one place: ``PRESETS`` holds the sampler, steps and cfg each model card recommends (the
server hello lists them by name, SPEC.md 9.3), ``NAME_MATCHES`` says which model names get which preset
(first match wins). Cards say ``guidance_scale=0``; here cfg 1 means the same (guidance off, SPEC.md 5).
A card's extra sampler arguments that a preset cannot carry are noted per row (TCD's ``eta``, DMD2's timesteps).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from latentbrush.protocol import SamplerPreset

PRESETS: dict[str, SamplerPreset] = {
    # latent-consistency/lcm-lora-sdv1-5 and lcm-lora-sdxl: LCMScheduler, 4 steps (2-8), guidance off
    "lcm": SamplerPreset("LCM", 4, 1.0),
    # SimianLuo/LCM_Dreamshaper_v7: 4 steps, guidance_scale 8.0; a guidance embedding, so one UNet pass a step
    "lcm-guided": SamplerPreset("LCM", 4, 8.0),
    # h1t/TCD-SDXL-LoRA: TCDScheduler, 4 steps, guidance off (the card's eta 0.3: diffusers' pipelines pass 0)
    "tcd": SamplerPreset("TCD", 4, 1.0),
    # stabilityai/sdxl-turbo and sd-turbo: their own Euler a trailing scheduler, guidance 0, 1 step for txt2img;
    # 2 so that img2img at strength 0.5 still runs one step (the cards' img2img example: steps 2, strength 0.5)
    "turbo": SamplerPreset("Euler a trailing", 2, 1.0),
    # ByteDance/SDXL-Lightning: EulerDiscreteScheduler with timestep_spacing="trailing", guidance 0, the
    # checkpoint's own step count (the 1-step UNet predicts x0 and gets no preset)
    "lightning-2step": SamplerPreset("Euler trailing", 2, 1.0),
    "lightning-4step": SamplerPreset("Euler trailing", 4, 1.0),
    "lightning-8step": SamplerPreset("Euler trailing", 8, 1.0),
    # ByteDance/Hyper-SD: 1-step LoRAs with TCDScheduler (card's eta 1.0), the others DDIMScheduler with
    # timestep_spacing="trailing" at the LoRA's step count, guidance 0; the CFG LoRAs at guidance 5 (5-8)
    "hyper-sd-1step": SamplerPreset("TCD", 1, 1.0),
    "hyper-sd-2step": SamplerPreset("DDIM trailing", 2, 1.0),
    "hyper-sd-4step": SamplerPreset("DDIM trailing", 4, 1.0),
    "hyper-sd-8step": SamplerPreset("DDIM trailing", 8, 1.0),
    "hyper-sd-8step-cfg": SamplerPreset("DDIM trailing", 8, 5.0),
    "hyper-sd-12step-cfg": SamplerPreset("DDIM trailing", 12, 5.0),
    # tianweiy/DMD2: LCMScheduler, 4 steps, guidance 0 (the card pins timesteps 999/749/499/249; LCM's own
    # 4-step schedule is close)
    "dmd2": SamplerPreset("LCM", 4, 1.0),
    # flow-matching distillations (their models' own FlowMatchEuler schedule, "Euler" here):
    # stabilityai/stable-diffusion-3.5-large-turbo: 4 steps, guidance_scale 0.0
    "sd35-turbo": SamplerPreset("Euler", 4, 1.0),
    # black-forest-labs/FLUX.1-schnell: 4 steps, guidance_scale 0.0 (no guidance embedding: cfg is ignored)
    "flux-schnell": SamplerPreset("Euler", 4, 1.0),
}

_HYPER, _STEPS = r"hyper_?sd", r"_?steps?"
# (pattern, preset name) on the lower-cased name with separator runs made "_"; "" = no preset.
# (?<!\d) keeps "12steps" from reading as "2steps"; plain "hyper" alone would catch "hyperrealism".
NAME_MATCHES: tuple[tuple[str, str], ...] = (
    (rf"{_HYPER}.*(?<!\d)1{_STEPS}", "hyper-sd-1step"),
    (rf"{_HYPER}.*(?<!\d)12{_STEPS}", "hyper-sd-12step-cfg"),  # Hyper-SD's 12-step LoRAs are CFG ones
    (rf"{_HYPER}.*(?<!\d)8{_STEPS}_cfg", "hyper-sd-8step-cfg"),
    (rf"{_HYPER}.*(?<!\d)2{_STEPS}", "hyper-sd-2step"),
    (rf"{_HYPER}.*(?<!\d)4{_STEPS}", "hyper-sd-4step"),
    (_HYPER, "hyper-sd-8step"),
    (rf"lightning.*(?<!\d)1{_STEPS}", ""),
    (rf"lightning.*(?<!\d)2{_STEPS}", "lightning-2step"),
    (rf"lightning.*(?<!\d)8{_STEPS}", "lightning-8step"),
    ("lightning", "lightning-4step"),  # Lightning merges mostly ask for 4-6 steps
    (r"(sd_?3|stable_diffusion_3).*turbo", "sd35-turbo"),  # before SD-Turbo's rule: another sampler family
    ("schnell", "flux-schnell"),
    ("turbo", "turbo"),
    ("tcd", "tcd"),
    ("dmd", "dmd2"),
    ("lcm", "lcm"),
)


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower())


def preset_for_name(name: str) -> str | None:
    """The preset name for a model called ``name`` (folder, file path or Hub id); "" = known as none."""
    text = _normalised(name)
    return next((preset for pattern, preset in NAME_MATCHES if re.search(pattern, text)), None)


def detect_preset(
    name: str, unet_config: Mapping[str, Any] | None = None, scheduler_config: Mapping[str, Any] | None = None,
    transformer_config: Mapping[str, Any] | None = None,
) -> str:
    """The preset name for a model ("" = an ordinary model): its files' tells, then its name."""
    if unet_config and unet_config.get("time_cond_proj_dim"):
        return "lcm-guided"  # a guidance embedding is what LCM-distilled full models have
    transformer = transformer_config or {}
    if transformer.get("_class_name") == "FluxTransformer2DModel" and transformer.get("guidance_embeds") is False:
        return "flux-schnell"  # FLUX.1-dev embeds its distilled guidance; schnell (timestep-distilled) has none
    by_name = preset_for_name(name)
    if by_name is not None:
        return by_name
    config = scheduler_config or {}
    if config.get("_class_name") == "EulerAncestralDiscreteScheduler" and config.get("timestep_spacing") == "trailing":
        return "turbo"  # what stabilityai/sdxl-turbo and sd-turbo ship; SD and SDXL ship "leading"
    return ""
