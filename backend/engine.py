"""The seam between the server and the diffusion code (docs/INTERNALS.md "Backend").

``Engine.run`` blocks and runs on the worker thread that owns the GPU; ``describe`` and ``check`` are cheap
and may be called from any thread. Nothing heavy happens in ``__init__`` besides scanning the models folder:
models load on first use and stay cached within a byte budget.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from latentbrush.protocol import ErrorCode, JobRequest, ModelInfo, ProtocolError

from .events import EngineError, JobEvents, JobOutput
from .models.clip_vocab import CONFIGS_DIR
from .models.loader import PipelineCache, Placement, choose_device, choose_dtype, default_budget
from .models.registry import ModelRegistry
from .ops.diffusion import make_refine, pick_seed, run_diffusion
from .ops.prefill import telea_available
from .ops.samplers import SAMPLERS, available_samplers

log = logging.getLogger(__name__)

LANCZOS = "lanczos"
UPSCALER_FIELD = "job.upscale.upscaler"


@dataclass(frozen=True)
class EngineSettings:
    models_dir: Path | None = None
    device: str = "auto"  # "auto", "cuda", "cuda:1", "mps", "cpu"
    dtype: str = "auto"  # "auto", "float16", "bfloat16", "float32"
    cpu_offload: bool = False  # diffusers' enable_model_cpu_offload: big models on small GPUs
    vae_tiling: bool = False  # decode large images in tiles
    cache_budget_bytes: int | None = None  # loaded models kept; None = 60% of GPU memory / half the RAM
    taesd_dir: Path | None = None  # AutoencoderTiny weights for better previews (itself or taesd/, taesdxl/)
    hub_models: tuple[str, ...] = ()  # Hugging Face ids offered besides the models folder
    configs_dir: Path = CONFIGS_DIR  # single-file config skeletons (sd15, sd15-inpaint, sdxl, sdxl-inpaint)


@dataclass(frozen=True)
class EngineInfo:
    device: str
    dtype: str
    models: tuple[ModelInfo, ...]
    upscalers: tuple[str, ...]
    samplers: tuple[str, ...]
    default_model: str


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


class Engine:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.device = choose_device(settings.device)
        if settings.cpu_offload and self.device.type != "cuda":
            log.warning("cpu_offload needs a CUDA device; ignored on %s", self.device.type)
        self.placement = Placement(self.device, settings.dtype, settings.cpu_offload, settings.vae_tiling)
        self.registry = ModelRegistry(settings.models_dir, settings.hub_models)
        budget = settings.cache_budget_bytes
        if budget is None:
            budget = default_budget(self.placement)
        self.cache = PipelineCache(
            self.placement, budget, configs_dir=settings.configs_dir, taesd_dir=settings.taesd_dir
        )
        self.upscalers = self._make_upscalers()
        self._run_lock = threading.Lock()  # one job at a time owns the device

    def _make_upscalers(self) -> Any:
        try:
            from .upscale.registry import UpscalerRegistry
        except ImportError as exc:  # upscaling is optional; Lanczos still works through check()
            log.warning("model upscalers unavailable (%s); only lanczos", exc)
            return None
        return UpscalerRegistry(self.settings.models_dir, self.device, choose_dtype(self.settings.dtype, self.device))

    # ------------------------------------------------------------------ describe / check

    def describe(self) -> EngineInfo:
        return EngineInfo(
            device=_device_label(self.device),
            dtype=str(choose_dtype(self.settings.dtype, self.device)).removeprefix("torch."),
            models=self.registry.infos(),
            upscalers=self.upscalers.names() if self.upscalers is not None else (LANCZOS,),
            samplers=available_samplers(),
            default_model=self.registry.default,
        )

    def _check_upscaler(self, name: str) -> ProtocolError | None:
        if name in ("", LANCZOS):
            return None
        if self.upscalers is None:
            return ProtocolError(ErrorCode.UNKNOWN_UPSCALER, f"no upscaler {name!r} (only lanczos)", UPSCALER_FIELD)
        try:
            self.upscalers.resolve(name)
        except EngineError as exc:
            return ProtocolError(exc.code, exc.message, exc.field)
        return None

    def check(self, job: JobRequest) -> ProtocolError | None:
        """Problems this engine can see before running ``job`` (the codec already checked the fields)."""
        needs_model = job.op != "upscale" or (job.upscale is not None and job.upscale.refine)
        if job.op == "upscale":
            error = self._check_upscaler(job.upscale.upscaler if job.upscale is not None else "")
            if error is not None:
                return error
        if not needs_model:
            return None
        error = self.registry.problem(job.model)
        if error is not None:
            return error
        if job.sampler not in SAMPLERS:
            message = f"unknown sampler {job.sampler!r} (known: {', '.join(SAMPLERS)})"
            return ProtocolError(ErrorCode.UNKNOWN_SAMPLER, message, "job.sampler")
        if job.sampler not in available_samplers():
            return ProtocolError(ErrorCode.NOT_SUPPORTED, f"sampler {job.sampler!r} needs scipy", "job.sampler")
        if job.op in ("img2img", "inpaint") and min(int(job.steps * job.strength), job.steps) < 1:
            message = f"strength {job.strength} x {job.steps} steps leaves no denoising step"
            return ProtocolError(ErrorCode.BAD_FIELD, message, "job.strength")
        if job.prefill == "telea" and job.op != "upscale" and not telea_available():
            return ProtocolError(ErrorCode.NOT_SUPPORTED, "prefill 'telea' needs OpenCV; use 'blur'", "job.prefill")
        return None

    # ------------------------------------------------------------------ run

    def run(
        self, job: JobRequest, image: np.ndarray | None, mask: np.ndarray | None, events: JobEvents
    ) -> JobOutput:
        """Run ``job`` to completion on this thread. Raises JobCancelled or EngineError."""
        error = self.check(job)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        with self._run_lock:
            try:
                if job.op == "upscale":
                    return self._run_upscale(job, image, events)
                model = self._load(job.model)
                return run_diffusion(model, job, image, mask, events)
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError and MPS's plain RuntimeError
                if "out of memory" not in str(exc).lower():
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise EngineError(
                    ErrorCode.OUT_OF_MEMORY,
                    f"out of GPU memory ({str(exc).splitlines()[0][:160]}); try a smaller size or batch, "
                    "or start the server with CPU offload / VAE tiling",
                ) from exc

    def _load(self, name: str) -> Any:
        entry = self.registry.get(name)
        model, refined = self.cache.get(entry)
        if refined != entry:
            self.registry.update(refined)
        return model

    def _run_upscale(self, job: JobRequest, image: np.ndarray | None, events: JobEvents) -> JobOutput:
        if image is None:
            raise EngineError(ErrorCode.MISSING_FIELD, "upscale needs an image", "job.image")
        from .upscale import run_upscale

        seed = pick_seed(job)
        refine = None
        if job.upscale is not None and job.upscale.refine:
            refine = make_refine(self._load(job.model), job, seed, events.cancel)
        if self.upscalers is None:
            raise EngineError(ErrorCode.NOT_SUPPORTED, "the upscale module is not installed", "job.op")
        return run_upscale(
            dataclasses.replace(job, seed=seed), image, events, upscalers=self.upscalers, refine=refine, seed=seed
        )
