"""What an operation is to the engine: the declarations each ``op_*.py`` file makes, and the shared checks.

An operation names the input roles it implements, the checks the engine makes before running it, and how
it runs. A diffusion operation also declares its ``PipelineTask``: the diffusers pipeline class per model
family and how one ``DenoiseCall`` becomes that pipeline's arguments. ``registry.py`` collects them; the
engine looks a job's operation up there instead of branching on ``job.op``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, ProtocolError

from ..events import JobEvents, JobOutput
from ..inputs import JobInputs
from .prefill import telea_available
from .samplers import SAMPLERS, available_samplers

if TYPE_CHECKING:
    from .denoise import DenoiseCall

# (call, image H x W x 3 uint8 or None, mask H x W uint8 or None), both already at the call's size
# -> keyword arguments of the pipeline besides prompt, steps, cfg, generator and callback
PipelineArgs = Callable[["DenoiseCall", "np.ndarray | None", "np.ndarray | None"], dict[str, Any]]


@dataclass(frozen=True)
class PipelineTask:
    """One kind of diffusers pipeline call: txt2img, img2img or inpaint."""

    name: str
    pipelines: Mapping[str, str]  # model family -> diffusers pipeline class name
    args: PipelineArgs
    full_steps: bool = False  # starts from noise: every step runs whatever the strength
    inpaint_model: PipelineTask | None = None  # the task a 9-channel inpainting model runs this as
    control_pipelines: Mapping[str, str] = field(default_factory=dict)  # family -> the ControlNet pipeline class
    control_image_arg: str = "control_image"  # the ControlNet pipeline's argument for the control image(s)
    adapter_pipelines: Mapping[str, str] = field(default_factory=dict)  # family -> T2I-Adapter pipeline class

    def for_model(self, inpaint_unet: bool) -> PipelineTask:
        return self.inpaint_model if inpaint_unet and self.inpaint_model is not None else self


class Services(Protocol):
    """What an operation may use of the engine."""

    upscalers: Any  # upscale.UpscalerRegistry, or None when the upscale extras are missing

    def load(self, name: str) -> Any: ...  # models.loader.LoadedModel

    def load_refiner(self, job: JobRequest) -> Any: ...  # the job's SDXL refiner (a LoadedModel), or None

    def check_model(self, job: JobRequest) -> ProtocolError | None: ...

    def check_upscaler(self, name: str) -> ProtocolError | None: ...

    def check_controls(self, job: JobRequest) -> ProtocolError | None: ...

    def control_family(self, model: str) -> str: ...  # the ControlNet family model ``model`` takes

    controls: Any  # control.models.Controls

    def check_references(self, job: JobRequest) -> ProtocolError | None: ...

    references: Any  # reference.models.References

    networks: Any  # lora.networks.Networks: LoRAs and textual-inversion embeddings


Check = Callable[[Services, JobRequest], "ProtocolError | None"]
Run = Callable[[Services, JobRequest, JobInputs, JobEvents], JobOutput]


@dataclass(frozen=True)
class Operation:
    name: str  # the JobRequest.op it serves
    roles: frozenset[str]  # input roles this server implements for it; others the protocol allows: not_supported
    needs: frozenset[str]  # roles it cannot run without (the protocol's table says so too; checked again on run)
    checks: tuple[Check, ...]  # in order; the first fault wins (SPEC.md 9.5 step 4)
    run: Run
    tasks: tuple[PipelineTask, ...] = ()  # pipeline kinds it may run (diffusion operations)
    notes: Mapping[str, str] = field(default_factory=dict)  # free-form, for docs and describe()


def check_model(services: Services, job: JobRequest) -> ProtocolError | None:
    """Model known and loadable, sampler known and available."""
    error = services.check_model(job)
    if error is not None:
        return error
    if job.sampler not in SAMPLERS:
        message = f"unknown sampler {job.sampler!r} (known: {', '.join(SAMPLERS)})"
        return ProtocolError(ErrorCode.UNKNOWN_SAMPLER, message, "job.sampler")
    if job.sampler not in available_samplers():
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"sampler {job.sampler!r} needs scipy", "job.sampler")
    most = SAMPLERS[job.sampler].max_steps
    if most is not None and job.steps > most:
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"sampler {job.sampler!r} runs at most {most} steps", "job.steps")
    return None


def check_prefill(_services: Services, job: JobRequest) -> ProtocolError | None:
    if job.prefill == "telea" and not telea_available():
        return ProtocolError(ErrorCode.NOT_SUPPORTED, "prefill 'telea' needs OpenCV; use 'blur'", "job.prefill")
    return None


def check_controls(services: Services, job: JobRequest) -> ProtocolError | None:
    return services.check_controls(job)


def check_references(services: Services, job: JobRequest) -> ProtocolError | None:
    return services.check_references(job)


REGION_FAMILIES = ("sd15", "sdxl", "tiny")  # UNet models: regions work on their cross-attention (regions/)


def check_regions(services: Services, job: JobRequest) -> ProtocolError | None:
    roles = [i.role for i in job.inputs or ()]
    if "region" not in roles:
        return None
    where = f"job.inputs[{roles.index('region')}].role"
    if "reference" in roles:  # both replace the UNet's cross-attention processors
        return ProtocolError(ErrorCode.NOT_SUPPORTED, "regions and reference images in one job are not supported yet",
                             where)
    family = services.control_family(job.model)
    if family not in REGION_FAMILIES:
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"regions work with SD 1.5 and SDXL models, not {family}", where)
    return None


DIFFUSION_CHECKS: tuple[Check, ...] = (check_model, check_prefill, check_controls, check_references, check_regions)
