"""Which IP-Adapters and image encoders this backend offers: found in the models folder, recognised from tensors.

Painters keep IP-Adapters where their other tools put them: ``ipadapter/`` (ComfyUI), ``ip-adapter/``,
``ipadapters/`` or ``IPAdapter/``, as the single files h94 publishes (``.safetensors`` with ``image_proj.`` and
``ip_adapter.`` keys, or the ``.bin`` of the same two dicts, read with ``weights_only`` so no code runs). Image
encoders are transformers folders (``config.json`` + ``model.safetensors``) in ``clip_vision/`` or
``image_encoder/`` (h94's own layout). The family comes from the adapter's cross-attention width, the encoder
it needs from its image projection's input width; discovery reads only headers and small JSON files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from .tiny import TINY_CROSS_DIMS

log = logging.getLogger(__name__)

# text-embedding width of the UNet's cross-attention -> family; the tiny test shapes name the family they imitate
FAMILY_BY_CROSS_DIM = {768: "sd15", 2048: "sdxl", **TINY_CROSS_DIMS}
FIRST_IP_KEY = "1.to_k_ip.weight"  # diffusers numbers the cross-attention layers 1, 3, 5, ...

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class AdapterEntry:
    name: str
    family: str  # "sd15", "sdxl" (or "tiny" for the built-in one)
    kind: str  # "basic" (pooled image embedding), "plus" (resampler over patch tokens), "full" (all tokens)
    encoder_dim: int  # the image encoder width it reads: projection_dim (basic) or hidden_size (plus, full)
    location: str  # the file ("" for the built-in one)
    source: str  # "file" or "builtin"

    @property
    def hidden_states(self) -> bool:
        """Reads the encoder's patch tokens (``hidden_size`` wide), not its pooled projection."""
        return self.kind != "basic"


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    projection_dim: int
    hidden_size: int
    location: str  # the transformers folder ("" for the built-in one)

    def fits(self, adapter: AdapterEntry) -> bool:
        return (self.hidden_size if adapter.hidden_states else self.projection_dim) == adapter.encoder_dim


def detect_adapter(image_proj: Shapes, ip_adapter: Shapes) -> tuple[str, str, int] | str:
    """(family, kind, encoder_dim) of an IP-Adapter from its two state dicts' shapes, or why it is not offered."""
    if not image_proj or not ip_adapter:
        return "not an IP-Adapter (no image_proj / ip_adapter tensors)"
    faceid = "norm.weight" in image_proj and "proj.weight" not in image_proj  # diffusers' order of tests
    if faceid or any("perceiver_resampler" in k for k in image_proj):
        return "FaceID adapters need face embeddings (insightface), which this server does not compute"
    if any("lora" in k for k in ip_adapter):
        return "adapters with LoRA weights (FaceID) are not supported"
    cross_shape = ip_adapter.get(FIRST_IP_KEY)
    if cross_shape is None or len(cross_shape) != 2:
        return "not an IP-Adapter (no cross-attention weights)"
    family = FAMILY_BY_CROSS_DIM.get(cross_shape[-1])
    if family is None:
        width = cross_shape[-1]
        return "an IP-Adapter for SD 2.x" if width == 1024 else f"an IP-Adapter for an unknown model ({width}-wide)"
    if "proj.weight" in image_proj:
        return family, "basic", image_proj["proj.weight"][-1]
    if "proj.3.weight" in image_proj and "proj.0.weight" in image_proj:
        return family, "full", image_proj["proj.0.weight"][-1]
    if "latents" in image_proj and "proj_in.weight" in image_proj:
        return family, "plus", image_proj["proj_in.weight"][-1]
    return "an IP-Adapter with an image projection this server does not know"


def _split(shapes: Shapes) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The flat ``image_proj.x`` / ``ip_adapter.x`` keys of a safetensors file as the two dicts diffusers reads."""
    parts: dict[str, dict[str, tuple[int, ...]]] = {"image_proj": {}, "ip_adapter": {}}
    for key, shape in shapes.items():
        head, _, rest = key.partition(".")
        if head in parts:
            parts[head][rest] = shape
    return parts["image_proj"], parts["ip_adapter"]


def read_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The (image_proj, ip_adapter) shapes of an adapter file without reading the weights."""
    if path.suffix.lower() == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return _split({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})  # noqa: SIM118 - safe_open is no dict
    # weights_only: tensors and plain containers only, no code; mmap: shapes without reading the data
    loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(loaded, dict):
        return {}, {}
    return tuple(  # type: ignore[return-value]
        {k: tuple(v.shape) for k, v in (loaded.get(part) or {}).items() if isinstance(v, torch.Tensor)}
        for part in ("image_proj", "ip_adapter"))


def read_encoder(folder: Path) -> EncoderEntry | None:
    """A CLIP vision encoder folder (transformers layout) as an entry; None when the folder is not one."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if config.get("model_type") != "clip_vision_model" or not any(
            (folder / n).exists() for n in ("model.safetensors", "model.fp16.safetensors")):
        return None
    return EncoderEntry(folder.name, int(config.get("projection_dim", 512)), int(config.get("hidden_size", 768)),
                        str(folder))


class ReferenceRegistry:
    """IP-Adapters and image encoders by name, scanned once at start-up."""

    def __init__(self, adapter_folders: tuple[Path, ...] = (), encoder_folders: tuple[Path, ...] = ()) -> None:
        """The folders: ``ModelFolders.ipadapter`` and ``.clip_vision``, in search order."""
        self._adapters: dict[str, AdapterEntry] = {}
        self._encoders: dict[str, EncoderEntry] = {}
        self.refused: dict[str, str] = {}
        for folder in adapter_folders:
            if folder.is_dir():
                self._scan_adapters(folder)
        for folder in encoder_folders:
            if folder.is_dir():
                self._scan_encoders(folder)

    def _scan_adapters(self, root: Path) -> None:
        for path in sorted(root.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix.lower() not in (".safetensors", ".bin"):
                continue
            try:
                found = detect_adapter(*read_shapes(path))
            except Exception as exc:  # a truncated or foreign file must not stop the scan
                found = f"unreadable file ({str(exc)[:120]})"
            if isinstance(found, str):
                self._refuse(path.stem, found)
            elif path.stem in self._adapters:
                log.warning("IP-Adapter %s at %s hides an earlier one with the same name; skipped", path.stem, path)
            else:
                self._adapters[path.stem] = AdapterEntry(path.stem, *found, str(path), "file")

    def _scan_encoders(self, root: Path) -> None:
        for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))):
            entry = read_encoder(folder)
            if entry is not None and entry.name not in self._encoders:
                self._encoders[entry.name] = entry
        for path in sorted(root.glob("*.safetensors")):  # ComfyUI's single-file encoders carry no config
            log.warning("image encoder %s not used: put it in a transformers folder (config.json + "
                        "model.safetensors) under %s", path.name, root)

    def _refuse(self, name: str, reason: str) -> None:
        log.warning("IP-Adapter %s not offered: %s", name, reason)
        self.refused[name] = reason

    def adapters(self) -> tuple[AdapterEntry, ...]:
        return tuple(self._adapters.values())

    def encoders(self) -> tuple[EncoderEntry, ...]:
        return tuple(self._encoders.values())
