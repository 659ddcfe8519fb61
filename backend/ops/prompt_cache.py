"""A small LRU of text-encoder outputs, so a repeated prompt (a live stream's, a batch's, an upscale's tiles)
skips the text encoders.

Keyed by (model, prompt, negative prompt, guidance on): exactly what ``encode_prompt`` depends on in the
calls ``denoise.py`` makes. An entry also remembers the text encoder that made it (weakly), so a model
that was unloaded and loaded again never gets embeddings of its earlier copy. The pipeline gets the
embeddings instead of the text (diffusers' ``prompt_embeds`` / ``negative_prompt_embeds``, and the pooled
ones of SDXL), computed by the pipeline's own ``encode_prompt`` with the arguments its ``__call__`` would
pass, so the result is the same as before, bit for bit.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

MAX_ENTRIES = 16  # an SD 1.5 entry is ~0.25 MB, an SDXL one ~0.7 MB (fp16, both prompts)
_OUTPUTS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")


@dataclass(frozen=True)
class PromptKey:
    model: str
    prompt: str
    negative_prompt: str | None  # None: the pipeline's own empty negative (SDXL: zeros)
    guidance: bool  # classifier-free guidance on: the negative embedding is needed at all


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def guidance_on(pipe: Any, cfg: float) -> bool:
    """What the pipeline's ``do_classifier_free_guidance`` will say for ``cfg`` (guidance-distilled UNets: off)."""
    config = getattr(getattr(pipe, "unet", None), "config", None)
    return cfg > 1 and getattr(config, "time_cond_proj_dim", None) is None


def _supports_embeddings(pipe: Any) -> bool:
    encode = getattr(pipe, "encode_prompt", None)
    if encode is None:
        return False
    taken = inspect.signature(pipe.__call__).parameters
    wanted = inspect.signature(encode).parameters
    return "prompt_embeds" in taken and all(
        name in wanted for name in ("prompt", "device", "num_images_per_prompt", "do_classifier_free_guidance",
                                    "negative_prompt")
    )


def _encoder(pipe: Any) -> Any:
    return getattr(pipe, "text_encoder", None) or getattr(pipe, "text_encoder_2", None)


class PromptCache:
    """``prompt_args(pipe, key)``: the pipeline's prompt arguments, from the cache when it holds them."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._items: OrderedDict[PromptKey, tuple[weakref.ref[Any], dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def prompt_args(self, pipe: Any, key: PromptKey) -> dict[str, Any]:
        plain = {"prompt": key.prompt, "negative_prompt": key.negative_prompt}
        encoder = _encoder(pipe)
        if encoder is None or not _supports_embeddings(pipe):
            return plain  # a pipeline that takes no embeddings encodes the text itself
        with self._lock:
            held = self._items.get(key)
            if held is not None and held[0]() is encoder:
                self._items.move_to_end(key)
                self.stats.hits += 1
                return dict(held[1])
        embeddings = self._encode(pipe, key)
        with self._lock:
            self.stats.misses += 1
            self._items[key] = (weakref.ref(encoder), embeddings)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return dict(embeddings)

    @staticmethod
    def _encode(pipe: Any, key: PromptKey) -> dict[str, Any]:
        with torch.no_grad():
            out = pipe.encode_prompt(
                prompt=key.prompt,
                device=pipe._execution_device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=key.guidance,
                negative_prompt=key.negative_prompt,
            )
        return {name: value for name, value in zip(_OUTPUTS, out, strict=False) if value is not None}


PROMPTS = PromptCache()  # the worker thread's one cache (the engine runs one job at a time)
