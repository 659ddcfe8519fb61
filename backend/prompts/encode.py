"""Weighted and long prompts for SD 1.5 and SDXL pipelines, through compel's ``EmbeddingsProvider``.

A prompt is cut into 75-token chunks (each framed by BOS/EOS, 77 tokens, as A1111 does) whose text-encoder
outputs are concatenated, so nothing past token 75 is lost; ``BREAK`` starts a new chunk. Weights scale a
token's vector the way compel does (up: away from the empty prompt's vector; down: towards the prompt without
it). SDXL runs both encoders per chunk and takes its pooled vector from the first chunk, as A1111 does. The
negative prompt is padded with empty-prompt chunks to the positive's chunk count (and the other way round),
since the UNet takes both as one batch.

compel does the weighting, chunking and padding of one encoder; this module adds what it lacks: A1111 syntax
(``syntax.py``) and BREAK, the per-tokenizer textual-inversion expansion, SDXL's pooled vector from the first
chunk, and SDXL's zero negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from compel.embeddings_provider import (
    BaseTextualInversionManager,
    EmbeddingsProvider,
    ReturnedEmbeddingsType,
    SplitLongTextMode,
)

from .syntax import Segment, is_plain, parse

CHUNK_TOKENS = 75  # a chunk's prompt tokens; BOS and EOS make CLIP's 77


@dataclass(frozen=True)
class Encoded:
    """A prompt's conditioning: (1, chunks x 77, width) embeddings, SDXL's pooled vector, its chunk count."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None
    chunks: int


class _Inversions(BaseTextualInversionManager):
    """Expands a multi-vector textual-inversion token into its ``name_1``, ``name_2``... tokens (what diffusers'
    ``maybe_convert_prompt`` does to text), for one tokenizer: compel's own manager only knows ``pipe.tokenizer``."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def expand_textual_inversion_token_ids_if_necessary(self, token_ids: list[int]) -> list[int]:
        added = self.tokenizer.added_tokens_encoder
        out: list[int] = []
        for token_id in token_ids:
            out.append(token_id)
            token = self.tokenizer.convert_ids_to_tokens(token_id)
            index = 1
            while f"{token}_{index}" in added:
                out.append(added[f"{token}_{index}"])
                index += 1
        return out


def encoders(pipe: Any) -> list[tuple[Any, Any, ReturnedEmbeddingsType]]:
    """(tokenizer, text encoder, which hidden states) as the pipeline's ``encode_prompt`` uses them."""
    if hasattr(pipe, "text_encoder_2"):  # SDXL: both encoders' penultimate states (the refiner has only the second)
        pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
        kind = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
        return [(t, e, kind) for t, e in pairs if t is not None and e is not None]
    return [(pipe.tokenizer, pipe.text_encoder, ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED)]


def token_count(pipe: Any, tokenizer: Any, text: str) -> int:
    """Prompt tokens of ``text`` as the pipeline's own encoding would see them (multi-vector embeddings expanded)."""
    if hasattr(pipe, "maybe_convert_prompt"):
        text = pipe.maybe_convert_prompt(text, tokenizer)
    return len(tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"])


def needs_compel(pipe: Any, prompt: str, negative: str | None) -> bool:
    """Whether the pipeline's own ``encode_prompt`` would change the meaning: weights, escapes, BREAK, or more
    than one chunk of tokens (it truncates at 77). Plain short prompts keep that path: bit-identical to before."""
    texts = [prompt] + ([negative] if negative else [])
    if not all(is_plain(text) for text in texts):
        return True
    return any(token_count(pipe, tokenizer, text) > CHUNK_TOKENS
               for tokenizer, _encoder, _kind in encoders(pipe) for text in texts)


class PromptEncoder:
    """Encodes prompts for one pipeline (SD 1.5 or SDXL) with compel, chunked and weighted."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        device = pipe._execution_device
        self.providers = [
            EmbeddingsProvider(
                tokenizer=tokenizer, text_encoder=encoder, textual_inversion_manager=_Inversions(tokenizer),
                truncate=False, returned_embeddings_type=kind, device=device,
                # chunks end at a word's end, not inside it; no sentence hunting: chunks stay as full as A1111's
                split_long_text_mode=SplitLongTextMode.WORDS,
                dtype_for_device_getter=lambda _device: torch.float32,
            )
            for tokenizer, encoder, kind in encoders(pipe)
        ]
        self.pooled_encoder = encoders(pipe)[-1][1] if hasattr(pipe, "text_encoder_2") else None
        self.device = device

    def encode(self, prompt: str) -> Encoded:
        """The prompt's embeddings: each BREAK segment in its own chunks, each encoder's output side by side."""
        per_encoder: list[list[torch.Tensor]] = [[] for _ in self.providers]
        first_tokens: torch.Tensor | None = None
        for segment in parse(prompt):
            outputs = [self._segment(provider, segment) for provider in self.providers]
            width = max(z.shape[1] for z, _tokens in outputs)
            for i, (z, _tokens) in enumerate(outputs):
                per_encoder[i].append(self._pad(i, z, width))
            if first_tokens is None:  # the pooled encoder's first chunk: BOS, its tokens, EOS, padding
                first_tokens = outputs[-1][1][:, : self._length(len(outputs) - 1)]
        embeds = torch.cat([torch.cat(parts, dim=1) for parts in per_encoder], dim=-1)
        chunks = embeds.shape[1] // self._length(0)
        pooled = None
        if self.pooled_encoder is not None and first_tokens is not None:
            out = self.pooled_encoder(first_tokens.to(self.device), output_hidden_states=False, return_dict=True)
            pooled = out.text_embeds  # diffusers' pooled_prompt_embeds: the projected EOS state
        return Encoded(embeds, pooled, chunks)

    def pad_to(self, encoded: Encoded, chunks: int) -> Encoded:
        """``encoded`` with empty-prompt chunks appended up to ``chunks`` (A1111 pads the shorter of the pair)."""
        if encoded.chunks >= chunks:
            return encoded
        empty = torch.cat([p.empty_z.to(encoded.embeds) for p in self.providers], dim=-1)
        extra = empty.repeat(1, chunks - encoded.chunks, 1)
        return Encoded(torch.cat([encoded.embeds, extra], dim=1), encoded.pooled, chunks)

    def _length(self, index: int) -> int:
        return int(self.providers[index].max_token_count)

    def _segment(self, provider: EmbeddingsProvider, segment: Segment) -> tuple[torch.Tensor, torch.Tensor]:
        # a fragment without tokens (only spaces) adds nothing, and compel cannot down-weight an empty range
        kept = [f for f in segment if provider.get_token_ids([f.text], include_start_and_end_markers=False)[0]]
        texts = [f.text for f in kept] or [""]
        weights = [f.weight for f in kept] or [1.0]
        z, tokens = provider.get_embeddings_for_weighted_prompt_fragments(
            [texts], [weights], should_return_tokens=True, device=self.device)
        return z, tokens

    def _pad(self, index: int, z: torch.Tensor, width: int) -> torch.Tensor:
        """One encoder's segment padded to the other encoder's chunk count (their tokenizers may differ)."""
        if z.shape[1] >= width:
            return z
        empty = self.providers[index].empty_z.to(z)
        return torch.cat([z, empty.repeat(1, (width - z.shape[1]) // empty.shape[1], 1)], dim=1)


def compel_args(pipe: Any, prompt: str, negative: str | None, guidance: bool) -> tuple[dict[str, Any], int, int]:
    """The pipeline's embedding arguments for ``prompt`` / ``negative`` (None: the pipeline's empty negative) and
    the chunk counts of each prompt's own text, before padding (0 for a negative not encoded: guidance off, or
    SDXL's zero negative)."""
    encoder = PromptEncoder(pipe)
    with torch.no_grad():
        positive = encoder.encode(prompt)
        args: dict[str, Any] = {"prompt_embeds": positive.embeds}
        if positive.pooled is not None:
            args["pooled_prompt_embeds"] = positive.pooled
        if not guidance:
            return args, positive.chunks, 0
        zeros = negative is None and bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
        if zeros:  # SDXL's own empty negative: zeros, as it was trained to (diffusers does the same)
            args["negative_prompt_embeds"] = torch.zeros_like(positive.embeds)
            if positive.pooled is not None:
                args["negative_pooled_prompt_embeds"] = torch.zeros_like(positive.pooled)
            return args, positive.chunks, 0
        negative_encoded = encoder.encode(negative or "")
        chunks = max(positive.chunks, negative_encoded.chunks)
        args["prompt_embeds"] = encoder.pad_to(positive, chunks).embeds
        args["negative_prompt_embeds"] = encoder.pad_to(negative_encoded, chunks).embeds
        if negative_encoded.pooled is not None:
            args["negative_pooled_prompt_embeds"] = negative_encoded.pooled
        return args, positive.chunks, negative_encoded.chunks
