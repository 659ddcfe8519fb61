"""Which ControlNets this backend offers: found in the models folder, recognised from tensor names.

Painters keep ControlNets where their other tools put them: ``controlnet/`` (ComfyUI), ``ControlNet/``
(A1111), or ``controlnets/``, as diffusers folders (``config.json`` naming ``ControlNetModel``) or single
``.safetensors`` files in the diffusers or the original (lllyasviel / A1111) key layout; single files load
offline through the shipped config skeletons ``configs/controlnet-sd15`` and ``controlnet-sdxl``. Like the
checkpoint scan, discovery reads only headers and small JSON files. The family (SD 1.5 or SDXL) comes
from the tensors, the mode (canny, scribble, ...) from the name, as every published ControlNet names it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

log = logging.getLogger(__name__)

CONTROLNET, T2I_ADAPTER = "controlnet", "t2i_adapter"
MODES = ("scribble", "lineart", "softedge", "canny", "depth", "normal", "pose", "tile", "inpaint")
# name words -> mode; the published names use these (control_v11p_sd15_lineart, diffusers_xl_canny_mid, ...)
MODE_WORDS = {
    "scribble": "scribble", "sketch": "scribble", "lineart": "lineart", "softedge": "softedge", "hed": "softedge",
    "pidi": "softedge", "canny": "canny", "depth": "depth", "normal": "normal", "normalbae": "normal",
    "openpose": "pose", "pose": "pose", "tile": "tile", "inpaint": "inpaint",
}
# diffusers layout
HINT = "controlnet_cond_embedding.conv_in.weight"
SDXL_ADD = "add_embedding.linear_1.weight"
CROSS = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
# original (A1111 / lllyasviel) layout, with or without the ``control_model.`` prefix
LDM_HINT = "input_hint_block.0.weight"
LDM_SDXL_ADD = "label_emb.0.0.weight"
LDM_PREFIXES = ("control_model.", "")
# T2I-Adapters: diffusers' T2IAdapter keys, and the original TencentARC ones (no diffusers config to load them by)
ADAPTER_KEY = "adapter.conv_in.weight"
ADAPTER_ORIGINAL_KEY = "body.0.block1.weight"


@dataclass(frozen=True)
class ControlEntry:
    name: str
    mode: str  # one of MODES, or "" when the name does not say
    family: str  # "sd15" or "sdxl": the checkpoints it steers
    layout: str  # "diffusers" (folder or file) or "ldm" (the original single-file keys)
    location: str
    source: str  # "file" or "folder"
    kind: str = CONTROLNET  # or T2I_ADAPTER: a small network that adds features to the UNet's down blocks


def mode_from_name(name: str) -> str:
    """The control mode a file or folder name states ("" when none does)."""
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        if word in MODE_WORDS:
            return MODE_WORDS[word]
    return ""


def detect_keys(keys: set[str]) -> tuple[str, str] | None:
    """(family, layout) of a ControlNet state dict's tensor names, or None when it is none."""
    if HINT in keys:
        return ("sdxl" if SDXL_ADD in keys else "sd15"), "diffusers"
    for prefix in LDM_PREFIXES:
        if prefix + LDM_HINT in keys:
            return ("sdxl" if prefix + LDM_SDXL_ADD in keys else "sd15"), "ldm"
    return None


def folder_family(config: dict) -> tuple[str, str] | None:
    """(kind, family) of a diffusers folder from its config.json (None: neither a ControlNet nor a T2I-Adapter)."""
    if config.get("_class_name") == "ControlNetModel":
        return CONTROLNET, "sdxl" if config.get("addition_embed_type") == "text_time" else "sd15"
    if config.get("_class_name") == "T2IAdapter":  # only SDXL's adapter type has SDXL's three-level layout
        return T2I_ADAPTER, "sdxl" if config.get("adapter_type") == "full_adapter_xl" else "sd15"
    return None


class ControlRegistry:
    """ControlNets by name, scanned once at start-up."""

    def __init__(self, folders: tuple[Path, ...] = ()) -> None:
        """``folders``: ``ModelFolders.controlnet``, in search order (a name found again later is skipped)."""
        self._entries: dict[str, ControlEntry] = {}
        self.refused: dict[str, str] = {}
        for root in folders:
            if root.is_dir():
                self._scan(root)

    def _scan(self, root: Path) -> None:
        for path in sorted(root.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_dir():
                self._add_folder(path)
            elif path.suffix.lower() == ".safetensors":
                self._add_file(path)
            elif path.suffix.lower() in (".ckpt", ".pth", ".pt", ".bin"):
                self._refuse(path.stem, "pickle files can run code when loaded; use the .safetensors version")

    def _add_folder(self, folder: Path) -> None:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.debug("%s has no readable config.json; not a ControlNet folder", folder)
            return
        found = folder_family(config)
        if found is None:
            log.debug("%s is a %s, not a ControlNet", folder, config.get("_class_name"))
            return
        kind, family = found
        self._add(ControlEntry(folder.name, mode_from_name(folder.name), family, "diffusers", str(folder), "folder",
                               kind))

    def _add_file(self, path: Path) -> None:
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
        except Exception as exc:  # a truncated or foreign file must not stop the scan
            self._refuse(path.stem, f"unreadable safetensors file ({str(exc)[:120]})")
            return
        found = detect_keys(keys)
        if ADAPTER_KEY in keys or ADAPTER_ORIGINAL_KEY in keys:
            self._refuse(path.stem, "a T2I-Adapter as a single file: use its diffusers folder (config.json + weights, "
                                    "e.g. TencentARC/t2i-adapter-sketch-sdxl-1.0)")
            return
        if found is None:
            self._refuse(path.stem, "not a ControlNet or T2I-Adapter (control LoRAs are not supported yet)")
            return
        family, layout = found
        if family == "sdxl" and layout == "ldm":  # diffusers' converter drops their label embedding
            self._refuse(path.stem, "SDXL ControlNets in the original single-file layout cannot be converted; "
                                    "use the diffusers version of the same ControlNet")
            return
        self._add(ControlEntry(path.stem, mode_from_name(path.stem), family, layout, str(path), "file"))

    def _add(self, entry: ControlEntry) -> None:
        if entry.name in self._entries:
            log.warning("ControlNet %s at %s hides an earlier one with the same name; skipped", entry.name,
                        entry.location)
            return
        self._entries[entry.name] = entry

    def _refuse(self, name: str, reason: str) -> None:
        log.warning("ControlNet %s not offered: %s", name, reason)
        self.refused[name] = reason

    def entries(self) -> tuple[ControlEntry, ...]:
        return tuple(self._entries.values())

    def get(self, name: str) -> ControlEntry | None:
        return self._entries.get(name)

    def for_mode(self, mode: str, family: str) -> ControlEntry | None:
        """The first ControlNet of ``mode`` for ``family`` (what a control input with no ``model`` uses)."""
        return next((e for e in self._entries.values() if e.mode == mode and e.family == family), None)
