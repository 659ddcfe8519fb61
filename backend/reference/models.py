"""From a job's ``reference`` inputs to IP-Adapters on a pipeline, and off it again.

``References`` owns the adapter / encoder registry (plus the built-in tiny pair). ``check`` names the first input
the server cannot do (for admission, before any work); ``prepare`` makes the ``ReferenceImage``s of a job;
``attached`` puts them on a pipeline with diffusers' ``load_ip_adapter`` for one call and takes them off with
``unload_ip_adapter`` afterwards, so a later job (and every pipeline sharing the UNet: the task variants and the
ControlNet pipelines made by ``from_pipe``) runs exactly as if no reference had ever been used. Image encoders
are the big part (ViT-H is 2.5 GB) and stay cached; adapter files are re-read per call (from the page cache).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from latentbrush.protocol import ErrorCode, JobInput, ProtocolError

from ..control.models import TINY_FAMILY, flatten  # the built-in tiny checkpoints take the built-in tiny adapter
from ..events import EngineError
from ..models.folders import ModelFolders
from .modes import MODES, ScaleConfig, block_scales, scales_at
from .registry import AdapterEntry, EncoderEntry, ReferenceRegistry
from .tiny import TINY_EMBED_DIM, build_tiny_adapter, build_tiny_encoder, encoder_config

log = logging.getLogger(__name__)

TINY_ADAPTER = AdapterEntry("tiny-ip-adapter", TINY_FAMILY, "basic", TINY_EMBED_DIM, "", "builtin")
TINY_ENCODER = EncoderEntry("tiny-clip-vision", TINY_EMBED_DIM, encoder_config().hidden_size, "")
KEPT_ENCODERS = 2
BACKGROUND = 255  # a reference layer's transparent part reads as white paper


@dataclass(frozen=True)
class ReferenceImage:
    """One reference of a pipeline call: its adapter and encoder, the picture (H x W x 3 uint8) and how it acts."""

    adapter: AdapterEntry
    encoder: EncoderEntry
    image: np.ndarray
    mode: str
    weight: float
    start: float
    end: float


def reference_picture(rgba: np.ndarray) -> np.ndarray | None:
    """The reference's own picture: cropped to its opaque part (a layer read over the whole canvas is mostly
    empty around a pasted photo), flattened over white. None when nothing in it is opaque."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        return None
    alpha = rgba[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return None
    return flatten(rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], BACKGROUND)


class References:
    def __init__(self, folders: ModelFolders, device: Any, dtype: Any) -> None:
        self.registry = ReferenceRegistry(folders.ipadapter, folders.clip_vision)
        self.builtin = {TINY_ADAPTER.name: TINY_ADAPTER}
        self.device, self.dtype = device, dtype
        self._encoders: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def entries(self) -> tuple[AdapterEntry, ...]:
        """Configured adapters first, the built-in tiny one last (as the model list does)."""
        return (*self.registry.adapters(), *self.builtin.values())

    def _adapter(self, item: JobInput, family: str) -> AdapterEntry | None:
        name = item.param("model")
        if name:
            return next((e for e in self.entries() if e.name == name), None)
        # "": the family's first adapter, one with an encoder here first, then the basic kind (what "IP-Adapter"
        # means); an adapter without an encoder is picked only to name the missing encoder in check()
        family_adapters = [e for e in self.entries() if e.family == family]
        return min(family_adapters, key=lambda e: (self._encoder(e) is None, e.kind != "basic"), default=None)

    def _encoder(self, adapter: AdapterEntry) -> EncoderEntry | None:
        if adapter.source == "builtin":
            return TINY_ENCODER
        return next((e for e in self.registry.encoders() if e.fits(adapter)), None)

    def check(self, items: Sequence[tuple[JobInput, str]], family: str) -> ProtocolError | None:
        """The first ``(input, where)`` this server cannot run for a model of ``family``; None when all can."""
        shared: EncoderEntry | None = None
        for item, where in items:
            name, mode = item.param("model"), item.param("mode")
            if mode not in MODES:  # the protocol refuses others; a direct caller may not have asked it
                return ProtocolError(ErrorCode.NOT_SUPPORTED, f"no reference mode {mode!r}", f"{where}.mode")
            entry = self._adapter(item, family)
            if entry is None and name in self.registry.refused:
                message = f"reference model {name!r}: {self.registry.refused[name]}"
                return ProtocolError(ErrorCode.NOT_SUPPORTED, message, f"{where}.model")
            if entry is None:
                what = f"reference model {name!r}" if name else f"IP-Adapter for {family} models"
                return ProtocolError(ErrorCode.NOT_SUPPORTED, f"no {what} on this server", f"{where}.model")
            if entry.family != family:
                message = f"reference model {entry.name!r} is for {entry.family} models, the job's model is {family}"
                return ProtocolError(ErrorCode.NOT_SUPPORTED, message, f"{where}.model")
            encoder = self._encoder(entry)
            if encoder is None:
                width = f"{entry.encoder_dim}-wide {'hidden states' if entry.hidden_states else 'embeddings'}"
                message = (f"reference model {entry.name!r} needs a CLIP image encoder with {width} in clip_vision/ "
                           "(a transformers folder: config.json + model.safetensors); none here fits")
                return ProtocolError(ErrorCode.NOT_SUPPORTED, message, f"{where}.model")
            if shared is not None and encoder != shared:  # diffusers pipelines hold one image encoder
                message = (f"reference model {entry.name!r} needs the image encoder {encoder.name!r}, an earlier "
                           f"reference {shared.name!r}; one job's references must share one encoder")
                return ProtocolError(ErrorCode.NOT_SUPPORTED, message, f"{where}.model")
            shared = encoder
        return None

    def prepare(self, items: Sequence[tuple[JobInput, str, np.ndarray]], family: str) -> tuple[ReferenceImage, ...]:
        """The job's references with their adapters and encoder; EngineError as ``check`` says, or for a picture
        with nothing opaque in it."""
        error = self.check([(item, where) for item, where, _ in items], family)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        out = []
        for item, where, rgba in items:
            picture = reference_picture(rgba)
            if picture is None:
                raise EngineError(ErrorCode.BAD_IMAGE, "the reference picture is empty (fully transparent)",
                                  f"{where}.blob")
            entry = self._adapter(item, family)
            encoder = self._encoder(entry) if entry is not None else None
            if entry is None or encoder is None:  # check() said otherwise a line ago
                raise EngineError(ErrorCode.INTERNAL, "reference model vanished", f"{where}.model")
            out.append(ReferenceImage(entry, encoder, picture, item.param("mode"), item.param("weight"),
                                      item.param("start"), item.param("end")))
        return tuple(out)

    # ------------------------------------------------------------------ on a pipeline

    @contextmanager
    def attached(self, pipe: Any, refs: Sequence[ReferenceImage], steps: int) -> Iterator[ReferenceSchedule]:
        """``refs`` loaded onto ``pipe`` (one adapter per reference) for the calls inside the block; the block
        gets the per-step scale schedule (``steps``: how many steps the call runs). Afterwards the UNet has its
        own attention processors again and ``pipe`` its own image encoder and feature extractor."""
        saved = {name: getattr(pipe, name) for name in ("image_encoder", "feature_extractor") if hasattr(pipe, name)}
        encoder = refs[0].encoder
        key = (encoder.name, str(pipe.unet.device), str(pipe.unet.dtype))
        cached = self._encoders.get(key)
        # the feature extractor load_ip_adapter makes fits the encoder's image size: start from none
        pipe.register_modules(image_encoder=cached, **({"feature_extractor": None} if "feature_extractor" in saved
                                                         else {}))
        try:
            self._load(pipe, refs, encoder, cached is None)
            if cached is None:
                self._encoders[key] = pipe.image_encoder
                while len(self._encoders) > KEPT_ENCODERS:
                    self._encoders.popitem(last=False)
            configs = [block_scales(r.mode, pipe.unet.config, r.weight) for r in refs]
            schedule = ReferenceSchedule(configs, [(r.start, r.end) for r in refs], steps)
            schedule.apply(pipe, 0)
            yield schedule
        finally:  # also after a failed load: unloading a UNet without adapters only renews its processors
            pipe.unload_ip_adapter()
            pipe.register_modules(**saved)

    def _load(self, pipe: Any, refs: Sequence[ReferenceImage], encoder: EncoderEntry, with_encoder: bool) -> None:
        sources: list[Any] = []
        names: list[str] = []
        for ref in refs:
            if ref.adapter.source == "builtin":
                sources.append(build_tiny_adapter())
                names.append(ref.adapter.name)
            else:
                sources.append(str(Path(ref.adapter.location).parent))
                names.append(Path(ref.adapter.location).name)
        folder = None
        if with_encoder and encoder.location:
            # load_ip_adapter reads the encoder at a path below the adapter's folder: say where clip_vision/ is
            folder = Path(os.path.relpath(encoder.location, sources[0])).as_posix()
        elif with_encoder:
            pipe.register_modules(image_encoder=build_tiny_encoder().to(pipe.unet.device, pipe.unet.dtype))
        try:
            pipe.load_ip_adapter(sources, subfolder=[""] * len(refs), weight_name=names, image_encoder_folder=folder,
                                 local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("loading IP-Adapter(s) %s failed: %s", ", ".join(names), exc)
            message = f"reference model(s) {', '.join(r.adapter.name for r in refs)} do not fit this model ({exc})"
            raise EngineError(ErrorCode.NOT_SUPPORTED, message[:400], "job.inputs") from exc


class ReferenceSchedule:
    """Each adapter's scale at each step: its mode's blocks at its weight inside its span, 0 outside."""

    def __init__(self, configs: Sequence[ScaleConfig], spans: Sequence[tuple[float, float]], steps: int) -> None:
        self.configs, self.spans, self.steps = list(configs), list(spans), max(1, steps)

    def apply(self, pipe: Any, step: int) -> None:
        pipe.set_ip_adapter_scale(scales_at(min(step, self.steps - 1), self.steps, self.configs, self.spans))
