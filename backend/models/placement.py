"""Where models run: the device, the dtype per model family, and how many bytes a model may take there."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline
from latentbrush.protocol import ErrorCode

from ..events import EngineError

_DTYPES = {
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
}
BF16_FAMILIES = ("sdxl", "sd3", "flux")  # their VAE (and Flux's activations) overflow in fp16


def choose_device(name: str) -> torch.device:
    """``auto``: CUDA (or ROCm, which torch also calls cuda), then Apple MPS, then CPU."""
    if name != "auto":
        try:
            return torch.device(name)
        except RuntimeError as exc:
            raise EngineError(ErrorCode.BAD_FIELD, f"unknown device {name!r}: {exc}", "device") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(name: str, device: torch.device, family: str = "sd15") -> torch.dtype:
    """``auto``: fp16 on GPUs (bf16 for SDXL where supported: its VAE overflows in fp16), fp32 on CPU."""
    if name != "auto":
        if name not in _DTYPES:
            raise EngineError(ErrorCode.BAD_FIELD, f"unknown dtype {name!r} (use {', '.join(_DTYPES)})", "dtype")
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if family in BF16_FAMILIES and torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype_name: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False
    t5: bool = True  # False: SD3's optional T5 encoder is not loaded (saves ~9 GB; prompts follow less closely)

    def dtype(self, family: str) -> torch.dtype:
        return choose_dtype(self.dtype_name, self.device, family)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's weights and buffers."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def component_bytes(pipe: DiffusionPipeline) -> list[int]:
    """Bytes of each torch module of a pipeline."""
    return [tensor_bytes(c) for c in pipe.components.values() if isinstance(c, torch.nn.Module)]


def module_bytes(pipe: DiffusionPipeline) -> int:
    return sum(component_bytes(pipe))


def default_budget(placement: Placement) -> int:
    """Cache budget when none is configured: 60% of GPU memory, or half the RAM when models live there."""
    if placement.device.type == "cuda" and not placement.cpu_offload:
        return int(0.6 * torch.cuda.get_device_properties(placement.device).total_memory)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 << 30
    return ram // 2
