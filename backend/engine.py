"""The seam between the server and the diffusion code (docs/INTERNALS.md "Backend").

``Engine.run`` blocks and runs on the worker thread that owns the GPU; ``describe`` and ``check`` are cheap
and may be called from any thread. What each operation checks and runs is declared in ``ops/op_*.py`` and
looked up in ``ops/registry.py``; the engine itself only supplies models, upscalers and the device lock.
Nothing heavy happens in ``__init__`` besides scanning the models folder:
models load on first use and stay cached within a byte budget.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from latentbrush.protocol import (
    ControlInfo,
    ErrorCode,
    JobRequest,
    LoraInfo,
    ModelInfo,
    ProtocolError,
    ReferenceInfo,
    SamplerPreset,
    input_refs,
)

from .control.models import Controls, control_family
from .events import EngineError, JobEvents, JobOutput, is_out_of_memory
from .inputs import JobInputs
from .lora.networks import Networks
from .lora.registry import model_family
from .models.clip_vocab import CONFIGS_DIR
from .models.folders import ModelFolders
from .models.loader import PipelineCache
from .models.placement import Placement, choose_device, choose_dtype, default_budget
from .models.registry import ModelRegistry
from .models.reuse import gather
from .ops.operation import Operation
from .ops.presets import PRESETS
from .ops.refiner import REFINED_OPS, shared_modules
from .ops.registry import OPERATIONS
from .ops.samplers import available_samplers
from .ops.samplers import misfit as sampler_misfit
from .reference.models import MODES, References

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
    t5: bool = True  # False: SD3 models load without their optional T5 encoder (less memory; job info "t5")
    cache_budget_bytes: int | None = None  # loaded models kept; None = 60% of GPU memory / half the RAM
    taesd_dir: Path | None = None  # TAESD weights looked at before the models folder's (models/taesd.py)
    hub_models: tuple[str, ...] = ()  # Hugging Face ids offered besides the models folder
    reuse: tuple[Path, ...] = ()  # other apps' model folders used in place after ours (models/reuse.py)
    configs_dir: Path = CONFIGS_DIR  # single-file config skeletons (sd15, sd15-inpaint, sdxl, sdxl-inpaint)


@dataclass(frozen=True)
class EngineInfo:
    device: str
    dtype: str
    models: tuple[ModelInfo, ...]
    upscalers: tuple[str, ...]
    samplers: tuple[str, ...]
    default_model: str
    controls: tuple[ControlInfo, ...] = ()
    preprocessors: tuple[str, ...] = ()
    references: tuple[ReferenceInfo, ...] = ()
    reference_modes: tuple[str, ...] = ()
    presets: Mapping[str, SamplerPreset] = field(default_factory=dict)  # few-step presets by name (ops/presets.py)
    loras: tuple[LoraInfo, ...] = ()
    embeddings: tuple[str, ...] = ()


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


class Engine:
    def __init__(self, settings: EngineSettings, operations: Mapping[str, Operation] | None = None) -> None:
        self.settings = settings
        self.operations = dict(OPERATIONS if operations is None else operations)  # job.op -> what runs it
        self.device = choose_device(settings.device)
        if settings.cpu_offload and self.device.type != "cuda":
            log.warning("cpu_offload needs a CUDA device; ignored on %s", self.device.type)
        self.placement = Placement(self.device, settings.dtype, settings.cpu_offload, settings.vae_tiling,
                                   t5=settings.t5)
        self.folders: ModelFolders = gather(settings.models_dir, settings.reuse)  # where each kind of file is
        self.registry = ModelRegistry(self.folders, settings.hub_models)
        budget = settings.cache_budget_bytes
        if budget is None:
            budget = default_budget(self.placement)
        self.cache = PipelineCache(
            self.placement, budget, configs_dir=settings.configs_dir, taesd_dir=settings.taesd_dir,
            taesd_folders=self.folders.taesd,
        )
        self.upscalers = self._make_upscalers()
        self.controls = Controls(self.folders, self.device, choose_dtype(settings.dtype, self.device),
                                 settings.configs_dir)
        self.references = References(self.folders, self.device, choose_dtype(settings.dtype, self.device))
        self.networks = Networks(self.folders)  # LoRAs and textual-inversion embeddings
        self._run_lock = threading.Lock()  # one job at a time owns the device

    def _make_upscalers(self) -> Any:
        try:
            from .upscale.registry import UpscalerRegistry
        except ImportError as exc:  # upscaling is optional; Lanczos still works through check()
            log.warning("model upscalers unavailable (%s); only lanczos", exc)
            return None
        return UpscalerRegistry(self.folders.upscale, self.device, choose_dtype(self.settings.dtype, self.device))

    # ------------------------------------------------------------------ describe / check

    def describe(self) -> EngineInfo:
        samplers = available_samplers()
        return EngineInfo(
            device=_device_label(self.device),
            dtype=str(choose_dtype(self.settings.dtype, self.device)).removeprefix("torch."),
            models=self.registry.infos(),
            upscalers=self.upscalers.names() if self.upscalers is not None else (LANCZOS,),
            samplers=samplers,
            default_model=self.registry.default,
            controls=tuple(ControlInfo(e.name, e.mode, e.family, e.kind) for e in self.controls.entries()),
            preprocessors=tuple(self.controls.preprocessors),
            references=tuple(ReferenceInfo(e.name, e.family) for e in self.references.entries()),
            reference_modes=MODES,
            presets={name: preset for name, preset in PRESETS.items() if preset.sampler in samplers},
            loras=self.networks.lora_infos(),
            embeddings=self.networks.embedding_names(),
        )

    def check_upscaler(self, name: str) -> ProtocolError | None:
        if name in ("", LANCZOS):
            return None
        if self.upscalers is None:
            return ProtocolError(ErrorCode.UNKNOWN_UPSCALER, f"no upscaler {name!r} (only lanczos)", UPSCALER_FIELD)
        try:
            self.upscalers.resolve(name)
        except EngineError as exc:
            return ProtocolError(exc.code, exc.message, exc.field)
        return None

    def check_model(self, job: JobRequest) -> ProtocolError | None:
        """The model is usable and the sampler fits its family (flow-matching models take flow schedulers)."""
        error = self.registry.problem(job.model)
        if error is not None:
            return error
        misfit = sampler_misfit(job.sampler, self.registry.get(job.model).family)
        return ProtocolError(ErrorCode.BAD_FIELD, misfit, "job.sampler") if misfit else None

    def control_family(self, model: str) -> str:
        """The family of ControlNets, T2I- and IP-Adapters the (known) model ``model`` takes: sd15, sdxl or tiny."""
        entry = self.registry.get(model)
        return control_family(entry.base, entry.family)

    def check_controls(self, job: JobRequest) -> ProtocolError | None:
        """Every ``control`` input has a preprocessor and a ControlNet here that fit the job's model."""
        items = [(ref.input, f"job.{ref.where}") for ref in input_refs(job) if ref.input.role == "control"]
        if not items or self.registry.problem(job.model) is not None:
            return None
        roles = {ref.input.role for ref in input_refs(job)}
        family = self.control_family(job.model)
        op = self.operations.get(job.op)
        no_adapters = None
        if op is None or not any(task.adapter_pipelines for task in op.tasks):
            no_adapters = "it steers Generate only (use a ControlNet for Refine and Inpaint)"
        elif "reference" in roles and family != "sdxl":
            no_adapters = "diffusers' SD 1.5 adapter pipeline takes no reference images"
        return self.controls.check(items, family, "mask" in roles, no_adapters)

    def check_references(self, job: JobRequest) -> ProtocolError | None:
        """Every ``reference`` input has an IP-Adapter and image encoder here that fit the job's model."""
        items = [(ref.input, f"job.{ref.where}") for ref in input_refs(job) if ref.input.role == "reference"]
        if not items or self.registry.problem(job.model) is not None:
            return None
        return self.references.check(items, self.control_family(job.model))

    def check_refiner(self, job: JobRequest) -> ProtocolError | None:
        """The job's refiner (SPEC.md 9.13) is a refiner here that fits the job's model, in an op it takes part in."""
        if job.refiner is None or self.registry.problem(job.model) is not None:
            return None  # no refiner, or the model check names the job's model first
        if job.op not in REFINED_OPS:
            message = f"a refiner takes part in {', '.join(sorted(REFINED_OPS))} only, not {job.op}"
            return ProtocolError(ErrorCode.NOT_SUPPORTED, message, "job.refiner")
        return self.registry.refiner_problem(job.model, job.refiner)

    def check_loras(self, job: JobRequest) -> ProtocolError | None:
        """The job's LoRAs (its list and its prompt's tags, SPEC.md 9.12) are here and fit the job's model."""
        if self.registry.problem(job.model) is not None:
            return None  # the model check names the job's model first
        op = self.operations[job.op]
        if not op.tasks and job.loras:
            return ProtocolError(ErrorCode.NOT_SUPPORTED, f"{job.op} runs no diffusion model to apply LoRAs to",
                                 "job.loras")
        entry = self.registry.get(job.model)
        return self.networks.check(job, model_family(entry.base, entry.family))

    def check(self, job: JobRequest) -> ProtocolError | None:
        """Problems this engine can see before running ``job`` (the protocol already checked the fields)."""
        op = self.operations.get(job.op)
        if op is None:
            return ProtocolError(ErrorCode.NOT_SUPPORTED, f"this server cannot {job.op}", "job.op")
        error = self.check_loras(job)
        if error is not None:
            return error
        error = self.check_refiner(job)
        if error is not None:
            return error
        for ref in input_refs(job):
            if ref.input.role not in op.roles:  # allowed by the protocol, not implemented here (SPEC.md 9.9)
                message = f"this server does not take {ref.input.role} inputs for {job.op}"
                return ProtocolError(ErrorCode.NOT_SUPPORTED, message, f"job.{ref.role_field}")
        for check in op.checks:
            error = check(self, job)
            if error is not None:
                return error
        return None

    # ------------------------------------------------------------------ run

    def run(self, job: JobRequest, inputs: JobInputs, events: JobEvents) -> JobOutput:
        """Run ``job`` to completion on this thread; ``inputs``: role -> ``InputPixels`` (RGBA images, one-channel
        masks, all of ``job.context``). Raises JobCancelled or EngineError."""
        error = self.check(job)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        op = self.operations[job.op]
        for role in sorted(op.needs - inputs.keys()):  # admission guarantees them; a direct caller may not
            raise EngineError(ErrorCode.MISSING_FIELD, f"{job.op} needs the {role} input", f"job.{role}")
        with self._run_lock:
            try:
                return op.run(self, job, inputs, events)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise EngineError(
                    ErrorCode.OUT_OF_MEMORY,
                    f"out of GPU memory ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}); "
                    "try a smaller size or batch, or start the server with CPU offload / VAE tiling",
                ) from exc

    def load_refiner(self, job: JobRequest) -> Any:
        """The job's refiner (a LoadedModel; None without one), using the job model's VAE and second text
        encoder where they are the same architecture, so the pair is in memory once."""
        if job.refiner is None:
            return None
        base = self.load(job.model)  # cached: the model the operation just loaded
        entry = self.registry.refiner(job.model, job.refiner)  # checked again: a Hub model's base shows on load
        if entry.base == "unknown":  # a Hub refiner not in the cache before: loading it says what it is
            _, refined = self.cache.get(entry)
            self.registry.update(refined)
            entry = self.registry.refiner(job.model, job.refiner)
        model, _ = self.cache.get(entry, shared_modules(base, entry, self.settings.configs_dir))
        return model

    def load(self, name: str) -> Any:
        """The loaded model ``name`` ("" = the default), from the cache or loaded now."""
        entry = self.registry.get(name)
        model, refined = self.cache.get(entry)
        if refined != entry:
            self.registry.update(refined)
        return model
