"""inpaint: repaint the masked part of the context; the rest is kept (SPEC.md 9.1).

Needs ``image`` and ``mask``. At strength 1 the hole is pre-filled first (``job.prefill``); a 9-channel
inpainting model also sees the mask and the masked image. Every operation's inpaint-style calls run this
pipeline task: txt2img and img2img with a mask, any call on a 9-channel model, the upscaler's masked refine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from latentbrush.protocol import JobRequest
from PIL import Image

from ..events import JobEvents, JobOutput
from ..inputs import JobInputs
from .denoise import DenoiseCall
from .diffusion import DIFFUSION_ROLES, run_diffusion
from .operation import DIFFUSION_CHECKS, Operation, PipelineTask, Services

PIPELINES = {
    "sd15": "StableDiffusionInpaintPipeline",
    "sdxl": "StableDiffusionXLInpaintPipeline",
    "sd3": "StableDiffusion3InpaintPipeline",
    "flux": "FluxInpaintPipeline",
}


def pipeline_args(call: DenoiseCall, image: np.ndarray | None, mask: np.ndarray | None) -> dict[str, Any]:
    if image is None:  # a 9-channel model generating from nothing: everything masked
        image = np.full((call.height, call.width, 3), 127, np.uint8)
    if mask is None:
        mask = np.full((call.height, call.width), 255, np.uint8)
    return {"image": Image.fromarray(image), "mask_image": Image.fromarray(mask), "strength": call.strength,
            "width": call.width, "height": call.height}


CONTROL_PIPELINES = {"sd15": "StableDiffusionControlNetInpaintPipeline",
                     "sdxl": "StableDiffusionXLControlNetInpaintPipeline"}
TASK = PipelineTask("inpaint", PIPELINES, pipeline_args, control_pipelines=CONTROL_PIPELINES)


def plan(job: JobRequest, inputs: JobInputs) -> tuple[PipelineTask, float]:
    return TASK, job.strength


def run(services: Services, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
    return run_diffusion(services.load(job.model), job, inputs, events, plan, services.controls, services.references,
                         services.load_refiner(job), services.networks)


OPERATION = Operation(
    name="inpaint",
    needs=frozenset({"image", "mask"}),
    roles=frozenset({"image", "mask"}) | DIFFUSION_ROLES,  # what this server implements of what the protocol allows
    checks=DIFFUSION_CHECKS,
    run=run,
    tasks=(TASK,),
)
