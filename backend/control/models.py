"""From a job's ``control`` inputs to ControlNets and control images the pipeline call takes.

``Controls`` owns the ControlNet registry (plus the built-in tiny ones) and the loaded ControlNets, which
stay cached: they are a fraction of a checkpoint's size and a painter reuses the same few. ``check``
names the first input the server cannot do (for admission, before any work); ``prepare`` makes the
``ControlImage``s of a job for a loaded model.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from latentbrush.protocol import ErrorCode, JobInput, ProtocolError

from ..events import EngineError
from ..models.clip_vocab import CONFIGS_DIR
from ..models.folders import ModelFolders
from .preprocessors import NONE, Preprocessor, available
from .registry import CONTROLNET, T2I_ADAPTER, ControlEntry, ControlRegistry
from .tiny import TINY_MODES, build_tiny_controlnet

log = logging.getLogger(__name__)

TINY_FAMILY = "tiny"  # the built-in tiny checkpoints take only the built-in tiny ControlNets
KEPT = 4  # loaded ControlNets kept in memory


@dataclass(frozen=True)
class ControlImage:
    """One control of a pipeline call: the ControlNet, its image (H x W x 3 uint8, the context's size) and span."""

    model: Any  # diffusers.ControlNetModel
    image: np.ndarray  # uint8 RGB; an inpaint condition is float32 RGB in 0..1 with -1 where it repaints
    weight: float
    start: float
    end: float
    mode: str = ""
    kind: str = CONTROLNET  # or T2I_ADAPTER


def inpaint_condition(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What an inpaint ControlNet (control_v11p_sd15_inpaint) was trained on: the picture in 0..1 with the
    pixels to repaint at -1, so it sees the hole and paints what fits around it."""
    condition = rgb.astype(np.float32) / 255.0
    condition[mask >= 128] = -1.0
    return condition


def control_family(base: str, family: str) -> str:
    """The ControlNet family a checkpoint takes: its latent family, or the tiny one for the built-ins."""
    return TINY_FAMILY if base == TINY_FAMILY else family


def flatten(rgba: np.ndarray, background: int) -> np.ndarray:
    """RGBA over a grey level: a transparent layer's empty part is paper (scribbles) or black (ready controls)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + background * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


class Controls:
    def __init__(self, folders: ModelFolders, device: Any, dtype: Any, configs_dir: Path = CONFIGS_DIR) -> None:
        self.registry = ControlRegistry(folders.controlnet)
        self.configs_dir = configs_dir  # controlnet-sd15/, controlnet-sdxl/: the configs single files lack
        self.builtin = {f"tiny-{mode}": ControlEntry(f"tiny-{mode}", mode, TINY_FAMILY, "builtin", "", "builtin")
                        for mode in TINY_MODES}
        self.preprocessors: dict[str, Preprocessor] = available(folders.annotators, device)
        self.device, self.dtype = device, dtype
        self._loaded: OrderedDict[str, Any] = OrderedDict()

    def entries(self) -> tuple[ControlEntry, ...]:
        """Configured ControlNets first, the built-in tiny ones last (as the model list does)."""
        return (*self.registry.entries(), *self.builtin.values())

    def _entry(self, item: JobInput, family: str) -> ControlEntry | None:
        name = item.param("model")
        if name:
            return self.registry.get(name) or self.builtin.get(name)
        return self.for_mode(item.param("mode") or self._mode_of(item.param("preprocessor")), family)

    def for_mode(self, mode: str, family: str) -> ControlEntry | None:
        """The first ControlNet of ``mode`` for ``family`` models (configured ones before the built-in)."""
        candidates = [e for e in self.entries() if e.family == family and e.mode == mode]
        return candidates[0] if candidates else None

    def _mode_of(self, preprocessor: str) -> str:
        found = self.preprocessors.get(preprocessor)
        return found.modes[0] if found is not None and found.modes[0] else ""

    def check(self, items: Sequence[tuple[JobInput, str]], family: str, has_mask: bool = True,
              no_adapters: str | None = None) -> ProtocolError | None:
        """The first ``(input, where)`` this server cannot run for a model of ``family``; None when all can.
        An inpaint ControlNet needs the hole (``has_mask``); ``no_adapters`` says why this job cannot take
        T2I-Adapters (diffusers has adapter pipelines for Generate only), None when it can."""
        kinds: set[str] = set()
        for item, where in items:
            entry, error = self._resolve(item, where, family)
            if entry is None:
                return error
            field = f"{where}.{'model' if item.param('model') else 'mode'}"
            if entry.mode == "inpaint" and not has_mask:
                message = "an inpaint control repaints the selection: this job has none (mask)"
                return ProtocolError(ErrorCode.BAD_FIELD, message, field)
            if entry.kind == T2I_ADAPTER:
                if no_adapters is not None:
                    return ProtocolError(ErrorCode.NOT_SUPPORTED, f"{entry.name!r} is a T2I-Adapter: {no_adapters}",
                                         field)
                if item.param("start") > 0:
                    return ProtocolError(ErrorCode.NOT_SUPPORTED, "a T2I-Adapter steers from the first step: "
                                         "start must be 0", f"{where}.start")
                ends = {i.param("end") for i, _ in items}
                if len(ends) > 1:
                    return ProtocolError(ErrorCode.NOT_SUPPORTED, "T2I-Adapters of one job share their end",
                                         f"{where}.end")
                if family != "sdxl" and item.param("end") < 1:  # diffusers' SD 1.5 adapter pipeline has no factor
                    return ProtocolError(ErrorCode.NOT_SUPPORTED, "an SD 1.5 T2I-Adapter steers every step: end "
                                         "must be 1", f"{where}.end")
            kinds.add(entry.kind)
            if len(kinds) > 1:
                return ProtocolError(ErrorCode.NOT_SUPPORTED, "a job is steered by ControlNets or by T2I-Adapters, "
                                     "not both", field)
        return None

    def _resolve(self, item: JobInput, where: str, family: str) -> tuple[ControlEntry | None, ProtocolError | None]:
        """The ControlNet (or adapter) an input names or its mode picks, or why there is none that fits."""
        preprocessor = item.param("preprocessor")
        if preprocessor not in self.preprocessors:
            offered = ", ".join(repr(p) for p in self.preprocessors)
            return None, ProtocolError(ErrorCode.NOT_SUPPORTED, f"no preprocessor {preprocessor!r} here (offered: "
                                       f"{offered})", f"{where}.preprocessor")
        entry = self._entry(item, family)
        name = item.param("model")
        if entry is None and name in self.registry.refused:  # a file we know and cannot use
            reason = self.registry.refused[name]
            return None, ProtocolError(ErrorCode.NOT_SUPPORTED, f"control model {name!r}: {reason}", f"{where}.model")
        if entry is None:
            what = f"control model {name!r}" if name else (
                f"ControlNet for mode {item.param('mode') or self._mode_of(preprocessor)!r} and {family} models")
            return None, ProtocolError(ErrorCode.NOT_SUPPORTED, f"no {what} on this server",
                                       f"{where}.{'model' if name else 'mode'}")
        if entry.family != family:
            message = f"control model {entry.name!r} is for {entry.family} models, the job's model is {family}"
            return None, ProtocolError(ErrorCode.NOT_SUPPORTED, message, f"{where}.model")
        return entry, None

    def prepare(self, items: Sequence[tuple[JobInput, str, np.ndarray]], family: str) -> tuple[ControlImage, ...]:
        """Control images (preprocessed, context-sized) with their loaded ControlNets; EngineError as ``check``."""
        # admission made the job-level checks (a mask for inpaint controls, adapters for Generate only)
        error = self.check([(item, where) for item, where, _ in items], family)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        out = []
        for item, _where, rgba in items:
            preprocessor = self.preprocessors[item.param("preprocessor")]
            picture = flatten(rgba, 0 if preprocessor.name == NONE else 255)
            entry = self._entry(item, family)
            if entry is None:  # check() said otherwise a line ago
                raise EngineError(ErrorCode.INTERNAL, "control model vanished", "job.inputs")
            out.append(ControlImage(self.load(entry), preprocessor.run(picture), item.param("weight"),
                                    item.param("start"), item.param("end"), entry.mode, entry.kind))
        return tuple(out)

    def auto_inpaint(self, family: str) -> ControlEntry | None:
        """The inpaint ControlNet in the models folder for ``family``, which steers every inpaint of a model
        that is not an inpainting model (the built-in tiny ones never do: they have learnt nothing)."""
        return next((e for e in self.registry.entries() if e.family == family and e.mode == "inpaint"), None)

    def adopt(self, entry: ControlEntry, model: Any) -> None:
        """Offer a ControlNet built elsewhere (benchmarks build full-size random-weight ones in memory)."""
        self.builtin[entry.name] = entry
        self._loaded[entry.name] = model.to(self.device)

    def load(self, entry: ControlEntry) -> Any:
        """The ControlNet of ``entry`` on the engine's device (loaded once, then cached)."""
        model = self._loaded.get(entry.name)
        if model is None:
            model = self._load(entry).to(self.device, self.dtype)
            self._loaded[entry.name] = model
            while len(self._loaded) > KEPT:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(entry.name)
        return model

    def _load(self, entry: ControlEntry) -> Any:
        from diffusers import ControlNetModel, T2IAdapter

        if entry.kind == T2I_ADAPTER:  # diffusers folders only (the registry refuses single files)
            return T2IAdapter.from_pretrained(entry.location, local_files_only=True)
        if entry.source == "builtin":
            return build_tiny_controlnet()
        if entry.source == "folder":
            return ControlNetModel.from_pretrained(entry.location, local_files_only=True)
        config = self.configs_dir / f"controlnet-{entry.family}"
        try:
            return ControlNetModel.from_single_file(entry.location, config=str(config), local_files_only=True)
        except (ValueError, RuntimeError, KeyError) as exc:  # a variant architecture ("mid", "small", LoRA-style)
            log.warning("loading ControlNet %s failed: %s", entry.name, exc)
            message = (f"control model {entry.name!r} does not have the standard {entry.family} ControlNet "
                       "architecture; use its diffusers folder (config.json + weights)")
            raise EngineError(ErrorCode.NOT_SUPPORTED, message, "job.inputs") from exc
