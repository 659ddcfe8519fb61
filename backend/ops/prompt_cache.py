"""A small LRU of text-encoder outputs, so a repeated prompt (a live stream's, a batch's, an upscale's tiles)
skips the text encoders.

Keyed by (model, prompt, negative prompt, guidance on, the active LoRAs that change a text encoder, the textual-
inversion embeddings loaded): exactly what the embeddings depend on in the calls ``denoise.py`` makes. An entry
also remembers the text encoder that made it (weakly), so a model that was unloaded and loaded again never gets
embeddings of its earlier copy. The pipeline gets the embeddings instead of the text (diffusers'
``prompt_embeds`` / ``negative_prompt_embeds``, and the pooled ones of SDXL), computed by the pipeline's own
``encode_prompt`` with the arguments its ``__call__`` would pass, so the result is the same as before, bit for
bit. Prompts with A1111 weights or BREAK, or longer than one 75-token chunk, go through ``prompts.encode``
(compel) instead: the pipeline's own path would truncate them and read the weights as text. Pipelines whose text
encoders are not CLIP (SD3, Flux) keep their own path.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from ..prompts.encode import compel_args, encoders, needs_compel

MAX_ENTRIES = 16  # an SD 1.5 entry is ~0.25 MB, an SDXL one ~0.7 MB (fp16, both prompts)
_OUTPUTS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")


@dataclass(frozen=True)
class PromptKey:
    model: str
    prompt: str
    negative_prompt: str | None  # None: the pipeline's own empty negative (SDXL: zeros)
    guidance: bool  # classifier-free guidance on: the negative embedding is needed at all
    loras: tuple[tuple[str, float], ...] = ()  # (file, weight) of the active LoRAs that change a text encoder
    embeddings: tuple[str, ...] = ()  # textual-inversion embeddings loaded into the tokenizer


@dataclass(frozen=True)
class PromptArgs:
    """The pipeline's prompt arguments and how many 75-token chunks each prompt took (0: not encoded)."""

    args: dict[str, Any]
    chunks: int
    negative_chunks: int


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


def _clip_only(pipe: Any) -> bool:
    """SD 1.5 / SDXL text encoding (CLIP encoders only), what ``prompts.encode`` knows."""
    if hasattr(pipe, "text_encoder_3"):
        return False
    return all(isinstance(encoder, CLIPTextModel | CLIPTextModelWithProjection) for _t, encoder, _k in encoders(pipe))


class PromptCache:
    """``prompt_args(pipe, key)``: the pipeline's prompt arguments, from the cache when it holds them."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._items: OrderedDict[PromptKey, tuple[weakref.ref[Any], PromptArgs]] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def prompt_args(self, pipe: Any, key: PromptKey) -> dict[str, Any]:
        encoded = self.encode(pipe, key)
        seen = getattr(self._local, "seen", None)
        if seen is not None:
            seen.append(encoded)
        return encoded.args

    @contextmanager
    def recording(self) -> Iterator[list[PromptArgs]]:
        """The encodings this thread asks for inside the block, in order (a job's info reports its chunks)."""
        outer = getattr(self._local, "seen", None)
        self._local.seen = seen = []
        try:
            yield seen
        finally:
            self._local.seen = outer

    def encode(self, pipe: Any, key: PromptKey) -> PromptArgs:
        """The pipeline's prompt arguments for ``key``, with the chunk counts (1 each for a pipeline encoding
        the text itself, which weights and long prompts do not reach)."""
        plain = {"prompt": key.prompt, "negative_prompt": key.negative_prompt}
        encoder = _encoder(pipe)
        if encoder is None or not _supports_embeddings(pipe):
            return PromptArgs(plain, 1, int(key.guidance))  # a pipeline that takes no embeddings encodes the text
        with self._lock:
            held = self._items.get(key)
            if held is not None and held[0]() is encoder:
                self._items.move_to_end(key)
                self.stats.hits += 1
                return PromptArgs(dict(held[1].args), held[1].chunks, held[1].negative_chunks)
        encoded = self._encode(pipe, key)
        with self._lock:
            self.stats.misses += 1
            self._items[key] = (weakref.ref(encoder), encoded)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return PromptArgs(dict(encoded.args), encoded.chunks, encoded.negative_chunks)

    @staticmethod
    def _encode(pipe: Any, key: PromptKey) -> PromptArgs:
        if _clip_only(pipe) and needs_compel(pipe, key.prompt, key.negative_prompt):
            return PromptArgs(*compel_args(pipe, key.prompt, key.negative_prompt, key.guidance))
        zeros = key.negative_prompt is None and bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
        # SD3's encode_prompt takes its second and third prompts positionally; None: the prompt itself
        takes = inspect.signature(pipe.encode_prompt).parameters
        others = dict.fromkeys(n for n in ("prompt_2", "prompt_3") if n in takes)
        with torch.no_grad():
            out = pipe.encode_prompt(
                **others,
                prompt=key.prompt,
                device=pipe._execution_device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=key.guidance,
                negative_prompt=key.negative_prompt,
            )
        args = {name: value for name, value in zip(_OUTPUTS, out, strict=False) if value is not None}
        return PromptArgs(args, 1, int(key.guidance and not zeros))


PROMPTS = PromptCache()  # the worker thread's one cache (the engine runs one job at a time)
