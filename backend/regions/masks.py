"""Region masks -> per-token blend weights for regional prompting (pure numpy; tested at the edges).

A job's ``region`` inputs are masks at the context's size (0 = not this region, 255 = fully). At every
cross-attention layer the UNet works on a grid of tokens: the latent (processing size / 8) downscaled
by 1, 2, 4 or 8. ``blend_weights`` gives, for each token of such a grid, how much each prompt steers
it: the regions by their mask times their weight, the background prompt by what the regions leave
(1 - the strongest region), normalised to sum to 1. Where no region reaches, the background's weight
is exactly 1 and every region's exactly 0, so the layer's output there is the plain prompt's, bit for
bit (``attention.py``).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

VAE_SCALE = 8  # SD 1.5 and SDXL latents are 1/8 of the image side


def token_grid(tokens: int, latent_height: int, latent_width: int) -> tuple[int, int]:
    """The (rows, columns) of an attention layer with ``tokens`` tokens over a latent of the given size.

    The UNet halves the grid with stride-2 convolutions (which round odd sides up), so the grid is the
    latent's side divided by a power of two, rounded up; raises ValueError when no power fits."""
    height, width = latent_height, latent_width
    for _ in range(8):
        if height * width == tokens:
            return height, width
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    raise ValueError(f"{tokens} tokens are no downscale of a {latent_width}x{latent_height} latent")


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """An H x W uint8 mask at ``width`` x ``height`` as float32 0..1 (area-averaged, so thin strokes keep weight)."""
    if mask.shape[:2] == (height, width):
        return mask.astype(np.float32) / 255.0
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), "L")
    return np.asarray(image.resize((width, height), Image.Resampling.BOX), dtype=np.float32) / 255.0


def blend_weights(masks: list[np.ndarray], weights: list[float], rows: int, columns: int) -> np.ndarray:
    """(1 + regions) x rows x columns float32 weights: the background first, then each region; they sum to 1.

    ``masks`` are uint8 H x W at any one size, ``weights`` the regions' strengths (0..2)."""
    if len(masks) != len(weights):
        raise ValueError("one weight per region mask")
    regions = np.stack([resize_mask(m, columns, rows) * float(w) for m, w in zip(masks, weights, strict=True)]) \
        if masks else np.zeros((0, rows, columns), np.float32)
    coverage = np.clip(regions.max(axis=0), 0.0, 1.0) if masks else np.zeros((rows, columns), np.float32)
    stacked = np.concatenate([(1.0 - coverage)[None], regions]).astype(np.float32)
    total = stacked.sum(axis=0, keepdims=True)
    # a token where every region has weight 0 and the background none cannot happen: coverage <= max(regions)
    return stacked / np.where(total > 0, total, 1.0)
