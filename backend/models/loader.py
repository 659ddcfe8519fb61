"""Loading pipelines (built-in, diffusers folder, single file, Hub id) onto a device, and keeping them cached.

Single files load with ``from_single_file(config=<shipped skeleton>, local_files_only=True)``: without a local
config diffusers silently goes to the Hub. The txt2img / img2img / inpaint variants of one model share every
component through ``from_pipe``, so a model is in memory once whatever the job mix.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from diffusers import (
    AutoencoderTiny,
    DiffusionPipeline,
    MultiAdapter,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    T2IAdapter,
)
from diffusers.models.controlnets import MultiControlNetModel
from latentbrush.protocol import ErrorCode
from packaging.version import Version

from ..events import EngineError
from .clip_vocab import CONFIGS_DIR, load_shipped_tokenizer
from .registry import ModelEntry, folder_kind
from .taesd import find_taesd, load_taesd_source
from .tiny import build_tiny_sd15

log = logging.getLogger(__name__)

PIPELINES: dict[str, dict[str, type[DiffusionPipeline]]] = {
    "sd15": {
        "txt2img": StableDiffusionPipeline, "img2img": StableDiffusionImg2ImgPipeline,
        "inpaint": StableDiffusionInpaintPipeline,
    },
    "sdxl": {
        "txt2img": StableDiffusionXLPipeline, "img2img": StableDiffusionXLImg2ImgPipeline,
        "inpaint": StableDiffusionXLInpaintPipeline,
    },
}
_DTYPES = {
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
}
_SD15_EXTRAS = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}



class _EmptyFp32ListFilter(logging.Filter):
    """diffusers 0.42 warns "modules ... should be kept in float32: []" on every ``to(dtype=...)``, including
    inside ``from_pipe``; with an empty list there is nothing to keep, so the line is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def quiet_diffusers_noise() -> None:
    """Drop the empty-list warning and the loading progress bars (a server has no terminal to draw them on).
    Idempotent; called when a cache is made, never at import."""
    target = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _EmptyFp32ListFilter) for f in target.filters):
        target.addFilter(_EmptyFp32ListFilter())
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """diffusers 0.42 renamed ``torch_dtype`` to ``dtype`` (the old name warns); older releases know only the old."""
    new = Version(diffusers.__version__).release[:2] >= (0, 42)  # release: 0.42.0.dev0 counts as 0.42
    return {"dtype": dtype} if new else {"torch_dtype": dtype}


# ---------------------------------------------------------------------------------------------- placement


def choose_device(name: str) -> torch.device:
    """``auto``: CUDA (or ROCm, which torch also calls cuda), then Apple MPS, then CPU."""
    if name != "auto":
        try:
            return torch.device(name)
        except RuntimeError as exc:
            raise EngineError(ErrorCode.BAD_FIELD, f"unknown device {name!r}: {exc}", "device") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(name: str, device: torch.device, family: str = "sd15") -> torch.dtype:
    """``auto``: fp16 on GPUs (bf16 for SDXL where supported: its VAE overflows in fp16), fp32 on CPU."""
    if name != "auto":
        if name not in _DTYPES:
            raise EngineError(ErrorCode.BAD_FIELD, f"unknown dtype {name!r} (use {', '.join(_DTYPES)})", "dtype")
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if family == "sdxl" and torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype_name: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False

    def dtype(self, family: str) -> torch.dtype:
        return choose_dtype(self.dtype_name, self.device, family)


def module_bytes(pipe: DiffusionPipeline) -> int:
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in (*component.parameters(), *component.buffers()))
    return total


def default_budget(placement: Placement) -> int:
    """Cache budget when none is configured: 60% of GPU memory, or half the RAM when models live there."""
    if placement.device.type == "cuda" and not placement.cpu_offload:
        return int(0.6 * torch.cuda.get_device_properties(placement.device).total_memory)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 << 30
    return ram // 2


# ---------------------------------------------------------------------------------------------- loading


def _shipped_tokenizers(skeleton: Path, family: str) -> dict[str, Any]:
    names = ("tokenizer", "tokenizer_2") if family == "sdxl" else ("tokenizer",)
    return {n: load_shipped_tokenizer(skeleton / n) for n in names if not (skeleton / n / "vocab.json").exists()}


def _fp16_variant(folder: Path) -> str | None:
    unet = folder / "unet"
    if (unet / "diffusion_pytorch_model.fp16.safetensors").exists() and not (
        unet / "diffusion_pytorch_model.safetensors"
    ).exists():
        return "fp16"
    return None


def _load_hub(entry: ModelEntry, dtype: torch.dtype) -> tuple[DiffusionPipeline, ModelEntry]:
    from huggingface_hub import hf_hub_download


    try:
        index_path = Path(hf_hub_download(entry.location, "model_index.json"))
        hf_hub_download(entry.location, "unet/config.json")
    except Exception as exc:  # offline, unknown repo, gated repo: all mean "not available here"
        raise EngineError(
            ErrorCode.UNKNOWN_MODEL,
            f"Hub model {entry.location!r} is not in the local cache and cannot be downloaded "
            f"({type(exc).__name__}); download it once while online or put it in the models folder",
            "job.model",
        ) from exc
    base, inpaint, refusal = folder_kind(json.loads(index_path.read_text()), index_path.parent)
    if refusal:
        raise EngineError(ErrorCode.NOT_SUPPORTED, f"model {entry.name!r}: {refusal}", "job.model")
    entry = ModelEntry(entry.name, "hub", base, inpaint, entry.location, entry.preset)
    cls = PIPELINES[entry.family]["inpaint" if inpaint else "txt2img"]
    extras = _SD15_EXTRAS if entry.family == "sd15" else {}
    if dtype != torch.float32:
        try:
            return cls.from_pretrained(entry.location, variant="fp16", **dtype_kwarg(dtype), **extras), entry
        except (OSError, ValueError):
            log.info("%s has no fp16 variant; loading the default weights", entry.location)
    return cls.from_pretrained(entry.location, **dtype_kwarg(dtype), **extras), entry


def load_pipeline(
    entry: ModelEntry, placement: Placement, configs_dir: Path = CONFIGS_DIR
) -> tuple[DiffusionPipeline, ModelEntry]:
    """Load ``entry`` (not yet placed on the device). Returns the pipeline and the entry, refined if loading
    told us more (a Hub model's base)."""
    dtype = placement.dtype(entry.family)
    if entry.source == "builtin":
        pipe = build_tiny_sd15(inpaint=entry.inpaint)
        return (pipe if dtype == torch.float32 else pipe.to(dtype=dtype)), entry
    if entry.source == "hub":
        return _load_hub(entry, dtype)
    cls = PIPELINES[entry.family]["inpaint" if entry.inpaint else "txt2img"]
    extras = _SD15_EXTRAS if entry.family == "sd15" else {}
    if entry.source == "folder":
        folder = Path(entry.location)
        variant = _fp16_variant(folder)
        pipe = cls.from_pretrained(folder, local_files_only=True, variant=variant, **dtype_kwarg(dtype), **extras)
        return pipe, entry
    skeleton = configs_dir / (entry.family + ("-inpaint" if entry.inpaint else ""))
    pipe = cls.from_single_file(
        entry.location, config=str(skeleton), local_files_only=True, **dtype_kwarg(dtype),
        **_shipped_tokenizers(skeleton, entry.family),
    )
    return pipe, entry


def load_taesd(
    taesd_dir: Path | None, family: str, placement: Placement, models_dir: Path | None = None
) -> AutoencoderTiny | None:
    """TAESD for a latent family, found in ``taesd_dir`` or else the models folder (``taesd.find_taesd``)."""
    source = find_taesd(family, models_dir, taesd_dir)
    return None if source is None else load_taesd_source(source, placement.device, placement.dtype(family))


# ---------------------------------------------------------------------------------------------- cache


class LoadedModel:
    """One model in memory: its pipelines for each task (sharing components) and what previews need."""

    def __init__(self, entry: ModelEntry, pipe: DiffusionPipeline, placement: Placement) -> None:
        self.entry = entry
        self.placement = placement
        self.inpaint_unet = pipe.unet.config.in_channels == 9
        self.scheduler_config = dict(pipe.scheduler.config)
        self.nbytes = module_bytes(pipe)
        self.taesd: AutoencoderTiny | None = None
        self._pipes: dict[str, DiffusionPipeline] = {self._task_of(pipe): pipe}
        self._offloaded: DiffusionPipeline | None = None
        self._place(pipe)

    def _task_of(self, pipe: DiffusionPipeline) -> str:
        for task, cls in PIPELINES[self.entry.family].items():
            if type(pipe) is cls:
                return task
        message = f"{type(pipe).__name__} is not an SD 1.5 / SDXL pipeline"
        raise EngineError(ErrorCode.NOT_SUPPORTED, message, "job.model")

    def _place(self, pipe: DiffusionPipeline) -> None:
        pipe.set_progress_bar_config(disable=True)
        if self.placement.cpu_offload and self.placement.device.type == "cuda":
            self._offloaded = pipe
            pipe.enable_model_cpu_offload(device=self.placement.device)
        else:
            pipe.to(self.placement.device)
        if self.placement.vae_tiling:
            pipe.vae.enable_tiling()

    def pipeline(self, task: Any, controlnets: list[Any] | None = None) -> DiffusionPipeline:
        """The pipeline of ``task`` (an ``ops.operation.PipelineTask``, or its name), whose class for this model's
        family the operation declares; a 9-channel inpaint model does every task through its inpaint pipeline.
        With ``controlnets``, the task's ControlNet pipeline around them (made per call: ``from_pipe`` only
        shares the loaded modules)."""
        if isinstance(task, str):
            from ..ops.registry import TASKS  # the ops import this module's users; looked up late

            task = TASKS[task]
        if controlnets:
            return self._control_pipeline(task, controlnets)
        name = "inpaint" if self.inpaint_unet else task.name
        pipe = self._pipes.get(name)
        if pipe is None:
            source = next(iter(self._pipes.values()))
            cls = getattr(diffusers, task.pipelines[self.entry.family])
            # diffusers 0.42's from_pipe casts the *shared* modules to float32 unless told the dtype
            pipe = cls.from_pipe(source, **dtype_kwarg(source.unet.dtype))
            pipe.set_progress_bar_config(disable=True)
            self._pipes[name] = pipe
        if self.placement.cpu_offload and self._offloaded is not pipe and self.placement.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=self.placement.device)  # offload hooks live on the pipe
            self._offloaded = pipe
        return pipe


    def _control_pipeline(self, task: Any, controlnets: list[Any]) -> DiffusionPipeline:
        if all(isinstance(c, T2IAdapter) for c in controlnets):
            return self._adapter_pipeline(task, controlnets)
        cls_name = task.control_pipelines.get(self.entry.family)
        if cls_name is None:
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{task.name} takes no controls", "job.inputs")
        source = next(iter(self._pipes.values()))
        for controlnet in controlnets:  # a ControlNet for another UNet fails deep in torch: say it here
            if controlnet.config.cross_attention_dim != source.unet.config.cross_attention_dim:
                message = f"a control model does not fit {self.entry.name} (a ControlNet for another base model)"
                raise EngineError(ErrorCode.NOT_SUPPORTED, message, "job.inputs")
        controlnets = [c.to(source.unet.device, source.unet.dtype) for c in controlnets]  # an SDXL model may be bf16
        controlnet = controlnets[0] if len(controlnets) == 1 else MultiControlNetModel(controlnets)
        pipe = getattr(diffusers, cls_name).from_pipe(source, controlnet=controlnet, **dtype_kwarg(source.unet.dtype))
        return self._per_call(pipe)

    def _adapter_pipeline(self, task: Any, adapters: list[Any]) -> DiffusionPipeline:
        """The task's T2I-Adapter pipeline (Generate only: admission refused adapters elsewhere)."""
        cls_name = task.adapter_pipelines.get(self.entry.family)
        if cls_name is None:
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{task.name} takes no T2I-Adapters", "job.inputs")
        source = next(iter(self._pipes.values()))
        adapters = [a.to(source.unet.device, source.unet.dtype) for a in adapters]
        adapter = adapters[0] if len(adapters) == 1 else MultiAdapter(adapters)
        pipe = getattr(diffusers, cls_name).from_pipe(source, adapter=adapter, **dtype_kwarg(source.unet.dtype))
        return self._per_call(pipe)

    def _per_call(self, pipe: DiffusionPipeline) -> DiffusionPipeline:
        pipe.set_progress_bar_config(disable=True)
        if self.placement.cpu_offload and self.placement.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=self.placement.device)
            self._offloaded = pipe
        return pipe


class PipelineCache:
    """Loaded models, least recently used first out when a new one would pass the byte budget."""

    def __init__(
        self, placement: Placement, budget_bytes: int, *, configs_dir: Path = CONFIGS_DIR,
        taesd_dir: Path | None = None, models_dir: Path | None = None,
    ) -> None:
        self.placement = placement
        self.budget = budget_bytes
        self.configs_dir = configs_dir
        self.taesd_dir = taesd_dir
        self.models_dir = models_dir  # TAESD weights there are found without a flag
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._taesd: dict[str, AutoencoderTiny | None] = {}
        quiet_diffusers_noise()

    def __contains__(self, name: str) -> bool:
        return name in self._models

    def _taesd_for(self, family: str) -> AutoencoderTiny | None:
        """One TAESD per latent family, looked for (and loaded) the first time a model of it loads."""
        if family not in self._taesd:
            self._taesd[family] = load_taesd(self.taesd_dir, family, self.placement, self.models_dir)
        return self._taesd[family]

    def _estimate(self, entry: ModelEntry) -> int:
        if entry.source == "file":
            return Path(entry.location).stat().st_size
        if entry.source == "folder":
            return sum(p.stat().st_size for p in Path(entry.location).rglob("*.safetensors"))
        return 0

    def _evict_for(self, incoming: int) -> None:
        while self._models and sum(m.nbytes for m in self._models.values()) + incoming > self.budget:
            name, _ = self._models.popitem(last=False)
            log.info("unloading model %s to stay within the cache budget", name)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def adopt(self, entry: ModelEntry, pipe: DiffusionPipeline) -> LoadedModel:
        """Cache a pipeline built elsewhere (benchmarks build full-size random-weight models in memory)."""
        model = LoadedModel(entry, pipe, self.placement)
        model.taesd = self._taesd_for(entry.family)
        self._models[entry.name] = model
        return model

    def get(self, entry: ModelEntry) -> tuple[LoadedModel, ModelEntry]:
        """The loaded model (loading it if needed) and the entry as loading refined it."""
        model = self._models.get(entry.name)
        if model is not None:
            self._models.move_to_end(entry.name)
            return model, model.entry
        self._evict_for(self._estimate(entry))
        started = time.perf_counter()
        pipe, entry = load_pipeline(entry, self.placement, self.configs_dir)
        model = LoadedModel(entry, pipe, self.placement)
        model.taesd = self._taesd_for(entry.family)
        log.info("loaded %s (%s, %.0f MB) in %.1f s", entry.name, entry.base, model.nbytes / 2**20,
                 time.perf_counter() - started)
        if entry.source == "builtin":
            log.warning("model %s is the built-in test model: it produces noise, not pictures", entry.name)
        self._evict_for(model.nbytes)
        self._models[entry.name] = model
        return model, entry
