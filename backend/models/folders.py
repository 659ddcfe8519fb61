"""Where each kind of model file is looked for: one frozen ``ModelFolders`` value every registry reads.

Our own models folder (``--models DIR``) keeps checkpoints at its top and the other kinds in sub-folders named
as A1111 and ComfyUI name them (``loras/``, ``controlnet/``, ``upscale_models/``, ...); ``from_models_dir``
turns it into folders per kind. Other apps' trees (``reuse.py``) become the same value, and ``merge`` puts
them behind ours, so the registries scan every folder in place and never copy a file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

log = logging.getLogger(__name__)

# the sub-folders of a models folder, by kind (A1111's, ComfyUI's and ours; first match is scanned first)
LORA_FOLDERS = ("loras", "Lora", "LyCORIS")
EMBEDDINGS_FOLDER = "embeddings"
CONTROL_FOLDERS = ("controlnet", "ControlNet", "controlnets")  # ComfyUI and A1111 keep T2I-Adapters there too
REFERENCE_FOLDERS = ("ipadapter", "ip-adapter", "ipadapters", "IPAdapter")
ENCODER_FOLDERS = ("clip_vision", "image_encoder")
UPSCALE_FOLDERS = ("upscale", "upscale_models")
VAE_FOLDERS = ("vae", "VAE")
APPROX_FOLDER = "vae_approx"  # ComfyUI's folder of preview decoders (TAESD)
# annotator weights (lineart, softedge, pose, depth): ours, ComfyUI's controlnet_aux, A1111's ControlNet extension
ANNOTATORS = Path("annotators")
COMFYUI_ANNOTATORS = Path("custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators")
A1111_ANNOTATORS = Path("extensions/sd-webui-controlnet/annotator/downloads")
# folders the checkpoint scan of a models folder never enters: the other kinds' own
SKIP_FOLDERS = (*UPSCALE_FOLDERS, APPROX_FOLDER, "VAE-approx", *VAE_FOLDERS, *CONTROL_FOLDERS, *REFERENCE_FOLDERS,
                *ENCODER_FOLDERS, *LORA_FOLDERS, EMBEDDINGS_FOLDER)

KIND_LABELS = {  # field -> what the start-up log calls one folder of it
    "checkpoints": "checkpoint", "loras": "lora", "embeddings": "embedding", "controlnet": "controlnet",
    "ipadapter": "ip-adapter", "clip_vision": "clip-vision", "upscale": "upscaler", "vae": "vae", "taesd": "taesd",
    "annotators": "annotator",
}


def existing(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The folders among ``paths`` that exist, each once (the same folder reached twice counts once)."""
    return unique(p for p in paths if p.is_dir())


def unique(paths: Iterable[Path]) -> tuple[Path, ...]:
    """``paths`` in order, each folder once (two spellings or links of one folder count as one)."""
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(os.path.realpath(path), path)
    return tuple(seen.values())


@dataclass(frozen=True)
class ModelFolders:
    """Existing folders per kind of model file, in search order (the first folder's file wins a name clash)."""

    checkpoints: tuple[Path, ...] = ()
    loras: tuple[Path, ...] = ()
    embeddings: tuple[Path, ...] = ()
    controlnet: tuple[Path, ...] = ()
    ipadapter: tuple[Path, ...] = ()
    clip_vision: tuple[Path, ...] = ()
    upscale: tuple[Path, ...] = ()
    vae: tuple[Path, ...] = ()
    taesd: tuple[Path, ...] = ()  # folders holding taesd/, taesdxl/, ... or *_decoder.safetensors (models/taesd.py)
    annotators: tuple[Path, ...] = ()

    @classmethod
    def from_models_dir(cls, models_dir: Path | None) -> ModelFolders:
        """Our own models folder: checkpoints at its top, the other kinds in their sub-folders."""
        if models_dir is None:
            return cls()
        if not models_dir.is_dir():
            log.warning("models folder %s does not exist; no local models", models_dir)
            return cls()
        annotators = (models_dir / ANNOTATORS, models_dir / COMFYUI_ANNOTATORS, models_dir.parent / COMFYUI_ANNOTATORS,
                      models_dir.parent / A1111_ANNOTATORS)  # next to it when it is ComfyUI/models or webui/models
        return cls(
            checkpoints=(models_dir,),
            loras=existing(models_dir / f for f in LORA_FOLDERS),
            embeddings=existing([models_dir / EMBEDDINGS_FOLDER]),
            controlnet=existing(models_dir / f for f in CONTROL_FOLDERS),
            ipadapter=existing(models_dir / f for f in REFERENCE_FOLDERS),
            clip_vision=existing(models_dir / f for f in ENCODER_FOLDERS),
            upscale=existing(models_dir / f for f in UPSCALE_FOLDERS),
            vae=existing(models_dir / f for f in VAE_FOLDERS),
            taesd=existing([models_dir, models_dir / APPROX_FOLDER]),
            annotators=existing(annotators),
        )

    def merge(self, *others: ModelFolders) -> ModelFolders:
        """These folders first, then each of ``others`` in order; a folder already listed is dropped."""
        merged = {f.name: [*getattr(self, f.name)] for f in fields(self)}
        for other in others:
            for name, found in merged.items():
                found.extend(getattr(other, name))
        return ModelFolders(**{name: unique(found) for name, found in merged.items()})

    def __add__(self, other: ModelFolders) -> ModelFolders:
        return self.merge(other)

    def every_folder(self) -> frozenset[str]:
        """Every folder of every kind (real paths): a scan of one folder does not go into another one."""
        return frozenset(os.path.realpath(p) for f in fields(self) for p in getattr(self, f.name))

    def counts(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in fields(self)}

    def summary(self) -> str:
        """``3 checkpoint folders, 2 lora folders, ...`` (the kinds with none left out)."""
        parts = [f"{n} {KIND_LABELS[kind]} folder{'s' if n != 1 else ''}" for kind, n in self.counts().items() if n]
        return ", ".join(parts) or "no model folders"
