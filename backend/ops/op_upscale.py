"""upscale: enlarge the region with a model upscaler (or Lanczos) in feathered tiles, optionally refined
by a tiled img2img pass (SPEC.md 9.1). Needs ``image``; the result lies at ``upscale_rect`` in the upscaled
canvas. A seed is drawn (and reported) only when the refine pass uses one.
"""

from __future__ import annotations

import numpy as np
from latentbrush.protocol import ErrorCode, JobRequest, ProtocolError

from ..control.models import ControlImage
from ..events import EngineError, JobEvents, JobOutput
from ..inputs import JobInputs, pixels
from . import op_img2img, op_inpaint
from .diffusion import make_refine, pick_seed
from .operation import Operation, Services, check_model


def check_upscaler(services: Services, job: JobRequest) -> ProtocolError | None:
    return services.check_upscaler(job.upscale.upscaler if job.upscale is not None else "")


def check_refine_model(services: Services, job: JobRequest) -> ProtocolError | None:
    """The refine pass is diffusion: its model and sampler must be there (nothing else needs a model)."""
    return check_model(services, job) if job.upscale is not None and job.upscale.refine else None


UNBLUR_FIELD = "job.upscale.unblur"


def check_unblur(services: Services, job: JobRequest) -> ProtocolError | None:
    """``upscale.unblur`` needs a tile ControlNet for the refine model's family (the protocol checked refine)."""
    if job.upscale is None or job.upscale.unblur is None or services.check_model(job) is not None:
        return None
    family = services.control_family(job.model)
    if services.controls.for_mode("tile", family) is None:
        return ProtocolError(ErrorCode.NOT_SUPPORTED, f"no tile ControlNet for {family} models on this server "
                             "(put one in the models folder's controlnet/ folder)", UNBLUR_FIELD)
    return None


def unblur_control(services: Services, job: JobRequest) -> ControlImage | None:
    """The tile ControlNet at ``upscale.unblur`` over every step, or None without unblur."""
    if job.upscale is None or job.upscale.unblur is None:
        return None
    entry = services.controls.for_mode("tile", services.control_family(job.model))
    if entry is None:  # check_unblur refused the job before it was queued
        raise EngineError(ErrorCode.NOT_SUPPORTED, "no tile ControlNet for this model", UNBLUR_FIELD)
    return ControlImage(services.controls.load(entry), np.zeros((0, 0, 3), np.uint8), job.upscale.unblur, 0.0, 1.0)


def run(services: Services, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
    image = pixels(inputs, "image")
    if image is None:
        raise EngineError(ErrorCode.MISSING_FIELD, "upscale needs an image", "job.image")
    if services.upscalers is None:
        raise EngineError(ErrorCode.NOT_SUPPORTED, "the upscale module is not installed", "job.op")
    from ..upscale import run_upscale  # spandrel is optional: imported only when an upscale runs

    seed = refine = None
    if job.upscale is not None and job.upscale.refine:
        seed = pick_seed(job)
        model = services.load(job.model)
        refine = make_refine(model, job, seed, events.cancel, op_img2img.TASK, op_inpaint.TASK,
                             unblur_control(services, job), services.networks)
    return run_upscale(job, image, events, upscalers=services.upscalers, refine=refine, seed=seed)


OPERATION = Operation(
    name="upscale",
    needs=frozenset({"image"}),
    roles=frozenset({"image"}),  # of the roles the protocol allows it, what this server implements
    checks=(check_upscaler, check_refine_model, check_unblur),
    run=run,
    tasks=(op_img2img.TASK, op_inpaint.TASK),
)
