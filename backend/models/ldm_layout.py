"""diffusers SD 1.x pipeline -> original LDM / A1111 single-file key layout (the inverse of diffusers' converter).

Used to write small A1111-style ``.safetensors`` checkpoints for tests and benchmarks without any download;
the round trip through ``from_single_file`` is bitwise exact. Generalised from diffusers' own conversion
script to any depth and ``layers_per_block``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

_RESNET = (
    ("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"),
)
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
}


def _resnet(rest: str) -> str:
    for ours, theirs in _RESNET:
        if rest.startswith(ours + "."):
            return theirs + rest[len(ours) :]
    raise KeyError(rest)


def _unet_key(key: str, n: int, up_attn: list[bool]) -> str:
    base, _, param = key.rpartition(".")
    if base in _UNET_FIXED:
        return f"{_UNET_FIXED[base]}.{param}"
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * (n + 1) + int(m[2])}.0.{_resnet(m[3])}"
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (n + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.0.{_resnet(m[3])}"
    if m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        return f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
        u = int(m[1])
        return f"output_blocks.{u * (n + 1) + n}.{2 if up_attn[u] else 1}.{m[2]}"
    raise KeyError(f"unmapped unet key {key}")


def unet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    n = config["layers_per_block"]
    up_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    return {"model.diffusion_model." + _unet_key(k, n, up_attn): v for k, v in state.items()}


def _vae_key(key: str, levels: int) -> str:
    flip = levels - 1  # LDM numbers decoder levels from the bottom, diffusers from the top
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        key = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
    elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", key):
        key = f"encoder.down.{m[1]}.downsample.{m[2]}"
    elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        key = f"decoder.up.{flip - int(m[1])}.block.{m[2]}.{m[3]}"
    elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
        key = f"decoder.up.{flip - int(m[1])}.upsample.{m[2]}"
    elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        key = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
        rest = m[2]
        for ours, theirs in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                             ("to_out.0.", "proj_out.")):
            if rest.startswith(ours):
                rest = theirs + rest[len(ours):]
        key = f"{m[1]}.mid.attn_1.{rest}"
    return key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")


def vae_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    levels = len(config["block_out_channels"])
    out = {}
    for key, value in state.items():
        new = _vae_key(key, levels)
        if ".attn_1." in new and new.endswith("weight") and value.ndim == 2:  # LDM uses 1x1 convolutions here
            value = value.reshape(*value.shape, 1, 1)
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # transformers >= 5.6 flattened CLIPTextModel (no "text_model." prefix); checkpoints keep the old layout
    return {
        "cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
        for k, v in state.items()
    }


def sd15_to_ldm_state_dict(pipe: Any, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    state = {
        **unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config),
        **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
        **clip_to_ldm(pipe.text_encoder.state_dict()),
    }
    return {k: v.detach().to(dtype or v.dtype).contiguous().clone() for k, v in state.items()}


def write_sd15_checkpoint(pipe: Any, path: Path, dtype: torch.dtype | None = None) -> Path:
    """Save an SD 1.x pipeline as an A1111-layout ``.safetensors`` file."""
    save_file(sd15_to_ldm_state_dict(pipe, dtype), str(path))
    return path


def _controlnet_key(key: str, n: int) -> str:
    base, _, param = key.rpartition(".")
    if base == "controlnet_cond_embedding.conv_in":
        return f"input_hint_block.0.{param}"
    if m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)", base):
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{param}"
    if base == "controlnet_cond_embedding.conv_out":
        return f"input_hint_block.14.{param}"  # diffusers' converter knows only the standard 6-block embedding
    if m := re.match(r"controlnet_down_blocks\.(\d+)", base):
        return f"zero_convs.{m[1]}.0.{param}"
    if base == "controlnet_mid_block":
        return f"middle_block_out.0.{param}"
    if m := re.match(r"add_embedding\.linear_([12])", base):
        return f"label_emb.0.{0 if m[1] == '1' else 2}.{param}"
    return _unet_key(key, n, [])


def controlnet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet state dict in the original (lllyasviel / A1111) single-file layout."""
    n = config["layers_per_block"]
    return {"control_model." + _controlnet_key(k, n): v.detach().contiguous().clone() for k, v in state.items()}


def write_controlnet_checkpoint(controlnet: Any, path: Path) -> Path:
    """Save a diffusers ``ControlNetModel`` as an original-layout ``.safetensors`` file."""
    save_file(controlnet_to_ldm(controlnet.state_dict(), controlnet.config), str(path))
    return path
