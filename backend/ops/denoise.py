"""One diffusers pipeline call: fresh scheduler and generator, x0 capture, cancel hooks, step callback.

This is the only place that calls a pipeline, so the main ops and the upscaler's tile refine behave the same.
What differs per pipeline kind (the class per model family, the image/mask/strength arguments) is the
``PipelineTask`` an ``op_*.py`` file declares.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from ..control.registry import T2I_ADAPTER
from ..lora.networks import NO_NETWORKS, JobNetworks, apply_networks
from ..regions.attention import RegionConditioning, regional_attention
from ..regions.masks import VAE_SCALE
from ..regions.prompts import region_texts
from .cancel import cancel_hooks, cancel_points, raise_if_cancelled
from .operation import PipelineTask
from .previews import X0Capture
from .prompt_cache import PROMPTS, PromptKey, guidance_on
from .samplers import FLOW_FAMILIES, make_scheduler

if TYPE_CHECKING:
    from ..models.loader import LoadedModel

# (callback index, callbacks in this run, x0 capture) after every scheduler step
StepHook = Callable[[int, int, X0Capture], None]


@dataclass(frozen=True)
class DenoiseCall:
    """Everything one pipeline call needs besides the pixels."""

    task: PipelineTask
    prompt: str
    negative_prompt: str
    sampler: str
    steps: int
    cfg: float
    strength: float
    seed: int
    width: int
    height: int
    controls: tuple[Any, ...] = ()  # control.models.ControlImage, their images already width x height
    references: tuple[Any, ...] = ()  # reference.models.ReferenceImage, their pictures at their own size
    regions: tuple[Any, ...] = ()  # regions.prompts.RegionPrompt, their masks at width x height
    networks: JobNetworks = NO_NETWORKS  # LoRAs at their weights and the embeddings to load (lora/networks.py)


def control_args(call: DenoiseCall, task: PipelineTask) -> dict[str, Any]:
    """The ControlNet pipeline's arguments for ``call.controls``: one control as itself, several as lists."""
    images = [_control_picture(c.image) for c in call.controls]
    if all(c.kind == T2I_ADAPTER for c in call.controls):  # admission made them share their end, start at 0
        scales = [float(c.weight) for c in call.controls]
        args = {"image": images[0] if len(images) == 1 else images,
                "adapter_conditioning_scale": scales[0] if len(scales) == 1 else scales}
        if call.controls[0].end < 1:  # SDXL's adapter pipeline only; admission refused it for SD 1.5
            args["adapter_conditioning_factor"] = float(call.controls[0].end)
        return args
    weights = [float(c.weight) for c in call.controls]
    starts = [float(c.start) for c in call.controls]
    ends = [float(c.end) for c in call.controls]
    if len(call.controls) == 1:
        return {task.control_image_arg: images[0], "controlnet_conditioning_scale": weights[0],
                "control_guidance_start": starts[0], "control_guidance_end": ends[0]}
    return {task.control_image_arg: images, "controlnet_conditioning_scale": weights,
            "control_guidance_start": starts, "control_guidance_end": ends}


def _control_picture(image: np.ndarray) -> Any:
    """uint8 RGB as PIL; a float condition (an inpaint one, -1 in the hole) as the NCHW tensor diffusers passes
    through unnormalised, as its own inpaint ControlNet example does."""
    if image.dtype == np.uint8:
        return Image.fromarray(image)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32))


def takes_negative(pipe: Any) -> bool:
    """Whether the pipeline uses a negative prompt at ordinary guidance (Flux's only under ``true_cfg_scale``)."""
    taken = inspect.signature(pipe.__call__).parameters
    return "negative_prompt" in taken and "true_cfg_scale" not in taken


def denoise_steps(steps: int, strength: float, task: PipelineTask) -> int:
    """Steps the pipeline will run: diffusers' own ``get_timesteps`` arithmetic, so the count matches exactly."""
    if task.full_steps:
        return steps
    return min(int(steps * strength), steps)


def denoise_strength(steps: int, strength: float) -> float:
    """``strength``, raised just enough that at least one of ``steps`` runs (SPEC.md 9.3): the one step
    is then the last, least noisy one of the schedule."""
    if int(steps * strength) >= 1:
        return strength
    low = 1.0 / steps
    while int(steps * low) < 1:  # 49 * (1 / 49) is 0.999...
        low = math.nextafter(low, 2.0)
    return low


def flow_strength(steps: int, strength: float) -> float:
    """The strength at which SD3's and Flux's pipelines run ``denoise_steps`` steps: their ``get_timesteps``
    starts at ``int(steps - steps * strength)`` (no ``int()`` of ``steps * strength`` first, as SD's does), so
    e.g. 4 steps at 0.6 would run 3 there and 2 here. Half a step below the count makes both agree exactly."""
    runs = min(int(steps * strength), steps)
    return (runs - 0.5) / steps


def fit_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """The nearest sides divisible by ``multiple`` (16 for SD3's 2x2 patches and Flux's 2x2 packing)."""
    return (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))


def _fit_call(call: DenoiseCall, image: np.ndarray | None, mask: np.ndarray | None,
              multiple: int) -> tuple[DenoiseCall, np.ndarray | None, np.ndarray | None]:
    """``call`` and its inputs at a size the model divides (unchanged when it already does, as planned jobs are;
    an upscaler tile may not be). The result comes back at that size: callers resize it to theirs."""
    width, height = fit_size(call.width, call.height, multiple)
    if (width, height) == (call.width, call.height):
        return call, image, mask
    from . import masks  # masks imports nothing of ours; only this rare path needs it

    image = masks.resize_rgb(image, width, height) if image is not None else None
    mask = masks.resize_mask(mask, width, height) if mask is not None else None
    return replace(call, width=width, height=height), image, mask


def run_denoise(
    model: LoadedModel,
    call: DenoiseCall,
    image: np.ndarray | None,
    mask: np.ndarray | None,
    cancel: threading.Event,
    on_step: StepHook | None = None,
    adapters: Any = None,
    extra: dict[str, Any] | None = None,
) -> np.ndarray:
    """Run the pipeline at ``call.width`` x ``call.height`` (inputs already that size); H x W x 3 uint8 out.
    ``adapters`` (a ``reference.models.References``) puts ``call.references`` on the pipeline for this call.
    ``extra``: pipeline arguments over the task's (a refiner hand-over's, ops/refiner.py); with
    ``output_type="latent"`` among them the result is the latents (C x h x w float32) instead of pixels."""
    raise_if_cancelled(cancel)
    # a control at weight 0 steers nothing (it is how a painter turns the automatic inpaint ControlNet off):
    # the call runs without it, so the picture is exactly the unsteered one (zeroed residuals still round a
    # pixel differently now and then) and no ControlNet or adapter is run for nothing
    call = replace(call, controls=tuple(c for c in call.controls if c.weight != 0))
    task = call.task.for_model(model.inpaint_unet)
    # into the modules every pipeline of the model shares, before the prompt is encoded (LoRAs may change it)
    applied = apply_networks(model.pipeline(task), call.networks, model.entry.name)
    controlnets = [c.model for c in call.controls]
    pipe = model.pipeline(task, controlnets) if controlnets else model.pipeline(task)
    pipe.scheduler = make_scheduler(call.sampler, model.scheduler_config, model.entry.family)
    call, image, mask = _fit_call(call, image, mask, model.size_multiple)
    # None (not ""): SDXL then uses its zero negative embedding, as it was trained to. Flux's guidance is
    # distilled into the model (guidance_scale); a negative prompt would need true CFG at twice the cost: none
    negative = call.negative_prompt or None
    guided = guidance_on(pipe, call.cfg)
    if not takes_negative(pipe):
        negative, guided = None, False  # no second (unconditional) pass: nothing is encoded for it
    key = PromptKey(model.entry.name, call.prompt, negative, guided, applied.text_loras, applied.embeddings)
    args: dict[str, Any] = {
        **PROMPTS.prompt_args(pipe, key),  # embeddings from the cache when the prompt repeats
        "num_inference_steps": call.steps,
        "guidance_scale": call.cfg,
        "generator": torch.Generator(device="cpu").manual_seed(call.seed),  # CPU: same noise on every device
        "output_type": "np",
    }
    args |= task.args(call, image, mask)
    if model.entry.family in FLOW_FAMILIES and "strength" in args:
        args["strength"] = flow_strength(call.steps, call.strength)
    if "negative_prompt" not in inspect.signature(pipe.__call__).parameters:
        args.pop("negative_prompt", None)  # FluxFillPipeline has no such argument
    args |= extra or {}
    if call.controls:
        args |= control_args(call, task)
    attach = nullcontext(None)
    if call.references:
        if adapters is None:
            raise ValueError("a call with references needs the References that load them")
        args["ip_adapter_image"] = [Image.fromarray(r.image) for r in call.references]  # one adapter each
        attach = adapters.attached(pipe, call.references, denoise_steps(call.steps, call.strength, task))

    regions = None
    if call.regions:  # each region's prompt steers the cross-attention under its mask
        texts = region_texts(pipe, model.entry.name, call.regions, key.guidance)
        regions = RegionConditioning(texts, call.height // VAE_SCALE, call.width // VAE_SCALE, key.guidance)

    with (X0Capture(pipe.scheduler) as capture, attach as schedule,
          regional_attention(getattr(pipe, "unet", None), regions)):

        def step_end(p, i: int, _t, _kwargs: dict) -> dict:
            raise_if_cancelled(cancel)
            if schedule is not None:  # the references' scales for the next step (their start / end)
                schedule.apply(p, i + 1)
            if on_step is not None:
                # the older pipelines (T2I-Adapter) do not count their steps: the scheduler's schedule does
                on_step(i, getattr(p, "_num_timesteps", None) or len(p.scheduler.timesteps), capture)
            return {}

        if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:
            args["callback_on_step_end"] = step_end
        else:  # diffusers' T2I-Adapter pipelines take only the legacy per-step callback
            args["callback"] = lambda i, t, _latents: step_end(pipe, i, t, {})
            args["callback_steps"] = 1
        with cancel_hooks(cancel_points(pipe), cancel), torch.inference_mode():
            result = pipe(**args).images[0]
    if args["output_type"] == "latent":
        return result.float().cpu().numpy()
    return np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)
