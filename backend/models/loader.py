"""Loading pipelines (built-in, diffusers folder, single file, Hub id) onto a device, and keeping them cached.

Single files load with ``from_single_file(config=<shipped skeleton>, local_files_only=True)``: without a local
config diffusers silently goes to the Hub. The txt2img / img2img / inpaint variants of one model share every
component through ``from_pipe``, so a model is in memory once whatever the job mix.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from diffusers import (
    AutoencoderTiny,
    DiffusionPipeline,
    FluxFillPipeline,
    FluxImg2ImgPipeline,
    FluxInpaintPipeline,
    FluxPipeline,
    MultiAdapter,
    StableDiffusion3Img2ImgPipeline,
    StableDiffusion3InpaintPipeline,
    StableDiffusion3Pipeline,
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
from .detect import file_shapes, sd3_skeleton
from .offload import NONE as NO_OFFLOAD
from .offload import choose_offload, cuda_free_bytes
from .offload import place as place_pipeline
from .placement import Placement, component_bytes, module_bytes, tensor_bytes
from .registry import ModelEntry, folder_kind
from .taesd import find_taesd, load_taesd_source
from .tiny import BUILDERS

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
    "sd3": {
        "txt2img": StableDiffusion3Pipeline, "img2img": StableDiffusion3Img2ImgPipeline,
        "inpaint": StableDiffusion3InpaintPipeline,
    },
    "flux": {"txt2img": FluxPipeline, "img2img": FluxImg2ImgPipeline, "inpaint": FluxInpaintPipeline},
}
# an inpainting model's own pipeline where it is not the family's inpaint one (FLUX.1-Fill takes the mask and
# the masked image as transformer input; FluxInpaintPipeline only blends latents)
INPAINT_MODEL_PIPELINES: dict[str, type[DiffusionPipeline]] = {"flux": FluxFillPipeline}
INPAINT_IN_CHANNELS = {"unet": 9, "transformer": 384}  # SD 9-channel UNets; FLUX.1-Fill's packed 64 + 64 + 256
OPTIONAL_T5 = {"sd3": ("text_encoder_3", "tokenizer_3")}  # families whose T5 encoder may be left out
# T5's SentencePiece vocabulary is not shipped (only CLIP's is): SD3 single files run without their T5 encoder
SINGLE_FILE_EXTRAS: dict[str, dict[str, None]] = {"sd3": {"text_encoder_3": None, "tokenizer_3": None}}
SIZE_MULTIPLE = {"sd3": 16, "flux": 16}  # sides the pipeline takes: the VAE's 8 x SD3's 2x2 patches / Flux's packing
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


# ---------------------------------------------------------------------------------------------- loading


def denoiser(pipe: DiffusionPipeline) -> torch.nn.Module:
    """The pipeline's denoising network: the UNet of SD 1.5 / SDXL, the transformer of SD3 / Flux."""
    for name in INPAINT_IN_CHANNELS:
        module = getattr(pipe, name, None)
        if module is not None:
            return module
    raise EngineError(ErrorCode.NOT_SUPPORTED, f"{type(pipe).__name__} has no UNet or transformer", "job.model")


def is_inpaint_model(pipe: DiffusionPipeline) -> bool:
    """An inpainting model (it also takes the mask and masked image as input): it runs every task as inpaint."""
    network = denoiser(pipe)
    kind = "unet" if getattr(pipe, "unet", None) is network else "transformer"
    return network.config.in_channels == INPAINT_IN_CHANNELS[kind]


def has_t5(pipe: DiffusionPipeline) -> bool:
    """Whether the pipeline encodes prompts with a T5 encoder (SD3 with its third encoder, Flux always)."""
    return any(isinstance(c, transformers.T5EncoderModel) for c in pipe.components.values())


def without_t5(family: str, placement: Placement) -> dict[str, None]:
    """from_pretrained / from_single_file arguments that leave the optional T5 encoder out, when asked to."""
    return dict.fromkeys(OPTIONAL_T5.get(family, ())) if not placement.t5 else {}


def _shipped_tokenizers(skeleton: Path, family: str) -> dict[str, Any]:
    names = ("tokenizer", "tokenizer_2") if family in ("sdxl", "sd3") else ("tokenizer",)
    return {n: load_shipped_tokenizer(skeleton / n) for n in names  # an SDXL refiner has only tokenizer_2
            if (skeleton / n).is_dir() and not (skeleton / n / "vocab.json").exists()}


def pipeline_class(entry: ModelEntry) -> type[DiffusionPipeline]:
    """The class a model loads as: a refiner is an img2img pipeline (it only continues another's denoising)."""
    task = "img2img" if entry.refiner else "inpaint" if entry.inpaint else "txt2img"
    if task == "inpaint" and entry.family in INPAINT_MODEL_PIPELINES:
        return INPAINT_MODEL_PIPELINES[entry.family]
    return PIPELINES[entry.family][task]


def skeleton_name(entry: ModelEntry) -> str:
    """The shipped config folder (configs/) of a single-file checkpoint."""
    if entry.family == "sd3":  # SD3 Medium, SD3.5 Medium and Large differ in shape: read off the file's header
        return sd3_skeleton(file_shapes(Path(entry.location)))
    return "sdxl-refiner" if entry.refiner else entry.family + ("-inpaint" if entry.inpaint else "")


def _fp16_variant(folder: Path) -> str | None:
    unet = folder / "unet"
    if (unet / "diffusion_pytorch_model.fp16.safetensors").exists() and not (
        unet / "diffusion_pytorch_model.safetensors"
    ).exists():
        return "fp16"
    return None


def _load_hub(entry: ModelEntry, placement: Placement) -> tuple[DiffusionPipeline, ModelEntry]:
    from huggingface_hub import hf_hub_download


    try:
        index_path = Path(hf_hub_download(entry.location, "model_index.json"))
        index = json.loads(index_path.read_text())
        for network in ("unet", "transformer"):  # folder_kind reads its config
            if network in index:
                hf_hub_download(entry.location, f"{network}/config.json")
    except Exception as exc:  # offline, unknown repo, gated repo: all mean "not available here"
        raise EngineError(
            ErrorCode.UNKNOWN_MODEL,
            f"Hub model {entry.location!r} is not in the local cache and cannot be downloaded "
            f"({type(exc).__name__}); download it once while online or put it in the models folder",
            "job.model",
        ) from exc
    base, inpaint, refusal = folder_kind(index, index_path.parent)
    if refusal:
        raise EngineError(ErrorCode.NOT_SUPPORTED, f"model {entry.name!r}: {refusal}", "job.model")
    entry = ModelEntry(entry.name, "hub", base, inpaint, entry.location, entry.preset)
    dtype = placement.dtype(entry.family)
    cls = pipeline_class(entry)
    extras = (_SD15_EXTRAS if entry.family == "sd15" else {}) | without_t5(entry.family, placement)
    if dtype != torch.float32:
        try:
            return cls.from_pretrained(entry.location, variant="fp16", **dtype_kwarg(dtype), **extras), entry
        except (OSError, ValueError):
            log.info("%s has no fp16 variant; loading the default weights", entry.location)
    return cls.from_pretrained(entry.location, **dtype_kwarg(dtype), **extras), entry


def load_pipeline(
    entry: ModelEntry, placement: Placement, configs_dir: Path = CONFIGS_DIR, shared: dict[str, Any] | None = None,
) -> tuple[DiffusionPipeline, ModelEntry]:
    """Load ``entry`` (not yet placed on the device). Returns the pipeline and the entry, refined if loading
    told us more (a Hub model's base). ``shared``: components already in memory (an SDXL refiner takes its
    base model's VAE and second text encoder) that diffusers then does not load again."""
    dtype = placement.dtype(entry.family)
    if entry.source == "builtin":
        pipe = BUILDERS[entry.name]()
        if without_t5(entry.family, placement):
            pipe = type(pipe)(**(pipe.components | without_t5(entry.family, placement)))
        pipe = pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
        if shared:
            pipe.register_modules(**shared)
        return pipe, entry
    if entry.source == "hub":
        return _load_hub(entry, placement)
    cls = pipeline_class(entry)
    extras = (_SD15_EXTRAS if entry.family == "sd15" else {}) | (shared or {}) | without_t5(entry.family, placement)
    if entry.source == "folder":
        folder = Path(entry.location)
        variant = _fp16_variant(folder)
        pipe = cls.from_pretrained(folder, local_files_only=True, variant=variant, **dtype_kwarg(dtype), **extras)
        return pipe, entry
    skeleton = configs_dir / skeleton_name(entry)
    pipe = cls.from_single_file(
        entry.location, config=str(skeleton), local_files_only=True, **dtype_kwarg(dtype),
        **_shipped_tokenizers(skeleton, entry.family), **(shared or {}), **SINGLE_FILE_EXTRAS.get(entry.family, {}),
    )
    return pipe, entry


def load_taesd(
    taesd_dir: Path | None, family: str, placement: Placement, folders: tuple[Path, ...] = ()
) -> AutoencoderTiny | None:
    """TAESD for a latent family, found in ``taesd_dir`` or else ``folders`` (``taesd.find_taesd``)."""
    source = find_taesd(family, folders, taesd_dir)
    return None if source is None else load_taesd_source(source, placement.device, placement.dtype(family))


# ---------------------------------------------------------------------------------------------- cache


class LoadedModel:
    """One model in memory: its pipelines for each task (sharing components) and what previews need."""

    def __init__(self, entry: ModelEntry, pipe: DiffusionPipeline, placement: Placement) -> None:
        self.entry = entry
        self.placement = placement
        self.inpaint_unet = is_inpaint_model(pipe)  # the name stays: any inpainting network (9-ch UNet, Flux Fill)
        self.t5 = has_t5(pipe)
        self.size_multiple = SIZE_MULTIPLE.get(entry.family, 8)
        self.scheduler_config = dict(pipe.scheduler.config)
        self.nbytes = module_bytes(pipe)
        self.taesd: AutoencoderTiny | None = None
        self._pipes: dict[str, DiffusionPipeline] = {self._task_of(pipe): pipe}
        self._offloaded: DiffusionPipeline | None = None
        sizes = component_bytes(pipe)
        # none / model / sequential: from the free GPU memory, so a model bigger than the GPU still runs
        self.offload = choose_offload(sum(sizes), max(sizes, default=0), cuda_free_bytes(placement.device),
                                      forced=placement.cpu_offload)
        if self.offload != NO_OFFLOAD and not placement.cpu_offload:
            log.info("%s (%.1f GB) does not fit the free GPU memory: %s CPU offload", entry.name,
                     sum(sizes) / 1e9, self.offload)
        self._place(pipe)

    def _task_of(self, pipe: DiffusionPipeline) -> str:
        for task, cls in PIPELINES[self.entry.family].items():
            if type(pipe) is cls:
                return task
        if type(pipe) is INPAINT_MODEL_PIPELINES.get(self.entry.family):
            return "inpaint"
        message = f"{type(pipe).__name__} is not a {self.entry.family} pipeline this backend runs"
        raise EngineError(ErrorCode.NOT_SUPPORTED, message, "job.model")

    def share(self, modules: dict[str, Any]) -> None:
        """Use ``modules`` (another loaded model's, of the same architecture) in every pipeline of this one;
        ``nbytes`` then counts only what this model holds alone (the other model's entry counts the rest)."""
        for pipe in self._pipes.values():
            pipe.register_modules(**modules)
        shared = {id(m) for m in modules.values()}
        self.nbytes = sum(tensor_bytes(c) for c in next(iter(self._pipes.values())).components.values()
                          if isinstance(c, torch.nn.Module) and id(c) not in shared)

    def component(self, name: str) -> Any:
        """One of the model's components (``vae``, ``text_encoder_2``, ...), or None."""
        return getattr(next(iter(self._pipes.values())), name, None)

    def holds(self, modules: dict[str, Any]) -> bool:
        """Whether this model's pipelines use exactly these modules already."""
        pipe = next(iter(self._pipes.values()))
        return all(getattr(pipe, name, None) is module for name, module in modules.items())

    def _place(self, pipe: DiffusionPipeline) -> None:
        pipe.set_progress_bar_config(disable=True)
        if self.offload != NO_OFFLOAD:
            self._offloaded = pipe
        place_pipeline(pipe, self.offload, self.placement.device)
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
            pipe = cls.from_pipe(source, **dtype_kwarg(denoiser(source).dtype))
            pipe.set_progress_bar_config(disable=True)
            self._pipes[name] = pipe
        if self.offload != NO_OFFLOAD and self._offloaded is not pipe:
            place_pipeline(pipe, self.offload, self.placement.device)  # offload hooks live on the pipe
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
        if self.offload != NO_OFFLOAD:
            place_pipeline(pipe, self.offload, self.placement.device)
            self._offloaded = pipe
        return pipe


class PipelineCache:
    """Loaded models, least recently used first out when a new one would pass the byte budget."""

    def __init__(
        self, placement: Placement, budget_bytes: int, *, configs_dir: Path = CONFIGS_DIR,
        taesd_dir: Path | None = None, taesd_folders: tuple[Path, ...] = (),
    ) -> None:
        self.placement = placement
        self.budget = budget_bytes
        self.configs_dir = configs_dir
        self.taesd_dir = taesd_dir
        self.taesd_folders = taesd_folders  # TAESD weights there are found without a flag (ModelFolders.taesd)
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._taesd: dict[str, AutoencoderTiny | None] = {}
        quiet_diffusers_noise()

    def __contains__(self, name: str) -> bool:
        return name in self._models

    def _taesd_for(self, family: str) -> AutoencoderTiny | None:
        """One TAESD per latent family, looked for (and loaded) the first time a model of it loads."""
        if family not in self._taesd:
            self._taesd[family] = load_taesd(self.taesd_dir, family, self.placement, self.taesd_folders)
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

    def get(self, entry: ModelEntry, shared: dict[str, Any] | None = None) -> tuple[LoadedModel, ModelEntry]:
        """The loaded model (loading it if needed) and the entry as loading refined it. ``shared``: components
        of another loaded model it uses instead of its own (an SDXL refiner: its base's VAE and text encoder);
        ignored under CPU offload, whose hooks belong to one pipeline."""
        shared = shared if shared and not self.placement.cpu_offload else None
        model = self._models.get(entry.name)
        if model is not None:
            self._models.move_to_end(entry.name)
            if shared and not model.holds(shared):  # another base than last time: its modules, not the old ones
                model.share(shared)
            return model, model.entry
        self._evict_for(self._estimate(entry))
        started = time.perf_counter()
        pipe, entry = load_pipeline(entry, self.placement, self.configs_dir, shared)
        model = LoadedModel(entry, pipe, self.placement)
        if shared:
            model.share(shared)
        model.taesd = self._taesd_for(entry.family)
        log.info("loaded %s (%s, %.0f MB) in %.1f s", entry.name, entry.base, model.nbytes / 2**20,
                 time.perf_counter() - started)
        if entry.source == "builtin":
            log.warning("model %s is the built-in test model: it produces noise, not pictures", entry.name)
        self._evict_for(model.nbytes)
        self._models[entry.name] = model
        return model, entry
