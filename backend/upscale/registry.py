"""Upscaler model files: discovery, safe loading through spandrel, a small cache.

Where: ``ModelFolders.upscale`` (``models/folders.py``: ``<models>/upscale/`` and
``<models>/upscale_models/``, the ComfyUI folder name, plus reused apps' upscaler folders), searched
recursively and again on each look-up, so a file dropped into one is found without a restart. The
models folder's top is not scanned: files there are diffusion checkpoints, and telling them apart
would mean opening every file.

Names: a file's path relative to its folder, with extension ("4x-UltraSharp.safetensors",
"faces/x.pth"). ``load`` and ``resolve`` also accept the name without extension when exactly one
file has it. "lanczos" (no model) is always available. "" resolves to the best installed model:
files whose name says a scale ("4x", "x4", ...) first, then the largest file (a bigger network is
usually the better one), then by name; "lanczos" when there is no model.

Safety: only ``.safetensors`` (no code by construction) and ``.pth`` are loaded. A ``.pth`` is read
with ``torch.load(weights_only=True)``, torch's restricted unpickler that accepts tensors and plain
containers only, then handed to spandrel as a state dict. (spandrel's own ``.pth`` path uses a
restricted unpickler too, but its ``.pt``/``.ckpt`` paths include TorchScript, which runs code;
we never reach them.) Other extensions (``.ckpt``, ``.pt``, ``.bin``) are refused by name.
"""

from __future__ import annotations

import pickle
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from latentbrush.protocol import ErrorCode

from ..events import EngineError, is_out_of_memory

if TYPE_CHECKING:  # spandrel is imported lazily: it takes a while and registers ~40 architectures
    from spandrel import ImageModelDescriptor

LANCZOS = "lanczos"
LOADABLE_SUFFIXES = (".safetensors", ".pth")
REFUSED_SUFFIXES = (".ckpt", ".pt", ".bin", ".pkl", ".pickle")
FIELD = "job.upscale.upscaler"
_SCALE_IN_NAME = re.compile(r"(?:^|[^0-9a-z])(?:[2-8]x|x[2-8])(?:$|[^0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class UpscalerFile:
    name: str
    path: Path
    size: int
    mtime_ns: int


class UpscalerRegistry:
    """Finds upscaler files in ``folders`` (the first folder's file wins a name) and loads them with spandrel
    on ``device``.

    ``dtype`` is what the caller prefers (float16 / bfloat16 on a GPU); a model that does not
    support it runs in float32. ``cache_size`` models stay loaded (least recently used dropped).
    Thread-safe: ``names`` may run on the server thread while ``load`` runs on the worker.
    """

    def __init__(
        self,
        folders: tuple[Path, ...] = (),
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        cache_size: int = 2,
    ) -> None:
        self._folders = tuple(folders)
        self.device = torch.device(device)
        self.dtype = dtype
        self._cache_size = max(1, cache_size)
        self._cache: OrderedDict[str, tuple[UpscalerFile, ImageModelDescriptor]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ discovery

    def folders(self) -> tuple[Path, ...]:
        return tuple(p for p in self._folders if p.is_dir())

    def _scan(self, suffixes: tuple[str, ...]) -> dict[str, UpscalerFile]:
        found: dict[str, UpscalerFile] = {}
        for folder in self.folders():
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder)
                if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in suffixes:
                    continue
                if not path.is_file():
                    continue
                name = rel.as_posix()
                if name not in found and name != LANCZOS:
                    stat = path.stat()
                    found[name] = UpscalerFile(name, path, stat.st_size, stat.st_mtime_ns)
        return found

    def files(self) -> tuple[UpscalerFile, ...]:
        """Loadable files, best first (see module docstring)."""
        files = self._scan(LOADABLE_SUFFIXES).values()
        return tuple(sorted(files, key=lambda f: (not _SCALE_IN_NAME.search(Path(f.name).stem), -f.size, f.name)))

    def names(self) -> tuple[str, ...]:
        """Every usable upscaler name, best model first, "lanczos" last."""
        return (*(f.name for f in self.files()), LANCZOS)

    def resolve(self, name: str) -> str:
        """The canonical name for ``name`` ("" = best installed); EngineError if there is none."""
        if name == LANCZOS:
            return LANCZOS
        files = self.files()
        if name == "":
            return files[0].name if files else LANCZOS
        return self._find(name, files).name

    def _find(self, name: str, files: tuple[UpscalerFile, ...]) -> UpscalerFile:
        for f in files:
            if f.name == name:
                return f
        stems = [f for f in files if f.name.rsplit(".", 1)[0] == name]
        if len(stems) == 1:
            return stems[0]
        if len(stems) > 1:
            choices = ", ".join(f.name for f in stems)
            raise EngineError(ErrorCode.UNKNOWN_UPSCALER, f"'{name}' is ambiguous: {choices}", FIELD)
        refused = self._scan(REFUSED_SUFFIXES)
        match = refused.get(name) or next((f for f in refused.values() if f.name.rsplit(".", 1)[0] == name), None)
        if match is not None:
            raise EngineError(
                ErrorCode.NOT_SUPPORTED,
                f"upscaler file '{match.name}' is a pickle format that can run code when loaded; "
                "only .safetensors and .pth (read with torch's weights-only loader) are used",
                FIELD,
            )
        known = ", ".join(f.name for f in files) or "none installed"
        raise EngineError(ErrorCode.UNKNOWN_UPSCALER, f"no upscaler '{name}' (known: {known}, {LANCZOS})", FIELD)

    # ------------------------------------------------------------------ loading

    def load(self, name: str) -> ImageModelDescriptor:
        """The loaded model for ``name``, cached; EngineError naming the file if it cannot be used."""
        if name == LANCZOS:
            raise EngineError(ErrorCode.NOT_SUPPORTED, "'lanczos' is a resize, not a model", FIELD)
        entry = self._find(self.resolve(name), self.files())
        with self._lock:
            cached = self._cache.get(entry.name)
            if cached is not None and cached[0] == entry:
                self._cache.move_to_end(entry.name)
                return cached[1]
            model = self._load_file(entry)
            self._cache[entry.name] = (entry, model)
            self._cache.move_to_end(entry.name)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return model

    def _load_file(self, entry: UpscalerFile) -> ImageModelDescriptor:
        import spandrel
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        where = f"upscaler file '{entry.name}'"
        try:
            if entry.path.suffix.lower() == ".safetensors":
                state = load_file(str(entry.path), device="cpu")
            else:
                state = torch.load(entry.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise _Refused("does not hold a state dict")
            state = spandrel.canonicalize_state_dict(state)
            descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
        except _Refused as exc:
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{where} {exc}", FIELD)
        except SafetensorError as exc:
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{where} is not a valid safetensors file ({exc})", FIELD)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise EngineError(
                ErrorCode.NOT_SUPPORTED,
                f"{where} is not a plain tensor file; torch's weights-only loader refused it ({first})",
                FIELD,
            )
        except spandrel.UnsupportedModelError:
            unknown = f"{where}: spandrel {spandrel.__version__} does not know this architecture"
            raise EngineError(ErrorCode.NOT_SUPPORTED, unknown, FIELD)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, EOFError) as exc:
            # a truncated zip, a state dict with the wrong shapes, ...: the file is unusable, the server is fine
            reason = f"{where} could not be loaded: {type(exc).__name__}: {exc}"
            raise EngineError(ErrorCode.NOT_SUPPORTED, reason, FIELD)
        if not isinstance(descriptor, spandrel.ImageModelDescriptor):
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{where} is an inpainting model, not an upscaler", FIELD)
        if descriptor.purpose not in ("SR", "Restoration") or descriptor.input_channels not in (1, 3):
            raise EngineError(
                ErrorCode.NOT_SUPPORTED,
                f"{where} is a {descriptor.purpose} model with {descriptor.input_channels} input channels; "
                "only RGB or grey super-resolution and restoration models are used",
                FIELD,
            )
        return self._to_device(descriptor, where)

    def _to_device(self, descriptor: ImageModelDescriptor, where: str) -> ImageModelDescriptor:
        dtype = torch.float32
        if self.device.type != "cpu":
            if self.dtype == torch.float16 and descriptor.supports_half:
                dtype = torch.float16
            elif self.dtype == torch.bfloat16 and descriptor.supports_bfloat16:
                dtype = torch.bfloat16
        try:
            return descriptor.to(self.device, dtype).eval()
        except Exception as exc:
            if is_out_of_memory(exc):
                raise EngineError(ErrorCode.OUT_OF_MEMORY, f"{where} does not fit in {self.device} memory", FIELD)
            raise


class _Refused(Exception):
    """The file loaded but is not something we use."""
