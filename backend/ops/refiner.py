"""SDXL base + refiner: the job's model denoises the first ``refiner_at`` of the schedule, the refiner the rest
(SPEC.md 9.13).

Both stages are ordinary ``run_denoise`` calls with the job's seed and sampler. The base stage runs with
``denoising_end`` and hands its latents over (``output_type="latent"``); the refiner (its img2img pipeline, or
its inpaint pipeline for masked calls, which keeps the unmasked latents) continues them with
``denoising_start``, on the same schedule. The cut is placed between two of the schedule's timesteps, where
diffusers' own rounding of ``refiner_at`` puts it, so the two stages' steps add up to the job's steps and the
progress runs 1..N across the hand-over. Controls and reference images steer the base stage only: the refiner
is a different UNet. The base always runs at least one step; when no step is left for the refiner
(``refiner_at`` 1.0) it is not called and the result is the base's alone.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from latentbrush.protocol import REFINER_AT, ErrorCode, JobRequest
from PIL import Image

from ..events import EngineError
from .denoise import DenoiseCall, StepHook, run_denoise
from .operation import PipelineTask
from .previews import X0Capture
from .samplers import make_scheduler

if TYPE_CHECKING:
    from ..models.loader import LoadedModel
    from ..models.registry import ModelEntry

log = logging.getLogger(__name__)

REFINED_OPS = frozenset({"txt2img", "img2img", "inpaint"})  # the operations a refiner takes part in
# Components a refiner takes from its base model when they are the same architecture (real SDXL: the same VAE
# and OpenCLIP bigG text encoder), and the config keys that say so: one copy in memory instead of two.
SHARED = {
    "vae": ("block_out_channels", "down_block_types", "up_block_types", "latent_channels", "layers_per_block",
            "norm_num_groups", "in_channels", "out_channels", "scaling_factor"),
    "text_encoder_2": ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                       "projection_dim", "vocab_size", "max_position_embeddings"),
}


def _inpaint_args(call: DenoiseCall, _image: np.ndarray | None, mask: np.ndarray | None) -> dict[str, Any]:
    if mask is None:  # a 9-channel base generating from nothing: everything is masked
        mask = np.full((call.height, call.width), 255, np.uint8)
    return {"mask_image": Image.fromarray(mask), "width": call.width, "height": call.height}


# The refiner's calls (an SDXL refiner is an SDXL pipeline): the latents come in as ``image`` through
# run_denoise's ``extra``, so neither takes pixels; the inpaint one keeps the unmasked latents under its mask.
CONTINUE_IMG2IMG = PipelineTask("img2img", {"sdxl": "StableDiffusionXLImg2ImgPipeline"}, lambda *_: {})
CONTINUE_INPAINT = PipelineTask("inpaint", {"sdxl": "StableDiffusionXLInpaintPipeline"}, _inpaint_args)


@dataclass(frozen=True)
class Handoff:
    """Where one job's denoising passes from its model to the refiner."""

    base_steps: int  # steps the job's model runs (of the steps that run at the job's strength)
    refiner_steps: int  # the rest; 0 = the refiner is not called
    fraction: float  # the denoising_end / denoising_start both stages get (0 < fraction < 1 when refining)


def _step_timesteps(sampler: str, scheduler_config: dict[str, Any], steps: int) -> list[float]:
    """The timestep each of the schedule's steps starts at (second-order samplers list some twice)."""
    scheduler = make_scheduler(sampler, scheduler_config)
    scheduler.set_timesteps(steps)
    starts: list[float] = []
    for t in scheduler.timesteps[:: scheduler.order].tolist():
        if not starts or t != starts[-1]:
            starts.append(float(t))
    return starts


def plan_handoff(sampler: str, scheduler_config: dict[str, Any], steps: int, running: int,
                 refiner_at: float) -> Handoff:
    """The split of the ``running`` last steps of a ``steps``-step schedule at ``refiner_at``."""
    train = int(scheduler_config.get("num_train_timesteps", 1000))
    timesteps = _step_timesteps(sampler, scheduler_config, steps)[-running:]
    cutoff = round(train - refiner_at * train)  # diffusers' rounding of denoising_end / denoising_start
    base = max(1, sum(t >= cutoff for t in timesteps))  # the base runs at least one step
    if base >= len(timesteps):
        return Handoff(len(timesteps), 0, 1.0)
    # the cut just above the refiner's first timestep: both stages then split exactly there
    cut = math.floor(timesteps[base]) + 1
    base = sum(t >= cut for t in timesteps)
    if base == 0:  # timesteps closer than 1 apart: no cut between them
        return Handoff(len(timesteps), 0, 1.0)
    return Handoff(base, len(timesteps) - base, (train - cut) / train)


class StageSteps:
    """Maps one stage's pipeline callbacks onto its share (``offset`` + 1 .. ``offset`` + ``count``) of the
    image's steps, so the job's hook sees one count across both stages."""

    def __init__(self, hook: StepHook | None, offset: int, count: int, per_image: int) -> None:
        self.hook, self.offset, self.count, self.per_image = hook, offset, count, per_image

    def __call__(self, i: int, callbacks: int, capture: X0Capture) -> None:
        if self.hook is None:
            return
        local = min(self.count, ((i + 1) * self.count) // callbacks) if callbacks else self.count
        if self.offset + local >= 1:
            self.hook(self.offset + local - 1, self.per_image, capture)  # step k of N: callback k - 1 of N


@dataclass(frozen=True)
class RefinerStage:
    """A job's refiner and hand-over; ``run`` takes ``run_denoise``'s place for each image of the job."""

    refiner: LoadedModel
    handoff: Handoff
    refiner_at: float

    @property
    def info(self) -> dict[str, Any]:
        """What the job info states (SPEC.md 9.13): the refiner and the step it took over after."""
        return {"model": self.refiner.entry.name, "at": self.refiner_at, "handoff_step": self.handoff.base_steps,
                "steps": self.handoff.refiner_steps}

    def run(self, model: LoadedModel, call: DenoiseCall, image: np.ndarray | None, mask: np.ndarray | None,
            cancel: threading.Event, on_step: StepHook | None = None, adapters: Any = None) -> np.ndarray:
        handoff = self.handoff
        if handoff.refiner_steps == 0:
            return run_denoise(model, call, image, mask, cancel, on_step, adapters)
        per_image = handoff.base_steps + handoff.refiner_steps
        first = StageSteps(on_step, 0, handoff.base_steps, per_image)
        hand = {"denoising_end": handoff.fraction, "output_type": "latent"}
        latents = run_denoise(model, call, image, mask, cancel, first, adapters, extra=hand)
        task = call.task.for_model(model.inpaint_unet)
        masked = task.name == "inpaint"
        second = DenoiseCall(CONTINUE_INPAINT if masked else CONTINUE_IMG2IMG, call.prompt, call.negative_prompt,
                             call.sampler, call.steps, call.cfg, call.strength, call.seed, call.width, call.height)
        take = {"image": torch.from_numpy(latents)[None], "denoising_start": handoff.fraction}
        then = StageSteps(on_step, handoff.base_steps, handoff.refiner_steps, per_image)
        return run_denoise(self.refiner, second, None, mask if masked else None, cancel, then, extra=take)


def refiner_stage(refiner: LoadedModel | None, model: LoadedModel, job: JobRequest, task: PipelineTask,
                  running: int, controls: tuple[Any, ...]) -> RefinerStage | None:
    """The job's refiner stage (None without a refiner), its hand-over planned for ``running`` steps of ``task``."""
    if refiner is None:
        return None
    if model.entry.family != "sdxl" or refiner.entry.family != "sdxl":  # a Hub model whose base showed on load
        message = f"a refiner continues SDXL models only; {model.entry.name!r} is {model.entry.base}"
        raise EngineError(ErrorCode.NOT_SUPPORTED, message, "job.refiner")
    if controls and task.for_model(model.inpaint_unet).name != "txt2img":
        # diffusers' SDXL ControlNet img2img / inpaint pipelines cannot stop at denoising_end
        message = "a refiner with control inputs works for Generate only; remove the controls or the refiner"
        raise EngineError(ErrorCode.NOT_SUPPORTED, message, "job.refiner")
    refiner_at = REFINER_AT if job.refiner_at is None else job.refiner_at
    handoff = plan_handoff(job.sampler, model.scheduler_config, job.steps, running, refiner_at)
    return RefinerStage(refiner, handoff, refiner_at)


def _refiner_config(entry: ModelEntry, name: str, configs_dir: Path) -> dict[str, Any] | None:
    """The config of the refiner's component ``name`` as it would load, read before loading it (None: unknown)."""
    if entry.source == "builtin":
        from ..models.tiny import BUILDERS  # milliseconds: the tiny models are built from configs

        module = getattr(BUILDERS[entry.name](), name, None)
        return _as_dict(module.config) if module is not None else None
    if entry.source == "hub":
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(entry.location, f"{name}/config.json")
        path = Path(found) if isinstance(found, str) else None
    else:
        folder = Path(entry.location) if entry.source == "folder" else configs_dir / "sdxl-refiner"  # a single file
        path = folder / name / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        return None


def shared_modules(base: LoadedModel, refiner: ModelEntry, configs_dir: Path) -> dict[str, Any]:
    """The base model's components the refiner uses instead of loading its own (same architecture only)."""
    shared: dict[str, Any] = {}
    for name, keys in SHARED.items():
        module = base.component(name)
        theirs = _refiner_config(refiner, name, configs_dir)
        if module is None or theirs is None:
            continue
        ours = _as_dict(module.config)
        if all(_same(ours.get(k), theirs.get(k)) for k in keys):
            shared[name] = module
        else:
            log.info("refiner %s keeps its own %s: not the architecture of %s's", refiner.name, name, base.entry.name)
    return shared


def _as_dict(config: Any) -> dict[str, Any]:
    """A diffusers (FrozenDict) or transformers (PretrainedConfig) config as a dict."""
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def _same(a: Any, b: Any) -> bool:
    """Config values equal, lists and tuples alike (JSON has no tuples)."""
    return (list(a) if isinstance(a, tuple | list) else a) == (list(b) if isinstance(b, tuple | list) else b)
