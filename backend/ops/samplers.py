"""Sampler names users know (A1111 / ComfyUI) mapped to diffusers schedulers.

Each job gets a fresh scheduler made with ``from_config`` from the model's own scheduler config, so the
model's beta schedule and prediction type carry over, and no state leaks between jobs (pipelines made with
``from_pipe`` share one scheduler object). Flow-matching models (SD3, Flux) get the flow-matching scheduler a
name stands for on them (``SamplerSpec.flow``); a name with none does not fit them (``bad_field``).
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


FLOW_FAMILIES = ("sd3", "flux")  # latent families trained with flow matching: they take only flow schedulers


class FlowSpec(NamedTuple):
    """A sampler's flow-matching scheduler, for the families in ``families``."""

    scheduler: str  # diffusers class name
    options: Mapping[str, Any]
    # Flux's pipelines pass their own sigmas and the resolution's shift (mu) to set_timesteps: a scheduler
    # that takes neither (FlowMatchHeun) serves SD3 only
    families: tuple[str, ...] = FLOW_FAMILIES


class SamplerSpec(NamedTuple):
    scheduler: str  # diffusers class name
    options: Mapping[str, Any]
    needs: str | None = None  # an optional module the scheduler imports
    max_steps: int | None = None  # the most steps its schedule has (LCM and TCD: their distillation's 50)
    flow: FlowSpec | None = None  # what the name runs on a flow-matching model; None = it does not fit one


# "Euler a" is the protocol's default sampler: on flow models it is FlowMatchEuler's stochastic sampling
# (noise re-injected every step, as ancestral Euler does), so a client that never chose a sampler still works
FLOW_EULER = FlowSpec("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": False})
FLOW_EULER_A = FlowSpec("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": True})
FLOW_HEUN = FlowSpec("FlowMatchHeunDiscreteScheduler", {}, families=("sd3",))


SAMPLERS: dict[str, SamplerSpec] = {
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", {}, flow=FLOW_EULER_A),
    "Euler": SamplerSpec("EulerDiscreteScheduler", {}, flow=FLOW_EULER),
    "Heun": SamplerSpec("HeunDiscreteScheduler", {}, flow=FLOW_HEUN),
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


def fits(name: str, family: str) -> bool:
    """Whether sampler ``name`` (a known one) can run on a model of latent ``family``."""
    spec = SAMPLERS[name]
    if family not in FLOW_FAMILIES:
        return True
    return spec.flow is not None and family in spec.flow.families


def samplers_for(family: str) -> tuple[str, ...]:
    """``ModelInfo.samplers``: the available samplers that fit ``family``; () = all (SPEC.md 5, ModelInfo)."""
    if family not in FLOW_FAMILIES:
        return ()
    return tuple(name for name in available_samplers() if fits(name, family))


def misfit(name: str, family: str) -> str:
    """Why sampler ``name`` does not fit ``family`` ("" when it does, or when the name is unknown)."""
    if name not in SAMPLERS or fits(name, family):
        return ""
    return (f"sampler {name!r} does not fit a {family} model (flow matching); use one of "
            f"{', '.join(samplers_for(family))}")


def make_scheduler(name: str, model_config: Mapping[str, Any], family: str = "sd15") -> SchedulerMixin:
    """A new scheduler for sampler ``name``, configured like the model's own scheduler."""
    spec = SAMPLERS.get(name)
    if spec is None:
        raise EngineError(ErrorCode.UNKNOWN_SAMPLER, f"unknown sampler {name!r}", "job.sampler")
    if name not in available_samplers():
        raise EngineError(ErrorCode.NOT_SUPPORTED, f"sampler {name!r} needs the {spec.needs} package", "job.sampler")
    if family in FLOW_FAMILIES:
        if spec.flow is None or not fits(name, family):
            raise EngineError(ErrorCode.BAD_FIELD, misfit(name, family), "job.sampler")
        return getattr(diffusers, spec.flow.scheduler).from_config(model_config, **spec.flow.options)
    cls = getattr(diffusers, spec.scheduler)
    return cls.from_config(model_config, **spec.options)
