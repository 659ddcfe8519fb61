"""Sampler names users know (A1111 / ComfyUI) mapped to diffusers schedulers.

Each job gets a fresh scheduler made with ``from_config`` from the model's own scheduler config, so the
model's beta schedule and prediction type carry over, and no state leaks between jobs (pipelines made with
``from_pipe`` share one scheduler object).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, NamedTuple

import diffusers
from diffusers import SchedulerMixin
from latentbrush.protocol import ErrorCode

from ..events import EngineError

LCM_STEPS = 50  # diffusers' original_inference_steps: LCM and TCD refuse more steps than this


class SamplerSpec(NamedTuple):
    scheduler: str  # diffusers class name
    options: Mapping[str, Any]
    needs: str | None = None  # an optional module the scheduler imports
    max_steps: int | None = None  # the most steps its schedule has (LCM and TCD: their distillation's 50)


SAMPLERS: dict[str, SamplerSpec] = {
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", {}),
    "Euler": SamplerSpec("EulerDiscreteScheduler", {}),
    "LMS": SamplerSpec("LMSDiscreteScheduler", {}, needs="scipy"),
    "PLMS": SamplerSpec("PNDMScheduler", {"skip_prk_steps": True}),
    "DDIM": SamplerSpec("DDIMScheduler", {}),
    "DPM2": SamplerSpec("KDPM2DiscreteScheduler", {}),
    "DPM2 a": SamplerSpec("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M Karras": SamplerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}
    ),
    "UniPC": SamplerSpec("UniPCMultistepScheduler", {}),
    # few-step samplers (ops/presets.py says which models take them); "trailing" starts the schedule at the
    # last training timestep, which the distilled models were trained from (SDXL-Lightning, SDXL-Turbo, Hyper-SD)
    "LCM": SamplerSpec("LCMScheduler", {}, max_steps=LCM_STEPS),
    "TCD": SamplerSpec("TCDScheduler", {}, max_steps=LCM_STEPS),
    "Euler trailing": SamplerSpec("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "Euler a trailing": SamplerSpec("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "DDIM trailing": SamplerSpec("DDIMScheduler", {"timestep_spacing": "trailing"}),
}


def available_samplers() -> tuple[str, ...]:
    """Sampler names this installation can run (LMS needs scipy)."""
    return tuple(name for name, spec in SAMPLERS.items() if spec.needs is None or importlib.util.find_spec(spec.needs))


def make_scheduler(name: str, model_config: Mapping[str, Any]) -> SchedulerMixin:
    """A new scheduler for sampler ``name``, configured like the model's own scheduler."""
    spec = SAMPLERS.get(name)
    if spec is None:
        raise EngineError(ErrorCode.UNKNOWN_SAMPLER, f"unknown sampler {name!r}", "job.sampler")
    if name not in available_samplers():
        raise EngineError(ErrorCode.NOT_SUPPORTED, f"sampler {name!r} needs the {spec.needs} package", "job.sampler")
    cls = getattr(diffusers, spec.scheduler)
    return cls.from_config(model_config, **spec.options)
