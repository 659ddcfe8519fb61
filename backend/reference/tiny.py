"""A built-in tiny IP-Adapter and CLIP image encoder for the built-in ``tiny`` models: every code path, no download.

The adapter is the state dict h94 publishes (``image_proj`` + ``ip_adapter``), shaped for a tiny UNet by walking
its attention processors exactly as diffusers' ``_convert_ip_adapter_attn_to_diffusers`` does; the encoder is a
``CLIPVisionModelWithProjection`` a few kilobytes large. Seeded random weights: a reference steers the picture
but has learnt nothing. ``save_tiny_adapter`` / ``save_tiny_encoder`` write them in the layouts users have.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..models.tiny import TEXT_HIDDEN, _seeded, unet_config

# the tiny UNets' cross-attention widths, named by the family their shape imitates (models/tiny.py); the
# built-in tiny model itself takes only the built-in adapter (family "tiny")
TINY_CROSS_DIMS = {TEXT_HIDDEN: "sd15", 2 * TEXT_HIDDEN: "sdxl"}
TINY_EMBED_DIM = 16  # the tiny encoder's projection_dim: what the adapter's image projection reads
TINY_IMAGE_SIZE = 32
TOKENS = 4  # image tokens of a basic IP-Adapter, as diffusers expects
IP_STD = 0.5  # large enough that a reference visibly changes the tiny model's output

StateDict = dict[str, dict[str, torch.Tensor]]


def encoder_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                            image_size=TINY_IMAGE_SIZE, patch_size=8, projection_dim=TINY_EMBED_DIM)


def build_tiny_encoder(seed: int = 0) -> CLIPVisionModelWithProjection:
    with _seeded(2000 + seed):
        return CLIPVisionModelWithProjection(encoder_config()).eval()


def _cross_attention_layers(xl: bool) -> list[int]:
    """The hidden width of each cross-attention layer of the tiny UNet, in diffusers' processor order."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config(4, xl=xl))
    channels = list(unet.config.block_out_channels)
    widths = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            widths.append(channels[-1])
        elif name.startswith("up_blocks"):
            widths.append(list(reversed(channels))[int(name[len("up_blocks.")])])
        else:
            widths.append(channels[int(name[len("down_blocks.")])])
    return widths


def build_tiny_adapter(*, xl: bool = False, seed: int = 0) -> StateDict:
    """A basic IP-Adapter state dict for the tiny (SDXL-shaped when ``xl``) UNet, seeded random weights."""
    cross = unet_config(4, xl=xl)["cross_attention_dim"]
    with _seeded(3000 + seed):
        image_proj = {
            "proj.weight": torch.randn(TOKENS * cross, TINY_EMBED_DIM) * 0.3, "proj.bias": torch.zeros(TOKENS * cross),
            "norm.weight": torch.ones(cross), "norm.bias": torch.zeros(cross),
        }
        ip_adapter = {}
        for i, width in enumerate(_cross_attention_layers(xl)):
            ip_adapter[f"{2 * i + 1}.to_k_ip.weight"] = torch.randn(width, cross) * IP_STD
            ip_adapter[f"{2 * i + 1}.to_v_ip.weight"] = torch.randn(width, cross) * IP_STD
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def save_tiny_adapter(target: Path, *, xl: bool = False, seed: int = 0) -> Path:
    """Write a tiny IP-Adapter as h94 does: ``.safetensors`` with flat ``image_proj.`` / ``ip_adapter.`` keys, or
    ``.bin`` holding the two dicts (by ``target``'s suffix)."""
    state = build_tiny_adapter(xl=xl, seed=seed)
    if target.suffix == ".safetensors":
        save_file({f"{part}.{k}": v.contiguous() for part, d in state.items() for k, v in d.items()}, str(target))
    elif target.suffix == ".bin":
        torch.save(state, str(target))
    else:
        raise ValueError(f"an adapter file ends in .safetensors or .bin, not {target.suffix!r}")
    return target


def save_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    """Write the tiny encoder as a transformers folder (config.json + model.safetensors)."""
    build_tiny_encoder(seed).save_pretrained(folder)
    return folder
