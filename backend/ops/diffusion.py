"""txt2img, img2img and inpaint jobs: context -> processing size -> pipeline -> back to the region, composited.

The result for a masked job is an RGBA crop of ``job.region`` whose alpha is the feathered composite mask,
exactly 0 outside the grown mask, where the RGB is also the original pixels: pasting it as a layer leaves
the canvas bit-identical outside the mask. Unmasked results are opaque.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from latentbrush.protocol import FREE_SIZE_ROLES, ErrorCode, JobRequest, Rect
from latentbrush.protocol.messages import MAX_SEED, Size

from ..control.models import ControlImage, Controls, control_family, inpaint_condition
from ..control.registry import T2I_ADAPTER
from ..events import EngineError, JobEvents, JobOutput, RefineFn
from ..images import PREVIEW_ALPHA_FORMATS
from ..inputs import JobInputs, pixels
from ..lora.networks import Networks, job_networks
from ..lora.registry import model_family
from ..reference.models import ReferenceImage, References
from ..regions.prompts import region_info, region_prompts
from . import masks
from .cancel import raise_if_cancelled
from .denoise import DenoiseCall, denoise_steps, denoise_strength, fit_size, run_denoise
from .operation import PipelineTask
from .prefill import prefill, resolve_mode
from .previews import LinearDecoder, RegionPreview, TaesdDecoder, X0Capture
from .prompt_cache import PROMPTS
from .refiner import refiner_stage
from .steps import CallbackSteps, StepReporter

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

# Conditioning roles run_diffusion implements for every diffusion op (SPEC.md 9.9: control, reference and
# region are specified). A new one: add it here and use it in run_diffusion's call.
DIFFUSION_ROLES: frozenset[str] = frozenset({"control", "reference", "region"})

# An operation's choice for a job: (job, inputs) -> (pipeline task, strength); op_*.py files define one each.
PlanFn = Callable[[JobRequest, JobInputs], "tuple[PipelineTask, float]"]

MIN_SIDE = 64  # smallest processing side; SD is useless below this anyway
MAX_ASPECT_STRETCH = 2  # the longest processing side stays within 2x the model's native side


def snap_to_latent(width: float, height: float) -> tuple[int, int]:
    """Nearest multiples of 8 (the VAE's scale factor), at least MIN_SIDE."""
    return max(MIN_SIDE, round(width / 8) * 8), max(MIN_SIDE, round(height / 8) * 8)


def processing_size(width: int, height: int, native: int, resolution: Size | None) -> tuple[int, int]:
    """The size the pipeline runs at: ``resolution`` if given, else ``native``² pixels in the context's aspect
    ratio; multiples of 8 (the VAE's scale factor)."""
    if resolution is not None:
        w, h = float(resolution.width), float(resolution.height)
    else:
        scale = native / math.sqrt(width * height)
        scale = min(scale, MAX_ASPECT_STRETCH * native / max(width, height))
        w, h = width * scale, height * scale
    return snap_to_latent(w, h)


@dataclass(frozen=True)
class JobPlan:
    task: PipelineTask  # the pipeline call; its name is txt2img, img2img or inpaint
    strength: float
    width: int  # processing size
    height: int
    steps_per_image: int
    prefill: str  # concrete prefill mode


def plan_job(job: JobRequest, task: PipelineTask, strength: float, model: LoadedModel) -> JobPlan:
    """Processing size, steps and prefill for running ``job`` as ``task`` at ``strength`` (raised so that at
    least one step runs, SPEC.md 9.3: ``steps_per_image`` is what actually runs)."""
    context = job.context or job.region
    width, height = processing_size(context.width, context.height, model.entry.info.resolution, job.resolution)
    width, height = fit_size(width, height, model.size_multiple)
    if not task.full_steps:
        strength = denoise_strength(job.steps, strength)
    steps = denoise_steps(job.steps, strength, task)
    mode = "none"
    if task.name == "inpaint":
        mode = resolve_mode(job.prefill, inpaint_model=model.inpaint_unet, strength=strength)
    return JobPlan(task, strength, width, height, steps, mode)


def _crop(array: np.ndarray, context: Rect, region: Rect) -> np.ndarray:
    x, y = region.x - context.x, region.y - context.y
    return array[y : y + region.height, x : x + region.width]


def compose_result(generated: np.ndarray, original: np.ndarray | None, alpha: np.ndarray | None) -> np.ndarray:
    """RGBA layer: generated pixels under ``alpha``; original pixels (and alpha 0) where alpha is 0."""
    if alpha is None:
        return np.dstack([generated, np.full(generated.shape[:2], 255, np.uint8)])
    base = original if original is not None else np.zeros_like(generated)
    rgb = np.where((alpha > 0)[..., None], generated, base)
    return np.dstack([rgb, alpha])


def _on_step(reporter: StepReporter, plan: JobPlan, index: int, preview: RegionPreview | None) -> CallbackSteps:
    def picture(capture: X0Capture) -> np.ndarray | None:
        return preview(capture.latest) if preview is not None and capture.latest is not None else None

    return CallbackSteps(reporter, plan.steps_per_image, index, picture)


def pick_seed(job: JobRequest) -> int:
    return job.seed if job.seed is not None else secrets.randbelow(MAX_SEED + 1)


def _items(inputs: JobInputs, role: str, owner: object | None) -> list[tuple[Any, str, np.ndarray]]:
    """(input, where, pixels) of the job's ``role`` inputs; not_supported when nothing here (``owner``) does them."""
    items = [(item.input, item.field.rsplit(".", 1)[0], item.pixels) for item in inputs.get(role, ())]
    if items and owner is None:
        raise EngineError(ErrorCode.NOT_SUPPORTED, f"this server takes no {role} inputs", items[0][1] + ".role")
    return items


def control_images(controls: Controls | None, model: LoadedModel, inputs: JobInputs, width: int,
                   height: int) -> tuple[ControlImage, ...]:
    """The job's ``control`` inputs as ControlNets and control images at the processing size."""
    items = _items(inputs, "control", controls)
    if not items or controls is None:
        return ()
    prepared = controls.prepare(items, control_family(model.entry.base, model.entry.family))
    return tuple(replace(c, image=masks.resize_rgb(c.image, width, height)) for c in prepared)


def adapter_size(steering: tuple[ControlImage, ...], width: int, height: int) -> tuple[int, int]:
    """The processing size rounded to what the job's T2I-Adapters can divide (unchanged without adapters)."""
    factors = [int(c.model.total_downscale_factor) for c in steering if c.kind == T2I_ADAPTER]
    if not factors:
        return width, height
    factor = max(factors)
    return max(factor, (width + factor // 2) // factor * factor), max(factor, (height + factor // 2) // factor * factor)


def inpaint_steering(controls: Controls | None, model: LoadedModel, steering: tuple[ControlImage, ...],
                     image: np.ndarray | None, mask: np.ndarray) -> tuple[ControlImage, ...]:
    """An inpaint call's controls: inpaint-mode ones get their picture with the hole marked; a model that is
    not an inpainting model gets the models folder's inpaint ControlNet when the job named none itself."""
    out = tuple(replace(c, image=inpaint_condition(c.image, mask)) if c.mode == "inpaint" else c
                for c in steering)
    if controls is None or model.inpaint_unet or image is None or any(c.mode == "inpaint" for c in out):
        return out
    entry = controls.auto_inpaint(control_family(model.entry.base, model.entry.family))
    if entry is None:
        return out
    return (*out, ControlImage(controls.load(entry), inpaint_condition(image, mask), 1.0, 0.0, 1.0, "inpaint"))


def reference_images(references: References | None, model: LoadedModel,
                     inputs: JobInputs) -> tuple[ReferenceImage, ...]:
    """The job's ``reference`` inputs as IP-Adapters with their pictures (any size: the encoder resizes)."""
    items = _items(inputs, "reference", references)
    if not items or references is None:
        return ()
    return references.prepare(items, control_family(model.entry.base, model.entry.family))


def run_diffusion(
    model: LoadedModel, job: JobRequest, inputs: JobInputs, events: JobEvents, choose: PlanFn,
    controls: Controls | None = None, references: References | None = None, refiner: LoadedModel | None = None,
    networks: Networks | None = None,
) -> JobOutput:
    """Run a diffusion job as ``choose`` (the operation's plan) says; the image input (RGBA) and the mask input
    cover ``job.context``. The protocol checked which inputs the operation needs, so absent ones are absent;
    ``controls`` turns ``control`` inputs into ControlNets and control images, ``references`` ``reference``
    inputs into IP-Adapters; ``refiner`` (the job's SDXL refiner) takes over at ``job.refiner_at``;
    ``networks`` applies the job's LoRAs (its list and its prompt's tags, which leave the prompt) and embeddings."""
    started = time.perf_counter()
    job, extras = job_networks(networks, job, model_family(model.entry.base, model.entry.family))
    context = job.context or job.region
    for role, items in inputs.items():
        if role in FREE_SIZE_ROLES:  # a picture of its own (SPEC.md 9.9)
            continue
        for item in items:
            if item.pixels.shape[:2] != (context.height, context.width):
                shape = f"{item.pixels.shape[1]}x{item.pixels.shape[0]}"
                message = f"{shape} does not match the context {context.width}x{context.height}"
                raise EngineError(ErrorCode.SIZE_MISMATCH, message, item.field)
    image, mask = pixels(inputs, "image"), pixels(inputs, "mask")
    task, strength = choose(job, inputs)
    plan = plan_job(job, task, strength, model)
    original = np.ascontiguousarray(image[..., :3]) if image is not None else None
    steering = control_images(controls, model, inputs, plan.width, plan.height)
    size = adapter_size(steering, plan.width, plan.height)
    if size != (plan.width, plan.height):  # T2I-Adapters downscale by 64 (SD 1.5): their size must divide
        plan = replace(plan, width=size[0], height=size[1])
        steering = control_images(controls, model, inputs, *size)
    refs = reference_images(references, model, inputs)
    regions = region_prompts(inputs.get("region", ()), job.prompt, plan.width, plan.height)

    grown = soft = alpha = None
    if mask is not None:
        grown, soft = masks.denoise_mask(mask, job.mask_grow, job.mask_feather)
        if job.mask_outward is None:  # 1.0: alpha reaches as far as the grown mask
            alpha = masks.composite_mask(soft, grown, job.mask_blend)
        else:
            alpha = masks.capped_alpha(mask, job.mask_outward, job.mask_blend)
    seed = pick_seed(job)
    pipe_image = pipe_mask = None
    if original is not None and plan.task.name != "txt2img":
        filled = original
        if grown is not None:
            filled = prefill(original, grown, plan.prefill, color=job.prefill_color, seed=seed)
        pipe_image = masks.resize_rgb(filled, plan.width, plan.height)
    if plan.task.name == "inpaint" and soft is not None:
        pipe_mask = masks.resize_mask(soft, plan.width, plan.height)
        steering = inpaint_steering(controls, model, steering, pipe_image, pipe_mask)

    stage = refiner_stage(refiner, model, job, plan.task, plan.steps_per_image, steering)  # None: no refiner
    preview = None
    if job.preview_format != "none":
        decoder = TaesdDecoder(model.taesd) if model.taesd is not None else LinearDecoder(model.entry.family)
        clip = job.preview_format in PREVIEW_ALPHA_FORMATS  # shown as the result will be: the composite's alpha
        preview = RegionPreview(decoder, context, job.region, job.preview_max_side, original, alpha, clip=clip)
    reporter = StepReporter(events, plan.steps_per_image * job.batch, job.region, previews=preview is not None)
    seeds = tuple((seed + i) % (MAX_SEED + 1) for i in range(job.batch))
    raise_if_cancelled(events.cancel)  # cancelled while the model loaded: never report a start
    events.started(reporter.total, seed)

    region_original = _crop(original, context, job.region) if original is not None else None
    region_alpha = _crop(alpha, context, job.region) if alpha is not None else None
    images = []
    for index, image_seed in enumerate(seeds):
        call = DenoiseCall(plan.task, job.prompt, job.negative_prompt, job.sampler, job.steps, job.cfg,
                           plan.strength, image_seed, plan.width, plan.height, steering, references=refs,
                           regions=regions, networks=extras)
        on_step = _on_step(reporter, plan, index, preview)
        denoise = run_denoise if stage is None else stage.run  # the refiner continues the model's latents
        with PROMPTS.recording() as encoded:
            generated = denoise(model, call, pipe_image, pipe_mask, events.cancel, on_step, references)
        generated = _crop(masks.resize_rgb(generated, context.width, context.height), context, job.region)
        images.append(compose_result(np.ascontiguousarray(generated), region_original, region_alpha))
        events.result(index, images[-1], image_seed)  # sent now: a cancel of a later item keeps this one

    info: dict[str, Any] = {
        "model": model.entry.name, "base": model.entry.base, "op": job.op, "task": plan.task.name,
        "sampler": job.sampler, "steps": job.steps, "cfg": job.cfg, "strength": plan.strength,
        "resolution": [plan.width, plan.height], "prefill": plan.prefill,
        "controls": [{"mode": c.mode, "weight": c.weight, "start": c.start, "end": c.end} for c in steering],
        "references": [{"model": r.adapter.name, "encoder": r.encoder.name, "mode": r.mode, "weight": r.weight,
                        "start": r.start, "end": r.end} for r in refs],
        "regions": region_info(regions),
        "loras": extras.info,
        # the prompts' 75-token chunks (the first encoding: the job model's; a refiner's comes after it)
        "prompt_chunks": encoded[0].chunks if encoded else None,
        "negative_prompt_chunks": encoded[0].negative_chunks if encoded else None,
        "refiner": None if stage is None else stage.info,
        "t5": model.t5,  # SD3's optional T5 encoder ran (Flux's always does; SD 1.5 / SDXL have none)
        "offload": model.offload,  # none / model / sequential CPU offload (models/offload.py)
        "preview": "none" if preview is None else ("taesd" if model.taesd is not None else "linear"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return JobOutput(tuple(images), seeds, info)


def make_refine(
    model: LoadedModel, job: JobRequest, seed: int, cancel: threading.Event, img2img: PipelineTask,
    inpaint: PipelineTask, unblur: ControlImage | None = None, networks: Networks | None = None,
) -> RefineFn:
    """The upscaler's tile refine: ``img2img`` (``inpaint`` where a mask is given) at
    ``job.upscale.refine_strength``, at least one step unless that is 0. With ``unblur`` (a tile ControlNet,
    its weight and span; no image) each tile also steers itself: its upscaled pixels are its control image."""
    requested = job.upscale.refine_strength if job.upscale is not None else 0.3
    strength = denoise_strength(job.steps, requested)
    job, extras = job_networks(networks, job, model_family(model.entry.base, model.entry.family))

    def refine(tile: np.ndarray, mask: np.ndarray | None, index: int) -> np.ndarray:
        height, width = tile.shape[:2]
        task = inpaint if mask is not None else img2img
        if requested <= 0:
            return tile.copy()  # strength 0: nothing to refine
        w, h = snap_to_latent(width, height)
        start = masks.resize_rgb(tile[..., :3], w, h)
        controls = (replace(unblur, image=start),) if unblur is not None else ()
        call = DenoiseCall(task, job.prompt, job.negative_prompt, job.sampler, job.steps, job.cfg, strength,
                           (seed + index) % (MAX_SEED + 1), w, h, controls, networks=extras)
        tile_mask = masks.resize_mask(mask, w, h) if mask is not None else None
        out = run_denoise(model, call, start, tile_mask, cancel)
        out = masks.resize_rgb(out, width, height)
        if mask is None:
            return out
        weight = mask.astype(np.float32)[..., None] / 255.0
        return np.rint(tile[..., :3] + (out.astype(np.float32) - tile[..., :3]) * weight).astype(np.uint8)

    return refine
