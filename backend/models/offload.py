"""CPU offload chosen from free GPU memory, so a model bigger than the GPU (Flux, SD3.5 Large) still runs.

diffusers offers two kinds: ``enable_model_cpu_offload`` moves one whole component (text encoder, transformer,
VAE) to the GPU while it runs (a little slower), ``enable_sequential_cpu_offload`` streams each layer in and out
(much slower, but needs only the largest layer). ``choose_offload`` is the pure decision; ``place`` applies it.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

NONE, MODEL, SEQUENTIAL = "none", "model", "sequential"
RESERVE_BYTES = 2 << 30  # activations and the VAE decode of a ~1 MP picture, besides the weights
HEADROOM = 1.1  # allocator fragmentation


def choose_offload(model_bytes: int, largest_bytes: int, free_bytes: int | None, *, forced: bool = False) -> str:
    """The offload mode for a model of ``model_bytes`` whose largest component has ``largest_bytes``, on a GPU with
    ``free_bytes`` free (None: not a CUDA device, nothing to offload to). ``forced``: the user asked for
    model offload (``--cpu-offload``); it is still raised to sequential when even one component cannot fit."""
    if free_bytes is None:
        return NONE
    def fits(size: int) -> bool:
        return size * HEADROOM + RESERVE_BYTES <= free_bytes

    if not forced and fits(model_bytes):
        return NONE
    return MODEL if fits(largest_bytes) else SEQUENTIAL


def cuda_free_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA ``device`` (torch.cuda.mem_get_info), None for other devices."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def place(pipe: Any, mode: str, device: torch.device) -> None:
    """Put ``pipe`` on ``device`` whole, or install the offload hooks of ``mode`` (they live on the pipeline)."""
    if mode == MODEL:
        pipe.enable_model_cpu_offload(device=device)
    elif mode == SEQUENTIAL:
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
