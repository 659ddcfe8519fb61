"""img2img (refine): renoise the context to ``job.strength`` and denoise it with the prompt (SPEC.md 9.1).

Needs ``image``; with a ``mask`` only the masked part changes (an inpaint call at the job's strength).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from latentbrush.protocol import JobRequest
from PIL import Image

from ..events import JobEvents, JobOutput
from ..inputs import JobInputs
from . import op_inpaint
from .denoise import DenoiseCall
from .diffusion import DIFFUSION_ROLES, run_diffusion
from .operation import DIFFUSION_CHECKS, Operation, PipelineTask, Services

PIPELINES = {
    "sd15": "StableDiffusionImg2ImgPipeline",
    "sdxl": "StableDiffusionXLImg2ImgPipeline",
    "sd3": "StableDiffusion3Img2ImgPipeline",
    "flux": "FluxImg2ImgPipeline",
}


def pipeline_args(call: DenoiseCall, image: np.ndarray | None, _mask: np.ndarray | None) -> dict[str, Any]:
    if image is None:
        raise ValueError("an img2img call needs an image")  # run_diffusion always passes one
    return {"image": Image.fromarray(image), "strength": call.strength}


CONTROL_PIPELINES = {"sd15": "StableDiffusionControlNetImg2ImgPipeline",
                     "sdxl": "StableDiffusionXLControlNetImg2ImgPipeline"}
TASK = PipelineTask("img2img", PIPELINES, pipeline_args, inpaint_model=op_inpaint.TASK,
                    control_pipelines=CONTROL_PIPELINES)


def plan(job: JobRequest, inputs: JobInputs) -> tuple[PipelineTask, float]:
    return (op_inpaint.TASK if "mask" in inputs else TASK), job.strength


def run(services: Services, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
    return run_diffusion(services.load(job.model), job, inputs, events, plan, services.controls, services.references,
                         services.load_refiner(job), services.networks)


OPERATION = Operation(
    name="img2img",
    needs=frozenset({"image"}),
    roles=frozenset({"image", "mask"}) | DIFFUSION_ROLES,  # what this server implements of what the protocol allows
    checks=DIFFUSION_CHECKS,
    run=run,
    tasks=(TASK,),
)
