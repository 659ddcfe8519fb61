"""txt2img: paint the region from noise (SPEC.md 9.1).

Takes an optional ``mask`` that shapes the result's alpha (the picture itself is painted everywhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from latentbrush.protocol import JobRequest

from ..events import JobEvents, JobOutput
from ..inputs import JobInputs
from . import op_inpaint
from .denoise import DenoiseCall
from .diffusion import DIFFUSION_ROLES, run_diffusion
from .operation import DIFFUSION_CHECKS, Operation, PipelineTask, Services

PIPELINES = {
    "sd15": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
}


def pipeline_args(call: DenoiseCall, _image: np.ndarray | None, _mask: np.ndarray | None) -> dict[str, Any]:
    return {"width": call.width, "height": call.height}


CONTROL_PIPELINES = {"sd15": "StableDiffusionControlNetPipeline", "sdxl": "StableDiffusionXLControlNetPipeline"}
ADAPTER_PIPELINES = {"sd15": "StableDiffusionAdapterPipeline", "sdxl": "StableDiffusionXLAdapterPipeline"}
TASK = PipelineTask("txt2img", PIPELINES, pipeline_args, full_steps=True, inpaint_model=op_inpaint.TASK,
                    control_pipelines=CONTROL_PIPELINES, control_image_arg="image",
                    adapter_pipelines=ADAPTER_PIPELINES)


def plan(job: JobRequest, inputs: JobInputs) -> tuple[PipelineTask, float]:
    return TASK, 1.0


def run(services: Services, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
    return run_diffusion(services.load(job.model), job, inputs, events, plan, services.controls, services.references,
                         services.load_refiner(job), services.networks)


OPERATION = Operation(
    name="txt2img",
    needs=frozenset(),
    roles=frozenset({"mask"}) | DIFFUSION_ROLES,  # what this server implements of what the protocol allows
    checks=DIFFUSION_CHECKS,
    run=run,
    tasks=(TASK,),
)
