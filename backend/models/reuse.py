"""The model folders of other painting apps, used in place (``--reuse PATH``): A1111 / Forge, ComfyUI, InvokeAI.

Each layout is a function from the app's folder to ``ModelFolders`` (existing folders only, nothing copied):

- A1111 / Forge: ``models/Stable-diffusion``, ``models/Lora``, ``models/ControlNet``, ``models/ESRGAN``, ...,
  ``embeddings/`` (the webui folder or its ``models`` folder);
- ComfyUI: ``models/checkpoints``, ``models/loras``, ... (the ComfyUI folder or its ``models`` folder), plus the
  ``extra_model_paths.yaml`` next to it, which may also be given itself: sections with an optional
  ``base_path`` (relative to the file) and per-kind entries of one path or several, one a line;
- InvokeAI: ``models/<base>/<type>/`` and the model records in ``databases/invokeai.db`` (read-only), which
  also know models installed in place elsewhere on the disk.

``recognise`` tells which app a path belongs to; ``gather`` merges ours and the reused trees for the engine.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .folders import A1111_ANNOTATORS, COMFYUI_ANNOTATORS, ModelFolders, existing

log = logging.getLogger(__name__)

Kinds = Mapping[str, Sequence[str | Path]]  # ModelFolders field -> folders relative to a root

A1111_KINDS: Kinds = {
    "checkpoints": ("models/Stable-diffusion",),
    "loras": ("models/Lora", "models/LyCORIS"),
    "embeddings": ("embeddings",),
    "controlnet": ("models/ControlNet",),
    "upscale": ("models/ESRGAN", "models/RealESRGAN", "models/SwinIR", "models/DAT"),  # DAT: Forge's
    "vae": ("models/VAE",),
    "taesd": ("models/VAE-approx",),
    "annotators": (A1111_ANNOTATORS, "models/ControlNetPreprocessor"),  # the extension's; Forge's built-in one
}
# ComfyUI's folder names (folder_paths.py) -> our kinds; the same names key extra_model_paths.yaml's entries
COMFYUI_NAMES = {
    "checkpoints": "checkpoints", "diffusers": "checkpoints", "diffusion_models": "checkpoints", "unet": "checkpoints",
    "loras": "loras", "embeddings": "embeddings", "controlnet": "controlnet", "t2i_adapter": "controlnet",
    "ipadapter": "ipadapter", "clip_vision": "clip_vision", "upscale_models": "upscale", "vae": "vae",
    "vae_approx": "taesd",
}
COMFYUI_EXTRA = "extra_model_paths.yaml"
# InvokeAI: models/<base>/<type>/, and the type column of its model records
INVOKEAI_BASES = ("sd-1", "sd-2", "sdxl", "sdxl-refiner", "sd-3", "flux", "any")
INVOKEAI_TYPES = {
    "main": "checkpoints", "lora": "loras", "embedding": "embeddings", "controlnet": "controlnet",
    "t2i_adapter": "controlnet", "ip_adapter": "ipadapter", "clip_vision": "clip_vision",
    "spandrel_image_to_image": "upscale", "vae": "vae",
}
INVOKEAI_CONFIG = "invokeai.yaml"
INVOKEAI_DB = Path("databases/invokeai.db")


@dataclass(frozen=True)
class ReusedTree:
    app: str  # "A1111", "Forge", "ComfyUI", "InvokeAI"
    root: Path  # the folder (or extra_model_paths.yaml) as recognised
    folders: ModelFolders


def _folders(found: Mapping[str, Iterable[Path]]) -> ModelFolders:
    """ModelFolders of the existing folders among ``found`` (kind -> paths); the vae folders hold TAESDs too."""
    kinds = {kind: existing(paths) for kind, paths in found.items()}
    kinds["taesd"] = existing([*kinds.get("taesd", ()), *kinds.get("vae", ())])
    return ModelFolders(**kinds)


def _under(root: Path, kinds: Kinds) -> dict[str, list[Path]]:
    return {kind: [root / rel for rel in rels] for kind, rels in kinds.items()}


# ---------------------------------------------------------------------------------------------- A1111 / Forge


def a1111_root(path: Path) -> Path | None:
    """The webui folder of ``path`` (the webui folder, its models folder, or Forge's package folder)."""
    for root in (path, path.parent if path.name == "models" else None, path / "webui"):
        if root is not None and (root / "models" / "Stable-diffusion").is_dir():
            return root
    return None


def a1111_folders(path: Path) -> ModelFolders:
    root = a1111_root(path) or path
    return _folders(_under(root, A1111_KINDS))


# ---------------------------------------------------------------------------------------------- ComfyUI


def comfyui_root(path: Path) -> Path | None:
    """The ComfyUI folder of ``path`` (the ComfyUI folder, its models folder, or the portable package's folder)."""
    for root in (path, path.parent if path.name == "models" else None, path / "ComfyUI"):
        if root is not None and (root / "models" / "checkpoints").is_dir():
            return root
    return None


def comfyui_folders(path: Path) -> ModelFolders:
    """A ComfyUI folder's models, then those its ``extra_model_paths.yaml`` names (when it has one)."""
    root = comfyui_root(path) or path
    found: dict[str, list[Path]] = {}
    for name, kind in COMFYUI_NAMES.items():
        found.setdefault(kind, []).append(root / "models" / name)
    found["annotators"] = [root / COMFYUI_ANNOTATORS]
    own = _folders(found)
    extra = root / COMFYUI_EXTRA
    return own.merge(comfyui_extra_paths(extra)) if extra.is_file() else own


def _expand(text: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(text.strip())))


def comfyui_extra_paths(yaml_file: Path) -> ModelFolders:
    """The folders an ``extra_model_paths.yaml`` names, ``is_default`` sections first; ValueError when unreadable."""
    try:
        config = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the ComfyUI paths file {yaml_file}: {exc}") from exc
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{yaml_file} is not a ComfyUI extra_model_paths.yaml (no sections of paths)")
    here = yaml_file.resolve().parent
    sections = [s for s in config.values() if isinstance(s, dict)]
    sections.sort(key=lambda s: not s.get("is_default"))  # ComfyUI looks in a default section's folders first
    found: dict[str, list[Path]] = {}
    for section in sections:
        base = section.get("base_path")
        base_path = here / _expand(base) if isinstance(base, str) and base.strip() else None
        for name, value in section.items():
            kind = COMFYUI_NAMES.get(str(name))
            if kind is None:  # base_path, is_default, and kinds we do not use (clip, hypernetworks, custom_nodes...)
                continue
            if not isinstance(value, str):
                log.warning("%s: %s is not a path (%r); ignored", yaml_file, name, value)
                continue
            for line in value.splitlines():
                if line.strip():
                    folder = (base_path or here) / _expand(line)  # a path relative to base_path, else the file
                    found.setdefault(kind, []).append(Path(os.path.normpath(folder)))
    return _folders(found)


# ---------------------------------------------------------------------------------------------- InvokeAI


def invokeai_root(path: Path) -> Path | None:
    """The InvokeAI root of ``path`` (the root, or its models folder)."""
    for root in (path, path.parent if path.name == "models" else None):
        if root is None:
            continue
        if (root / INVOKEAI_CONFIG).is_file() or (root / INVOKEAI_DB).is_file():
            return root
        if any((root / "models" / base / kind).is_dir() for base in INVOKEAI_BASES for kind in INVOKEAI_TYPES):
            return root
    return None


def _invokeai_config(root: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load((root / INVOKEAI_CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        log.warning("cannot read %s (%s); assuming InvokeAI's default folders", root / INVOKEAI_CONFIG, exc)
        return {}
    return config if isinstance(config, dict) else {}


def invokeai_records(database: Path) -> list[tuple[str, str]]:
    """(path, type) of every model InvokeAI's database records, read-only; [] (logged) when it cannot be read."""
    if not database.is_file():
        return []
    try:
        with sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0) as db:
            rows = db.execute("SELECT path, type FROM models").fetchall()
    except sqlite3.Error as exc:  # locked, not a database, another schema: the folder walk still finds most
        log.warning("cannot read InvokeAI's model records in %s (%s); using its models folder only", database, exc)
        return []
    return [(path, kind) for path, kind in rows if isinstance(path, str) and isinstance(kind, str) and path]


def invokeai_folders(path: Path) -> ModelFolders:
    root = invokeai_root(path) or path
    config = _invokeai_config(root)
    models = root / _expand(str(config.get("models_dir") or "models"))
    database = root / _expand(str(config.get("db_dir") or INVOKEAI_DB.parent)) / INVOKEAI_DB.name
    found: dict[str, list[Path]] = {}
    for base in INVOKEAI_BASES:
        for name, kind in INVOKEAI_TYPES.items():
            found.setdefault(kind, []).append(models / base / name)
    for where, model_type in invokeai_records(database):
        record_kind = INVOKEAI_TYPES.get(model_type)
        if record_kind is None:  # a kind this server does not use (T5 encoders, CLIP-L, ...)
            continue
        location = models / _expand(where)  # an absolute path (a model installed in place) stays as it is
        # the registries scan folders of models: the record's parent, except InvokeAI's own IP-Adapter folders
        # (ip_adapter.bin inside), which are scanned themselves
        is_folder = record_kind == "ipadapter" and location.is_dir()
        found[record_kind].append(location if is_folder else location.parent)
    return _folders(found)


# ---------------------------------------------------------------------------------------------- detection


def recognise(path: Path) -> ReusedTree:
    """Which app's models ``path`` holds; ValueError naming what was looked for when it is none of them."""
    path = _expand(str(path))
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return ReusedTree("ComfyUI", path, comfyui_extra_paths(path))
    if not path.is_dir():
        raise ValueError(f"{path}: no such folder or file")
    if (root := invokeai_root(path)) is not None:
        return ReusedTree("InvokeAI", root, invokeai_folders(root))
    if (root := a1111_root(path)) is not None:
        app = "Forge" if (root / "modules_forge").is_dir() else "A1111"
        return ReusedTree(app, root, a1111_folders(root))
    if (root := comfyui_root(path)) is not None:
        return ReusedTree("ComfyUI", root, comfyui_folders(root))
    raise ValueError(
        f"{path} is not a folder of models this server knows. It looks for an A1111 / Forge folder "
        "(models/Stable-diffusion), a ComfyUI folder (models/checkpoints) or its extra_model_paths.yaml, or an "
        "InvokeAI folder (invokeai.yaml, databases/invokeai.db or models/<base>/<type>)")


def reuse_folders(path: Path) -> ModelFolders:
    return recognise(path).folders


def gather(models_dir: Path | None, reuse: Iterable[Path] = ()) -> ModelFolders:
    """Our models folder's folders, then each reused tree's in order (one INFO line per tree)."""
    trees = [recognise(path) for path in reuse]
    for tree in trees:
        log.info("reusing %s models at %s: %s", tree.app, tree.root, tree.folders.summary())
    return ModelFolders.from_models_dir(models_dir).merge(*(tree.folders for tree in trees))
