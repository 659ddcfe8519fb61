"""One diffusers pipeline call: fresh scheduler and generator, x0 capture, cancel hooks, step callback.

This is the only place that calls a pipeline, so the main ops and the upscaler's tile refine behave the same.
What differs per pipeline kind (the class per model family, the image/mask/strength arguments) is the
``PipelineTask`` an ``op_*.py`` file declares.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .cancel import cancel_hooks, cancel_points, raise_if_cancelled
from .operation import PipelineTask
from .previews import X0Capture
from .samplers import make_scheduler

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


def control_args(call: DenoiseCall, task: PipelineTask) -> dict[str, Any]:
    """The ControlNet pipeline's arguments for ``call.controls``: one control as itself, several as lists."""
    images = [Image.fromarray(c.image) for c in call.controls]
    weights = [float(c.weight) for c in call.controls]
    starts = [float(c.start) for c in call.controls]
    ends = [float(c.end) for c in call.controls]
    if len(call.controls) == 1:
        return {task.control_image_arg: images[0], "controlnet_conditioning_scale": weights[0],
                "control_guidance_start": starts[0], "control_guidance_end": ends[0]}
    return {task.control_image_arg: images, "controlnet_conditioning_scale": weights,
            "control_guidance_start": starts, "control_guidance_end": ends}


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


def run_denoise(
    model: LoadedModel,
    call: DenoiseCall,
    image: np.ndarray | None,
    mask: np.ndarray | None,
    cancel: threading.Event,
    on_step: StepHook | None = None,
) -> np.ndarray:
    """Run the pipeline at ``call.width`` x ``call.height`` (inputs already that size); H x W x 3 uint8 out."""
    raise_if_cancelled(cancel)
    task = call.task.for_model(model.inpaint_unet)
    controlnets = [c.model for c in call.controls]
    pipe = model.pipeline(task, controlnets) if controlnets else model.pipeline(task)
    pipe.scheduler = make_scheduler(call.sampler, model.scheduler_config)
    args: dict[str, Any] = {
        "prompt": call.prompt,
        # None (not ""): SDXL then uses its zero negative embedding, as it was trained to
        "negative_prompt": call.negative_prompt or None,
        "num_inference_steps": call.steps,
        "guidance_scale": call.cfg,
        "generator": torch.Generator(device="cpu").manual_seed(call.seed),  # CPU: same noise on every device
        "output_type": "np",
    }
    args |= task.args(call, image, mask)
    if call.controls:
        args |= control_args(call, task)

    with X0Capture(pipe.scheduler) as capture:

        def step_end(p, i: int, _t, _kwargs: dict) -> dict:
            raise_if_cancelled(cancel)
            if on_step is not None:
                on_step(i, p.num_timesteps, capture)
            return {}

        args["callback_on_step_end"] = step_end
        with cancel_hooks(cancel_points(pipe), cancel), torch.inference_mode():
            result = pipe(**args).images[0]
    return np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)
