"""One ``JobRequest`` per operation, built from a ``RegionPlan`` and the user's settings.

Every request is validated with the protocol's own walk (``from_dict`` + ``check_job``) before
it leaves the plugin, so a bad setting fails here with the field name instead of on the server.
Blobs go in ``inputs`` (protocol 1.1, SPEC.md 9.9); the client turns a job into the 1.0 form
(``latentbrush.protocol.as_v1_0``) when its server is 1.0.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from latentbrush.protocol import (
    OPERATIONS,
    ErrorCode,
    JobInput,
    JobRequest,
    LoraRef,
    ModelInfo,
    ProtocolError,
    ServerHello,
    UpscaleParams,
    check_job,
    from_dict,
    to_dict,
)

from .planning import RegionPlan


class RequestError(ValueError):
    """A setting or plan that would make an invalid request; ``error.field`` names the culprit."""

    def __init__(self, error: ProtocolError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class ControlSpec:
    """One control layer as the painter set it up: where its picture comes from and how it steers.

    ``source`` is the host's handle (a Krita or GIMP layer, a canvas-sized image for the CLI); the host
    reads it over the job's context (``Host.read_control``). Names follow the protocol's ``JobInput``.
    """

    source: Any
    mode: str = ""  # scribble, lineart, softedge, canny, depth, normal, pose, tile, inpaint
    model: str = ""  # "" = the server's ControlNet for ``mode``
    preprocessor: str = ""  # "" = the picture is the control image as it is
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference image (IP-Adapter) as the painter set it up: a layer whose picture the result should
    resemble (``reference``), take the style of (``style``) or the layout of (``composition``).

    The host reads ``source`` over the whole canvas (``Host.read_control``), not just the job's context: a
    reference is a picture of its own, wherever it sits. Names follow the protocol's ``JobInput``.
    """

    source: Any
    mode: str = "reference"  # reference, style, composition
    model: str = ""  # "" = the server's IP-Adapter for the job's model family
    weight: float = 1.0


@dataclass(frozen=True)
class RegionSpec:
    """One region of the picture with a prompt of its own (regional prompting, protocol 1.1 ``region`` inputs).

    The host reads ``source`` (a layer, or a canvas-sized image for the CLI) over the job's context; its opacity
    is where ``prompt`` paints, in full where opaque. The job's prompt is the background's and is added after
    each region's by the server (SPEC.md 9.14)."""

    source: Any
    prompt: str
    negative_prompt: str = ""  # "" = the job's negative prompt there
    weight: float = 1.0


def default_preprocessor(mode: str, offered: tuple[str, ...]) -> str:
    """A mode's own preprocessor when the server offers one (a painter's scribble becomes white on black,
    a photo becomes Canny edges), else none: the picture is then the control image as is."""
    return mode if mode and mode in offered else ""


@dataclass(frozen=True)
class GenerationSettings:
    """What the painter chose. Field names follow ``JobRequest`` where one exists."""

    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""  # "" = the server's default model
    sampler: str = "Euler a"
    steps: int = 20
    cfg: float = 7.0
    seed: int | None = None  # None = the server picks (and reports it)
    strength: float = 1.0
    blend_outward: int = 0  # px the result may blend past the selection; 0 = never beyond it
    batch: int = 1
    prefill: str = "auto"
    upscaler: str = ""  # "" = best installed, "lanczos" = no model
    scale: float = 2.0
    tile: int = 512
    refine: bool = False  # tiled img2img pass after upscaling
    refine_strength: float = 0.3
    unblur: float = 0.0  # weight of the server's tile ControlNet in the refine pass; 0 = off
    controls: tuple[ControlSpec, ...] = ()  # ControlNet control layers (protocol 1.1 ``control`` inputs)
    references: tuple[ReferenceSpec, ...] = ()  # IP-Adapter reference images (``reference`` inputs)
    regions: tuple[RegionSpec, ...] = ()  # per-region prompts (``region`` inputs)
    loras: tuple[LoraRef, ...] = ()  # 1.1 ``JobRequest.loras``; () = none (sent as no field at all)
    refiner: str = ""  # 1.1 ``JobRequest.refiner``: an SDXL refiner of the hello; "" = none (no field)
    refiner_at: float | None = None  # where the refiner takes over (0..1); None = the protocol's 0.8


@dataclass(frozen=True)
class TransferFormats:
    """Pixel formats for one connection: raw on loopback (no decoder needed in the host)."""

    preview: str = "rgba8"  # "none" turns previews off
    result: str = "rgba8"
    preview_max_side: int = 512


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:16]


def choose_operation(has_mask: bool, strength: float) -> str:
    """The anchor's rule: a selection at full strength is inpaint, below that it is a refine."""
    if strength < 1.0:
        return "img2img"
    return "inpaint" if has_mask else "txt2img"


def _common(plan: RegionPlan, settings: GenerationSettings, formats: TransferFormats, job_id: str) -> dict[str, Any]:
    return {
        "id": job_id,
        "canvas": plan.canvas,
        "prompt": settings.prompt,
        "negative_prompt": settings.negative_prompt,
        "model": settings.model,
        "sampler": settings.sampler,
        "steps": settings.steps,
        "cfg": settings.cfg,
        "seed": settings.seed,
        "batch": settings.batch,
        "loras": settings.loras or None,  # None: no field, so a 1.0 server still accepts the job
        "preview_format": formats.preview,
        "preview_max_side": formats.preview_max_side,
        "result_format": formats.result,
    }


def _refiner(settings: GenerationSettings) -> dict[str, Any]:
    """The refiner fields of a txt2img / img2img / inpaint job; none without a refiner, so a 1.0 server still
    accepts the job (an upscale takes no refiner: SPEC.md 9.13)."""
    if not settings.refiner:
        return {}
    return {"refiner": settings.refiner, "refiner_at": settings.refiner_at}


def is_refiner(model: ModelInfo) -> bool:
    """A model of the hello that only continues another's denoising (base ``sdxl-refiner``, SPEC.md 9.13)."""
    return model.base.endswith("-refiner")


def refiners_for(hello: ServerHello | None, model: str) -> tuple[str, ...]:
    """The hello's refiners that fit ``model`` ("" = the default): those of base ``<model's base>-refiner``."""
    if hello is None:
        return ()
    base = next((m.base for m in hello.models if m.name == (model or hello.default_model)), "")
    return tuple(m.name for m in hello.models if base and m.base == f"{base}-refiner")


def validated(job: JobRequest, hello: ServerHello | None = None) -> JobRequest:
    """``job`` if the protocol (and, given its hello, this server's limits and formats) accepts it;
    otherwise RequestError naming the field."""
    parsed = from_dict(JobRequest, to_dict(job))
    if isinstance(parsed, ProtocolError):
        raise RequestError(parsed)
    if hello is None:
        err = check_job(parsed)
    else:
        err = check_job(parsed, limits=hello.limits, preview_formats=hello.preview_formats,
                        result_formats=hello.result_formats)
    if err:
        raise RequestError(err)
    return job


def build_txt2img(
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    mask: str | None = None,
    formats: TransferFormats = TransferFormats(),
    controls: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
) -> JobRequest:
    """Generate from noise into the plan's region; a mask (of the context) shapes the result's alpha."""
    return validated(
        JobRequest(
            op="txt2img",
            **_boxes(plan),
            strength=1.0,
            **_mask_fields(plan, mask),
            **_inputs(None, mask if plan.has_mask else None, _controls(settings, controls),
                    _references(settings, references)),
            **_common(plan, settings, formats, job_id),
            **_refiner(settings),
        )
    )


def build_img2img(
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    image: str,
    mask: str | None = None,
    formats: TransferFormats = TransferFormats(),
    controls: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
) -> JobRequest:
    """Refine the context at ``settings.strength``; with a mask only the masked part changes."""
    return validated(
        JobRequest(
            op="img2img",
            **_boxes(plan),
            strength=settings.strength,
            **_mask_fields(plan, mask),
            **_inputs(image, mask if plan.has_mask else None, _controls(settings, controls),
                    _references(settings, references)),
            **_common(plan, settings, formats, job_id),
            **_refiner(settings),
        )
    )


def build_inpaint(
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    image: str,
    mask: str,
    formats: TransferFormats = TransferFormats(),
    controls: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
) -> JobRequest:
    """Repaint the masked part of the region; the context around it guides the model."""
    if not plan.has_mask:
        raise RequestError(_missing_mask())
    return validated(
        JobRequest(
            op="inpaint",
            **_boxes(plan),
            strength=settings.strength,
            **_mask_fields(plan, mask),
            **_inputs(image, mask, _controls(settings, controls),
                    _references(settings, references)),
            prefill=settings.prefill,  # type: ignore[arg-type]  # a bad value is named by validated()
            **_common(plan, settings, formats, job_id),
            **_refiner(settings),
        )
    )


def _boxes(plan: RegionPlan) -> dict[str, Any]:
    return {"region": plan.region, "context": plan.context}  # plan boxes are the wire Rect


def _mask_fields(plan: RegionPlan, mask: str | None) -> dict[str, Any]:
    """The mask's edge treatment, when the plan has a selection; none of it otherwise."""
    if mask is None or not plan.has_mask:
        return {}
    return {"mask_grow": plan.grow, "mask_feather": plan.feather, "mask_blend": plan.blend,
            "mask_outward": plan.outward}  # the cap that makes the selection the contract (SPEC 9.4)


def _inputs(
    image: str | None, mask: str | None, controls: tuple[tuple[ControlSpec, str], ...] = (),
    references: tuple[tuple[ReferenceSpec, str], ...] = (),
) -> dict[str, Any]:
    """The blobs as named inputs (SPEC.md 9.9); no ``inputs`` at all when there are none."""
    items = [JobInput(role, blob) for role, blob in (("image", image), ("mask", mask)) if blob is not None]
    items += [JobInput("control", blob, model=c.model, mode=c.mode, preprocessor=c.preprocessor, weight=c.weight,
                       start=c.start, end=c.end) for c, blob in controls]
    items += [JobInput("reference", blob, model=r.model, mode=r.mode, weight=r.weight) for r, blob in references]
    return {"inputs": tuple(items)} if items else {}


def _controls(settings: GenerationSettings, blobs: tuple[str, ...]) -> tuple[tuple[ControlSpec, str], ...]:
    if len(blobs) != len(settings.controls):
        message = f"{len(settings.controls)} controls but {len(blobs)} control images"
        raise RequestError(ProtocolError(ErrorCode.MISSING_FIELD, message, "inputs"))
    return tuple(zip(settings.controls, blobs, strict=True))


def _references(settings: GenerationSettings, blobs: tuple[str, ...]) -> tuple[tuple[ReferenceSpec, str], ...]:
    if len(blobs) != len(settings.references):
        message = f"{len(settings.references)} references but {len(blobs)} reference images"
        raise RequestError(ProtocolError(ErrorCode.MISSING_FIELD, message, "inputs"))
    return tuple(zip(settings.references, blobs, strict=True))


def _missing_mask() -> ProtocolError:
    return ProtocolError(ErrorCode.MISSING_FIELD, "inpaint needs a selection (mask)", "mask")


def build_upscale(
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    image: str,
    formats: TransferFormats = TransferFormats(),
) -> JobRequest:
    """Upscale the plan's context (normally the whole canvas) by ``settings.scale``."""
    params = UpscaleParams(
        upscaler=settings.upscaler,
        scale=settings.scale,
        tile=settings.tile,
        refine=settings.refine,
        refine_strength=settings.refine_strength,
        unblur=settings.unblur if settings.refine and settings.unblur > 0 else None,  # absent for a 1.0 server
    )
    return validated(
        JobRequest(
            op="upscale",
            region=plan.context,
            context=plan.context,
            **_inputs(image, None),
            strength=settings.refine_strength if settings.refine else 1.0,
            upscale=params,
            **{**_common(plan, settings, formats, job_id), "batch": 1},  # an upscale makes one image
        )
    )


def build_preprocess(
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    formats: TransferFormats = TransferFormats(),
    controls: tuple[str, ...] = (),
) -> JobRequest:
    """The control image of ``settings.controls[0]``'s picture over the plan's region (its preprocessor's
    output), to become a layer the painter paints over; it needs exactly one control with a preprocessor."""
    return validated(
        JobRequest(
            op="preprocess",
            **_boxes(plan),
            **_inputs(None, None, _controls(settings, controls)),
            **{**_common(plan, settings, formats, job_id), "batch": 1, "preview_format": "none"},
        )
    )


def build_request(
    op: str,
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    image: str | None = None,
    mask: str | None = None,
    formats: TransferFormats = TransferFormats(),
    controls: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    stream: str | None = None,
    regions: tuple[str, ...] = (),
) -> JobRequest:
    """Dispatch to the builder for ``op``; missing blobs are reported with the field name. ``controls``: the
    blob of each of ``settings.controls``, in order; ``references`` likewise of ``settings.references``.
    ``stream``: the live stream the job belongs to (1.1, SPEC.md 9.11): it supersedes the stream's earlier jobs."""
    request = _build_for_op(op, plan, settings, job_id=job_id, image=image, mask=mask, formats=formats,
                            controls=controls, references=references)
    request = _with_regions(request, settings, regions)
    if stream is None:
        return request
    return validated(replace(request, stream=stream))  # the stream id's pattern, before it leaves


def takes_regions(op: str) -> bool:
    return op in OPERATIONS and OPERATIONS[op].allows("region")


def _with_regions(request: JobRequest, settings: GenerationSettings, blobs: tuple[str, ...]) -> JobRequest:
    """``request`` with a ``region`` input per ``settings.regions`` (``blobs``: each one's mask, in order); an
    operation that takes no regions (upscale) goes without them."""
    if not takes_regions(request.op):
        return request
    if len(blobs) != len(settings.regions):
        message = f"{len(settings.regions)} regions but {len(blobs)} region masks"
        raise RequestError(ProtocolError(ErrorCode.MISSING_FIELD, message, "inputs"))
    if not blobs:
        return request
    items = tuple(JobInput("region", blob, prompt=r.prompt, negative_prompt=r.negative_prompt, weight=r.weight)
                  for r, blob in zip(settings.regions, blobs, strict=True))
    return validated(replace(request, inputs=(*(request.inputs or ()), *items)))  # the op may not take regions


def _build_for_op(
    op: str,
    plan: RegionPlan,
    settings: GenerationSettings,
    *,
    job_id: str,
    image: str | None,
    mask: str | None,
    formats: TransferFormats,
    controls: tuple[str, ...],
    references: tuple[str, ...],
) -> JobRequest:
    if op not in OPERATIONS:
        raise RequestError(ProtocolError(ErrorCode.BAD_FIELD, f"must be one of {', '.join(OPERATIONS)}", "op"))
    if op == "txt2img":
        return build_txt2img(plan, settings, job_id=job_id, mask=mask, formats=formats, controls=controls,
                             references=references)
    if op == "preprocess":
        return build_preprocess(plan, settings, job_id=job_id, formats=formats, controls=controls)
    if image is None:
        raise RequestError(ProtocolError(ErrorCode.MISSING_FIELD, f"{op} needs an image", "image"))
    if op == "img2img":
        return build_img2img(plan, settings, job_id=job_id, image=image, mask=mask, formats=formats,
                             controls=controls, references=references)
    if op == "upscale":
        return build_upscale(plan, settings, job_id=job_id, image=image, formats=formats)
    if mask is None:
        raise RequestError(_missing_mask())
    return build_inpaint(plan, settings, job_id=job_id, image=image, mask=mask, formats=formats, controls=controls,
                         references=references)
