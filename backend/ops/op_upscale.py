"""upscale: enlarge the region with a model upscaler (or Lanczos) in feathered tiles, optionally refined
by a tiled img2img pass (SPEC.md 9.1). Needs ``image``; the result lies at ``upscale_rect`` in the upscaled
canvas. A seed is drawn (and reported) only when the refine pass uses one.
"""

from __future__ import annotations

from latentbrush.protocol import ErrorCode, JobRequest, ProtocolError

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
        refine = make_refine(model, job, seed, events.cancel, op_img2img.TASK, op_inpaint.TASK)
    return run_upscale(job, image, events, upscalers=services.upscalers, refine=refine, seed=seed)


OPERATION = Operation(
    name="upscale",
    needs=frozenset({"image"}),
    roles=frozenset({"image"}),  # of the roles the protocol allows it, what this server implements
    checks=(check_upscaler, check_refine_model),
    run=run,
    tasks=(op_img2img.TASK, op_inpaint.TASK),
)
