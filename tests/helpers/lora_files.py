"""Tiny LoRAs and textual-inversion embeddings, saved as painters have them (kohya / A1111 layouts).

Seeded random low-rank matrices for the tiny models' attention layers (and text encoders), under the names
kohya's sd-scripts writes: ``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` /
``.alpha``, ``lora_te_`` (SD 1.5) or ``lora_te1_`` / ``lora_te2_`` (SDXL) for the text encoders. Embeddings
are A1111's: one ``emb_params`` tensor (SD 1.5), or ``clip_l`` and ``clip_g`` (SDXL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

UNET_LAYERS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _low_rank(module: Any, key: str, rank: int, scale: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        f"{key}.lora_down.weight": torch.randn(rank, module.in_features, generator=generator) * scale,
        f"{key}.lora_up.weight": torch.randn(module.out_features, rank, generator=generator) * scale,
        f"{key}.alpha": torch.tensor(float(rank)),
    }


def kohya_lora(pipe: Any, *, seed: int = 0, rank: int = 4, scale: float = 0.3,
               text_encoder: bool = True) -> dict[str, torch.Tensor]:
    """A kohya-layout LoRA for ``pipe``'s UNet attention (and its text encoders' attention)."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear) and any(name.endswith("." + layer) for layer in UNET_LAYERS):
            tensors |= _low_rank(module, "lora_unet_" + name.replace(".", "_"), rank, scale, generator)
    if text_encoder:
        xl = getattr(pipe, "text_encoder_2", None) is not None
        encoders = [("lora_te1_" if xl else "lora_te_", pipe.text_encoder)]
        if xl:
            encoders.append(("lora_te2_", pipe.text_encoder_2))
        for prefix, encoder in encoders:
            for name, module in encoder.named_modules():
                if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in TEXT_LAYERS:
                    tensors |= _low_rank(module, prefix + name.replace(".", "_"), rank, scale, generator)
    return tensors


def write_lora(folder: Path, name: str, tensors: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def a1111_embedding(pipe: Any, *, vectors: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """An A1111 textual-inversion file's tensors for ``pipe``'s text encoder(s)."""
    generator = torch.Generator().manual_seed(seed)
    if getattr(pipe, "text_encoder_2", None) is not None:
        return {"clip_l": torch.randn(vectors, pipe.text_encoder.config.hidden_size, generator=generator),
                "clip_g": torch.randn(vectors, pipe.text_encoder_2.config.hidden_size, generator=generator)}
    return {"emb_params": torch.randn(vectors, pipe.text_encoder.config.hidden_size, generator=generator)}
