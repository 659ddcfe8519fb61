"""Regional prompting by masked cross-attention: each part of the picture listens to its own prompt.

For one pipeline call, every cross-attention layer (``attn2``) of the UNet gets a processor that wraps the
one it had: the layer runs as always on the background prompt (the pipeline's ``prompt_embeds``), then once
more per region on that region's text embeddings, and the outputs are blended token by token with
``masks.blend_weights``. Self-attention, the convolutions and everything else are untouched, so regions
meet without seams. With classifier-free guidance the batch is ``[negative, positive]`` (diffusers' SD 1.5 and
SDXL pipelines concatenate it so): the positive half takes the region prompts, the negative half the regions'
negative prompts where they have one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .masks import blend_weights, token_grid

CROSS_ATTENTION = "attn2.processor"  # diffusers names a transformer block's cross-attention layer attn2


@dataclass(frozen=True)
class RegionText:
    """One region of a call: its mask (uint8, any size; resized per layer) and its text embeddings."""

    mask: np.ndarray
    weight: float
    embeds: torch.Tensor  # 1 x tokens x width, from the pipeline's own text encoders
    negative_embeds: torch.Tensor | None = None  # None: the job's negative prompt there


@dataclass
class RegionConditioning:
    """The regions of one call and the latent size; blend weights are computed once per layer size."""

    regions: tuple[RegionText, ...]
    latent_height: int
    latent_width: int
    guidance: bool  # the batch holds [negative, positive]
    _weights: dict[tuple[int, str, torch.dtype], torch.Tensor] = field(default_factory=dict)

    def weights(self, tokens: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(1 + regions) x tokens: the background's weight first."""
        key = (tokens, str(device), dtype)
        if key not in self._weights:
            rows, columns = token_grid(tokens, self.latent_height, self.latent_width)
            grid = blend_weights([r.mask for r in self.regions], [r.weight for r in self.regions], rows, columns)
            self._weights[key] = torch.from_numpy(grid.reshape(len(self.regions) + 1, -1)).to(device, dtype)
        return self._weights[key]


class RegionalAttnProcessor:
    """Wraps a cross-attention layer's processor (``AttnProcessor2_0`` and the like) for one call's regions."""

    def __init__(self, base: Any, conditioning: RegionConditioning) -> None:
        self.base = base
        self.conditioning = conditioning

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if encoder_hidden_states is None or hidden_states.ndim != 3:
            return out  # self-attention (or a layout this does not know): as it was
        batch = hidden_states.shape[0]
        half = batch // 2 if self.conditioning.guidance and batch % 2 == 0 else 0
        weights = self.conditioning.weights(hidden_states.shape[1], out.device, out.dtype)
        parts = []
        if half:  # the negative half: only regions with a negative prompt of their own change it
            texts = [r.negative_embeds for r in self.conditioning.regions]
            parts.append(self._blend(attn, hidden_states[:half], out[:half], texts, weights, temb))
        texts = [r.embeds for r in self.conditioning.regions]
        parts.append(self._blend(attn, hidden_states[half:], out[half:], texts, weights, temb))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _blend(self, attn: Any, hidden: torch.Tensor, plain: torch.Tensor, texts: list[torch.Tensor | None],
               weights: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        if all(t is None for t in texts):
            return plain
        blended = plain * weights[0][None, :, None]
        for index, text in enumerate(texts, start=1):
            if text is None:  # this region keeps the plain prompt's output on this half
                blended = blended + plain * weights[index][None, :, None]
                continue
            context = text.to(hidden.device, hidden.dtype).expand(hidden.shape[0], -1, -1)
            blended = blended + self.base(attn, hidden, context, None, temb) * weights[index][None, :, None]
        return blended


@contextmanager
def regional_attention(unet: Any, conditioning: RegionConditioning | None) -> Iterator[None]:
    """The UNet's cross-attention layers take ``conditioning``'s regions for the ``with`` block; restored after,
    whatever happens (a cancel raises through here)."""
    if conditioning is None or not conditioning.regions:
        yield
        return
    saved = dict(unet.attn_processors)
    unet.set_attn_processor({name: RegionalAttnProcessor(proc, conditioning) if name.endswith(CROSS_ATTENTION)
                             else proc for name, proc in saved.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(saved)
