"""LoRAs on a loaded model: diffusers' ``load_lora_weights(adapter_name=...)`` once per file, ``set_adapters`` per job.

The adapters live in the UNet and text encoders, which every pipeline of a model shares (``from_pipe``), so
they are tracked per UNet: a file loads once per model, and a job that only changes a weight re-weights the
loaded adapter. A job without LoRAs disables them all (peft then runs the base layers alone: the same
numbers as a model that never had one). Past ``MAX_LOADED`` files per model the least recently used that
the job does not need is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from latentbrush.protocol import ErrorCode
from safetensors.torch import load_file

from ..events import EngineError
from .registry import LoraEntry

log = logging.getLogger(__name__)

MAX_LOADED = 8  # adapters kept per model; an SD 1.5 LoRA is 10-150 MB


@dataclass(frozen=True)
class ActiveLora:
    entry: LoraEntry
    weight: float
    field: str  # where the job names it, for errors


@dataclass
class LoraStats:
    loads: int = 0  # files read and injected (a re-weighted adapter is no load)


STATS = LoraStats()
# the denoiser (UNet, or a DiT's transformer) -> file -> adapter name, least recently used first
_LOADED: weakref.WeakKeyDictionary[Any, OrderedDict[str, str]] = weakref.WeakKeyDictionary()


def adapter_name(entry: LoraEntry) -> str:
    """A peft adapter name for a file: module-attribute safe (LoRA names have dots and slashes)."""
    return "lora_" + hashlib.sha1(entry.location.encode("utf-8")).hexdigest()[:16]


def apply_loras(pipe: Any, loras: tuple[ActiveLora, ...], model_name: str) -> None:
    """Make exactly ``loras`` (at their weights) active on ``pipe``'s UNet and text encoders."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if denoiser is None:
        if loras:
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{model_name} takes no LoRAs", loras[0].field)
        return
    loaded = _LOADED.setdefault(denoiser, OrderedDict())
    if not loras:
        if loaded:
            pipe.disable_lora()
        return
    for lora in loras:
        _ensure_loaded(pipe, loaded, lora, model_name, keep={x.entry.location for x in loras})
    pipe.enable_lora()  # after a job without LoRAs disabled them
    pipe.set_adapters([loaded[x.entry.location] for x in loras], [x.weight for x in loras])


def _ensure_loaded(pipe: Any, loaded: OrderedDict[str, str], lora: ActiveLora, model_name: str,
                   keep: set[str]) -> None:
    location = lora.entry.location
    if location in loaded:
        loaded.move_to_end(location)
        return
    for old in [k for k in loaded if k not in keep][: max(0, len(loaded) + 1 - MAX_LOADED)]:
        pipe.delete_adapters(loaded.pop(old))
    name = adapter_name(lora.entry)
    try:
        with warnings.catch_warnings():  # peft warns on every adapter after the first: several are the point here
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            pipe.load_lora_weights(load_file(location), adapter_name=name)
    except Exception as exc:  # a LoRA of another shape, an unknown layout: the job gets the reason
        try:
            pipe.delete_adapters(name)  # whatever part of it was injected
        except Exception:
            log.debug("nothing of LoRA %s to delete", lora.entry.name)
        message = f"LoRA {lora.entry.name!r} cannot be applied to {model_name}: {str(exc).splitlines()[0][:200]}"
        raise EngineError(ErrorCode.NOT_SUPPORTED, message, lora.field) from exc
    STATS.loads += 1
    loaded[location] = name
