"""One diffusers pipeline call: fresh scheduler and generator, x0 capture, cancel hooks, step callback.

This is the only place that calls a pipeline, so the main ops and the upscaler's tile refine behave the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..models.loader import LoadedModel
from .cancel import cancel_hooks, cancel_points, raise_if_cancelled
from .previews import X0Capture
from .samplers import make_scheduler

# (callback index, callbacks in this run, x0 capture) after every scheduler step
StepHook = Callable[[int, int, X0Capture], None]


@dataclass(frozen=True)
class DenoiseCall:
    """Everything one pipeline call needs besides the pixels. ``task``: txt2img, img2img or inpaint."""

    task: str
    prompt: str
    negative_prompt: str
    sampler: str
    steps: int
    cfg: float
    strength: float
    seed: int
    width: int
    height: int


def denoise_steps(steps: int, strength: float, task: str) -> int:
    """Steps the pipeline will run: diffusers' own ``get_timesteps`` arithmetic, so the count matches exactly."""
    if task == "txt2img":
        return steps
    return min(int(steps * strength), steps)


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
    pipe = model.pipeline(call.task)
    task = "inpaint" if model.inpaint_unet else call.task
    pipe.scheduler = make_scheduler(call.sampler, model.scheduler_config)
    args: dict = {
        "prompt": call.prompt,
        # None (not ""): SDXL then uses its zero negative embedding, as it was trained to
        "negative_prompt": call.negative_prompt or None,
        "num_inference_steps": call.steps,
        "guidance_scale": call.cfg,
        "generator": torch.Generator(device="cpu").manual_seed(call.seed),  # CPU: same noise on every device
        "output_type": "np",
    }
    if task == "inpaint":
        if image is None:  # a 9-channel model generating from nothing: everything masked
            image = np.full((call.height, call.width, 3), 127, np.uint8)
        if mask is None:
            mask = np.full((call.height, call.width), 255, np.uint8)
        strength = 1.0 if call.task == "txt2img" else call.strength
        args |= {"image": Image.fromarray(image), "mask_image": Image.fromarray(mask), "strength": strength,
                 "width": call.width, "height": call.height}
    elif task == "img2img":
        args |= {"image": Image.fromarray(image), "strength": call.strength}
    else:
        args |= {"width": call.width, "height": call.height}

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
