"""Which models this backend offers: the built-in tiny ones, a models folder, and Hub ids from the settings.

Discovery reads only small JSON files and safetensors headers, so it is cheap enough to run at start-up.
Files that are recognised but cannot be used (SD 2.x, pickle ``.ckpt``) are remembered with the reason, so a
job naming one gets that reason instead of "unknown model".
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from latentbrush.protocol import ErrorCode, ModelInfo, ProtocolError

from ..events import EngineError
from ..ops.presets import PRESETS, detect_preset
from ..ops.samplers import fits, samplers_for
from .detect import NATIVE_RESOLUTION, detect_file
from .folders import SKIP_FOLDERS, ModelFolders

log = logging.getLogger(__name__)

TINY, TINY_INPAINT = "tiny", "tiny-inpaint"
# the built-in models (name -> base, inpaint), each built by models/tiny.py's BUILDERS under the same name
BUILTINS: dict[str, tuple[str, bool]] = {
    TINY: ("tiny", False), TINY_INPAINT: ("tiny", True),
    "tiny-sdxl": ("tiny-sdxl", False),
    "tiny-sdxl-refiner": ("tiny-sdxl-refiner", False),
    "tiny-sd3": ("tiny-sd3", False),
    "tiny-flux": ("tiny-flux", False),
}
FAMILIES = ("sd15", "sdxl", "sd3", "flux")  # latent families: pipeline classes, previews, skeletons follow one
FAMILY_OF_BASE = {  # a base that is not itself a family; any other unknown base counts as sd15
    "tiny": "sd15",
    "tiny-sdxl": "sdxl",
    "sdxl-refiner": "sdxl",  # SDXL's latent space and VAE: a refiner continues an SDXL model's latents
    "tiny-sdxl-refiner": "sdxl",
    "tiny-sd3": "sd3",
    "tiny-flux": "flux",
}
# a model's base -> the base of the refiners that continue its denoising (SPEC.md 9.13); clients pair them alike
REFINER_OF = {"sdxl": "sdxl-refiner", "tiny-sdxl": "tiny-sdxl-refiner"}
REFINER_BASES = frozenset(REFINER_OF.values())
# model_index.json's pipeline class -> (base, inpaint, refusal) of the transformer families (FLUX.1-Fill: inpaint)
DIT_PIPELINES = {
    "StableDiffusion3Pipeline": ("sd3", False, ""),
    "FluxPipeline": ("flux", False, ""),
    "FluxFillPipeline": ("flux", True, ""),
}
MAX_SCAN_DEPTH = 2  # models/<file> and models/<group>/<file>, as A1111-style trees have
PICKLE_SUFFIXES = (".ckpt",)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str  # "builtin", "folder", "file", "hub"
    base: str  # "tiny", "sd15", "sdxl"; "unknown" for a Hub id not in the local cache yet
    inpaint: bool
    location: str = ""  # folder or file path, or Hub id
    preset: str = ""  # a few-step model's PRESETS name (ops/presets.py); "" = an ordinary model

    @property
    def info(self) -> ModelInfo:
        resolution = NATIVE_RESOLUTION.get(self.base, 512)
        preset = PRESETS.get(self.preset)
        if preset is not None and not fits(preset.sampler, self.family):
            preset = None  # a name that reads like an SD few-step model's ("...-lcm") on a flow model: no advice
        return ModelInfo(self.name, self.base, self.inpaint, resolution, self.source, preset,
                         samplers_for(self.family))

    @property
    def refiner(self) -> bool:
        """An SDXL refiner: it only continues another model's denoising (``JobRequest.refiner``)."""
        return self.base in REFINER_BASES

    @property
    def family(self) -> str:
        """Latent space family (one of ``FAMILIES``): previews, skeleton configs and pipeline classes follow it."""
        family = FAMILY_OF_BASE.get(self.base, self.base)
        return family if family in FAMILIES else "sd15"


def folder_kind(index: dict, folder: Path) -> tuple[str, bool, str]:
    """(base, inpaint, refusal) for a diffusers folder from its model_index.json and unet config."""
    cls = str(index.get("_class_name", ""))
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        unet = {}
    inpaint = unet.get("in_channels") == 9
    dit = DIT_PIPELINES.get(cls)
    if dit is not None:  # SD3 / SD3.5 and Flux.1: a transformer instead of a UNet
        return dit
    if cls.startswith("StableDiffusionXL") and is_refiner_index(index):
        return "sdxl-refiner", False, ""
    if cls.startswith("StableDiffusionXL"):
        return "sdxl", inpaint, ""
    if cls.startswith("StableDiffusion") and "Upscale" not in cls:
        if unet.get("cross_attention_dim") == 1024:
            return "sd2", inpaint, "Stable Diffusion 2.x models are not supported (use SD 1.5, SDXL, SD3 or Flux)"
        return "sd15", inpaint, ""
    return "unknown", False, f"{cls or 'this pipeline'} is not supported (use SD 1.5, SDXL, SD3 or Flux)"


def is_refiner_index(index: dict) -> bool:
    """stabilityai's refiner layout: no first text encoder, and the aesthetic score among the UNet's time ids."""
    no_first_encoder = index.get("text_encoder") in (None, [None, None])
    return no_first_encoder and bool(index.get("requires_aesthetics_score"))


def _json(path: Path) -> dict:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def folder_preset(name: str, folder: Path) -> str:
    """The few-step preset of a diffusers folder, from its UNet and scheduler configs and its name."""
    return detect_preset(name, _json(folder / "unet" / "config.json"),
                         _json(folder / "scheduler" / "scheduler_config.json"),
                         _json(folder / "transformer" / "config.json"))


def hub_entry(repo_id: str) -> ModelEntry:
    """A Hub model; its base is read from the local Hugging Face cache when it was downloaded before."""
    base, inpaint, preset = "unknown", False, detect_preset(repo_id)
    try:
        from huggingface_hub import try_to_load_from_cache

        index_path = try_to_load_from_cache(repo_id, "model_index.json")
        if isinstance(index_path, str):
            folder = Path(index_path).parent
            found_base, found_inpaint, refusal = folder_kind(json.loads(Path(index_path).read_text()), folder)
            if not refusal:
                base, inpaint, preset = found_base, found_inpaint, folder_preset(repo_id, folder)
    except (ImportError, OSError, ValueError) as exc:
        log.debug("cannot inspect cached %s: %s", repo_id, exc)
    return ModelEntry(repo_id, "hub", base, inpaint, repo_id, preset)


class ModelRegistry:
    """Models by name. Built once at start-up; Hub entries are refined after their first load."""

    def __init__(self, folders: ModelFolders | None = None, hub_models: tuple[str, ...] = ()) -> None:
        self.folders = folders or ModelFolders()
        self._entries: dict[str, ModelEntry] = {}
        self._refused: dict[str, str] = {}
        self._locations: set[str] = set()  # real paths offered: a file reached through two folders counts once
        for name, (base, inpaint) in BUILTINS.items():  # first, so a user's "tiny.safetensors" cannot hide them
            self._add(ModelEntry(name, "builtin", base, inpaint))
        for repo_id in hub_models:
            self._add(hub_entry(repo_id))
        others = self.folders.every_folder()  # the other kinds' folders (LoRAs, VAEs, ...) and other checkpoint ones
        for root in self.folders.checkpoints:
            self._scan(root, others - {os.path.realpath(root)})
        self.default = self._pick_default()
        if self.default == TINY:
            where = ", ".join(map(str, self.folders.checkpoints))
            log.warning(
                "No models configured: using the built-in 'tiny' model, which produces noise, not pictures. "
                "Put SD 1.5, SDXL, SD3 or Flux models (.safetensors or diffusers folders) in the models folder%s.",
                f" ({where})" if where else " (--models DIR, or --reuse another app's folder)",
            )

    # ------------------------------------------------------------------ discovery

    def _add(self, entry: ModelEntry) -> None:
        if entry.source in ("file", "folder"):
            real = os.path.realpath(entry.location)
            if real in self._locations:
                return
            self._locations.add(real)
        name = entry.name
        if name in self._entries or name in self._refused:
            name = Path(entry.location).name if entry.location else name
        if name in self._entries:
            log.warning("model %s at %s hides an earlier one with the same name; skipped", name, entry.location)
            return
        self._entries[name] = replace(entry, name=name)

    def _refuse(self, name: str, reason: str) -> None:
        log.warning("model %s not offered: %s", name, reason)
        self._refused[name] = reason

    def _scan(self, root: Path, skip: frozenset[str]) -> None:
        folders: list[Path] = []
        files: list[Path] = []
        self._walk(root, 0, folders, files, skip)
        for folder in sorted(folders):
            try:
                index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                self._refuse(folder.name, f"unreadable model_index.json ({exc})")
                continue
            base, inpaint, refusal = folder_kind(index, folder)
            if refusal:
                self._refuse(folder.name, refusal)
            else:
                self._add(ModelEntry(folder.name, "folder", base, inpaint, str(folder),
                                     folder_preset(folder.name, folder)))
        for path in sorted(files):
            name = path.relative_to(root).with_suffix("").as_posix()
            if path.suffix.lower() in PICKLE_SUFFIXES:
                self._refuse(name, "pickle checkpoints (.ckpt) can run code when loaded; convert it to .safetensors")
                continue
            try:
                found = detect_file(path)
            except Exception as exc:  # a truncated or foreign file must not stop the scan
                self._refuse(name, f"unreadable safetensors file ({str(exc)[:120]})")
                continue
            if found.supported:
                self._add(ModelEntry(name, "file", found.base, found.inpaint, str(path), detect_preset(name)))
            elif found.refusal:
                self._refuse(name, found.refusal)
            else:
                log.debug("%s is not a diffusion checkpoint (LoRA, VAE, upscaler, ...); ignored", path)

    def _walk(self, folder: Path, depth: int, folders: list[Path], files: list[Path], skip: frozenset[str]) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            return
        for child in children:
            if child.name.startswith(".") or child.name in SKIP_FOLDERS:
                continue
            if child.is_dir():
                if (child / "model_index.json").is_file():
                    folders.append(child)
                elif depth + 1 < MAX_SCAN_DEPTH and os.path.realpath(child) not in skip:
                    self._walk(child, depth + 1, folders, files, skip)
            elif child.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
                files.append(child)

    def _pick_default(self) -> str:
        """The first plain (non-inpaint) model, else the first model, else the tiny one."""
        usable = [e for e in self._entries.values() if e.source != "builtin" and not e.refiner]
        plain = [e for e in usable if not e.inpaint]
        return (plain or usable)[0].name if usable else TINY

    # ------------------------------------------------------------------ lookup

    def infos(self) -> tuple[ModelInfo, ...]:
        """Configured models first (the default among them), the built-in tiny ones last."""
        entries = sorted(self._entries.values(), key=lambda e: e.source == "builtin")
        return tuple(e.info for e in entries)

    def problem(self, name: str) -> ProtocolError | None:
        """Why ``name`` (as a job names it; "" = default) cannot be used, or None."""
        name = name or self.default
        if name in self._entries and self._entries[name].refiner:
            message = (f"model {name!r}: a refiner is not a stand-alone model; name an SDXL model as job.model "
                       "and this one as job.refiner")
            return ProtocolError(ErrorCode.NOT_SUPPORTED, message, "job.model")
        if name in self._entries:
            return None
        if name in self._refused:
            return ProtocolError(ErrorCode.NOT_SUPPORTED, f"model {name!r}: {self._refused[name]}", "job.model")
        return ProtocolError(ErrorCode.UNKNOWN_MODEL, f"unknown model {name!r}", "job.model")

    def get(self, name: str) -> ModelEntry:
        error = self.problem(name)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        return self._entries[name or self.default]

    def refiner_problem(self, model: str, refiner: str) -> ProtocolError | None:
        """Why ``refiner`` cannot continue jobs of the (known, usable) model ``model``, or None (SPEC.md 9.13)."""
        field = "job.refiner"
        found = self._entries.get(refiner)
        if found is None:
            if refiner in self._refused:
                return ProtocolError(ErrorCode.NOT_SUPPORTED, f"model {refiner!r}: {self._refused[refiner]}", field)
            return ProtocolError(ErrorCode.UNKNOWN_MODEL, f"unknown refiner {refiner!r}", field)
        if found.base == "unknown":  # a Hub model not downloaded yet: checked again once it has loaded
            return None
        if not found.refiner:
            return ProtocolError(ErrorCode.BAD_FIELD, f"model {refiner!r} ({found.base}) is not an SDXL refiner", field)
        base = self._entries[model or self.default].base
        if base == "unknown":  # a Hub model not downloaded yet: checked again once it has loaded
            return None
        if base not in REFINER_OF:
            message = f"a refiner continues SDXL models only; {model or self.default!r} is {base}"
            return ProtocolError(ErrorCode.NOT_SUPPORTED, message, field)
        if REFINER_OF[base] != found.base:
            message = f"refiner {refiner!r} ({found.base}) does not fit {model or self.default!r} ({base})"
            return ProtocolError(ErrorCode.NOT_SUPPORTED, message, field)
        return None

    def refiner(self, model: str, refiner: str) -> ModelEntry:
        """The refiner entry for a job of ``model``; EngineError when it cannot be used."""
        error = self.refiner_problem(model, refiner)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        return self._entries[refiner]

    def add(self, entry: ModelEntry) -> None:
        """Offer one more model (benchmarks and embedders that build pipelines themselves)."""
        self._add(entry)

    def update(self, entry: ModelEntry) -> None:
        """Record what loading taught us (a Hub model's base)."""
        if entry.name in self._entries:
            self._entries[entry.name] = entry
