"""Which LoRAs (and LyCORIS / LoCon files) this backend offers: found in the models folder, typed by their tensors.

Painters keep LoRAs where their other tools put them: ``loras/`` (ComfyUI, and ours), ``Lora/`` (A1111) and
``LyCORIS/`` (A1111's LyCORIS extension), with sub-folders. Only ``.safetensors`` files are read (pickle
``.pt`` / ``.ckpt`` can run code when loaded). Discovery reads only the file headers: the key names say the
layout (kohya ``lora_unet_*`` / ``lora_te*``, diffusers / peft ``unet.*`` / ``text_encoder*.*`` /
``transformer.*``) and the cross-attention width says the family (768: SD 1.5, 2048: SDXL, the built-in tiny
models' small widths: ``tiny``, ``tiny-sdxl``). Files diffusers cannot load (LoHa, LoKr) are remembered with the reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from latentbrush.protocol import ErrorCode, LoraInfo, ProtocolError
from safetensors import safe_open

log = logging.getLogger(__name__)

MAX_DEPTH = 2  # loras/<file> and loras/<group>/<file>
PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth")
# width of attn2.to_k's input, the text embedding the UNet attends to; the built-in tiny models' (models/tiny.py:
# TEXT_HIDDEN, SDXL's two encoders side by side) are narrower than any real model's
CROSS_WIDTH = {768: "sd15", 2048: "sdxl", 32: "tiny", 64: "tiny-sdxl"}
TEXT_WIDTH = {768: "sd15", 32: "tiny"}  # a text-encoder-only LoRA: the first encoder's (SDXL's too; te2 says XL)
XL_OF = {"sd15": "sdxl", "tiny": "tiny-sdxl"}
_CROSS_KEY = re.compile(r"attn2[._]to_k.*(lora_down|lora_A|lora\.down)\.weight$")
_TEXT_KEY = re.compile(r"(lora_te1?_|text_encoder\.).*q_proj.*(lora_down|lora_A|lora\.down)\.weight$")
_XL_HINTS = ("lora_te2_", "text_encoder_2.")  # SDXL's second text encoder: what tells a text-only LoRA's family


@dataclass(frozen=True)
class LoraEntry:
    name: str  # path under its folder without the suffix: "detail", "styles/ink"
    family: str  # "sd15", "sdxl", "tiny", "flux", "sd3"
    location: str
    text_encoder: bool  # it changes a text encoder too: the prompt's embeddings depend on it
    kind: str = "lora"  # "lora", or "locon" (LyCORIS LoCon: convolutions too)

    @property
    def info(self) -> LoraInfo:
        return LoraInfo(self.name, self.family)


def detect(shapes: dict[str, tuple[int, ...]]) -> tuple[str, bool, str] | str:
    """(family, touches a text encoder, kind) of a LoRA's tensors, or why it cannot be used."""
    keys = list(shapes)
    if any(".hada_" in k or ".lokr_" in k for k in keys):
        return "LoHa / LoKr files (LyCORIS) cannot be loaded by diffusers; use a LoRA or LoCon version"
    kohya = any(k.startswith(("lora_unet_", "lora_te")) for k in keys)
    peft = any(k.startswith(("unet.", "text_encoder.", "text_encoder_2.", "transformer.")) for k in keys)
    if not (kohya or peft):
        return "not a LoRA (no lora_unet_ / lora_te / unet. / transformer. tensors)"
    text = any(k.startswith(("lora_te", "text_encoder")) for k in keys)
    if any(k.startswith("transformer.") for k in keys):  # the DiT families
        return ("flux" if any("single_transformer_blocks" in k for k in keys) else "sd3"), text, "lora"
    # LoCon: LoRA on the convolutions too, whose down weights are k x k kernels
    locon = any(len(s) == 4 and s[-1] > 1 for k, s in shapes.items() if "lora_down" in k or "lora_A" in k)
    kind = "locon" if locon else "lora"
    xl = any(hint in k for k in keys for hint in _XL_HINTS)
    cross = next((shapes[k][1] for k in keys if _CROSS_KEY.search(k) and len(shapes[k]) >= 2), None)
    if cross is None:  # no cross-attention in it: a text-encoder-only LoRA
        width = next((shapes[k][1] for k in keys if _TEXT_KEY.search(k) and len(shapes[k]) >= 2), None)
        if width is None:
            return "cannot tell which models it is for (no cross-attention or text-encoder tensors)"
        known = TEXT_WIDTH.get(width)
        if known is None:
            return f"a LoRA for a {width}-wide text encoder, which no model here has"
        return (XL_OF[known] if xl else known), text, kind
    if cross == 1024:
        return "a LoRA for Stable Diffusion 2.x, which this server does not run"
    known = CROSS_WIDTH.get(cross)
    if known is None:
        return f"a LoRA for {cross}-wide cross-attention, which no model here has"
    return known, text, kind


def model_family(base: str, family: str) -> str:
    """The LoRA family of a model (``ModelEntry.base`` / ``.family``): its latent family, or the built-in tiny
    models' own bases (their layers are narrower than any real model's)."""
    return base if base.startswith("tiny") else family


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(path), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)


class LoraRegistry:
    """LoRAs by name, scanned once at start-up."""

    def __init__(self, folders: tuple[Path, ...] = ()) -> None:
        """``folders``: ``ModelFolders.loras``, in search order (a name found again later is skipped)."""
        self._entries: dict[str, LoraEntry] = {}
        self.refused: dict[str, str] = {}
        for root in folders:
            if root.is_dir():
                self._scan(root, root, 0)

    def _scan(self, root: Path, folder: Path, depth: int) -> None:
        try:
            children = sorted(folder.iterdir())
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            return
        for path in children:
            if path.name.startswith("."):
                continue
            name = path.relative_to(root).with_suffix("").as_posix()
            if path.is_dir():
                if depth + 1 < MAX_DEPTH:
                    self._scan(root, path, depth + 1)
            elif path.suffix.lower() == ".safetensors":
                self._add_file(name, path)
            elif path.suffix.lower() in PICKLE_SUFFIXES:
                self._refuse(name, "pickle files can run code when loaded; use the .safetensors version")

    def _add_file(self, name: str, path: Path) -> None:
        try:
            found = detect(read_shapes(path))
        except Exception as exc:  # a truncated or foreign file must not stop the scan
            self._refuse(name, f"unreadable safetensors file ({str(exc)[:120]})")
            return
        if isinstance(found, str):
            self._refuse(name, found)
            return
        family, text, kind = found
        if name in self._entries:
            log.warning("LoRA %s at %s hides an earlier one with the same name; skipped", name, path)
            return
        self._entries[name] = LoraEntry(name, family, str(path), text, kind)

    def _refuse(self, name: str, reason: str) -> None:
        log.warning("LoRA %s not offered: %s", name, reason)
        self.refused[name] = reason

    def entries(self) -> tuple[LoraEntry, ...]:
        return tuple(self._entries.values())

    def infos(self) -> tuple[LoraInfo, ...]:
        return tuple(e.info for e in self._entries.values())

    def problem(self, name: str, field: str) -> ProtocolError | None:
        """Why ``name`` cannot be used (SPEC.md 9.12: a name the hello does not list is bad_field), or None."""
        if name in self._entries:
            return None
        if name in self.refused:
            return ProtocolError(ErrorCode.NOT_SUPPORTED, f"LoRA {name!r}: {self.refused[name]}", field)
        known = ", ".join(sorted(self._entries)[:8]) or "none are installed"
        return ProtocolError(ErrorCode.BAD_FIELD, f"unknown LoRA {name!r} (known: {known})", field)

    def get(self, name: str) -> LoraEntry:
        return self._entries[name]
