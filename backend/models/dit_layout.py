"""diffusers SD3 pipeline -> Stability's single-file layout (``sd3_medium_incl_clips.safetensors``), the inverse
of diffusers' ``convert_sd3_transformer_checkpoint_to_diffusers``.

Used to write small SD3-family checkpoints as users download them, for tests, without any download. The
file holds the MMDiT (``model.diffusion_model.``), the VAE (``first_stage_model.``) and the two CLIP encoders
(``text_encoders.clip_l`` / ``clip_g``); no T5, as the ``incl_clips`` files. Flux files are not written: the
backend refuses Flux single files (models/detect.py says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .ldm_layout import vae_to_ldm

_FIXED = {
    "pos_embed.proj": "x_embedder.proj",
    "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
    "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
    "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
    "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
    "context_embedder": "context_embedder",
    "proj_out": "final_layer.linear",
}
_BLOCK = {  # diffusers' transformer_blocks.{i}.<name> -> joint_blocks.{i}.<name>
    "attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
    "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
    "attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
    "attn2.norm_q": "x_block.attn2.ln_q", "attn2.norm_k": "x_block.attn2.ln_k", "attn2.to_out.0": "x_block.attn2.proj",
    "norm1.linear": "x_block.adaLN_modulation.1", "norm1_context.linear": "context_block.adaLN_modulation.1",
    "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
    "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
}
_QKV = {  # fused in Stability's layout: (q, k, v) projections -> one qkv
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
}


def _swap_halves(value: torch.Tensor) -> torch.Tensor:
    """diffusers orders the final adaLN's (shift, scale) the other way round (its ``swap_scale_shift``)."""
    first, second = value.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def sd3_transformer_to_original(state: Mapping[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """An ``SD3Transformer2DModel`` state dict in Stability's MMDiT key layout (without the file's prefix)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        base, _, param = key.rpartition(".")
        if key == "pos_embed.pos_embed":  # a buffer, not a layer's weight
            out["pos_embed"] = value
        elif base in _FIXED:
            out[f"{_FIXED[base]}.{param}"] = value
        elif base == "norm_out.linear":
            out[f"final_layer.adaLN_modulation.1.{param}"] = _swap_halves(value)
    for i in range(num_layers):
        prefix = f"transformer_blocks.{i}."
        for ours, theirs in _BLOCK.items():
            for param in ("weight", "bias"):
                found = state.get(f"{prefix}{ours}.{param}")
                if found is None:
                    continue
                if ours == "norm1_context.linear" and i == num_layers - 1:  # the last block's is AdaLN-continuous
                    found = _swap_halves(found)
                out[f"joint_blocks.{i}.{theirs}.{param}"] = found
        for theirs, parts in _QKV.items():
            for param in ("weight", "bias"):
                values = [state.get(f"{prefix}{part}.{param}") for part in parts]
                if all(v is not None for v in values):
                    out[f"joint_blocks.{i}.{theirs}.{param}"] = torch.cat(values, dim=0)  # type: ignore[arg-type]
    return out


def _clip(state: Mapping[str, torch.Tensor], prefix: str, *, projection: bool) -> dict[str, torch.Tensor]:
    return {prefix + (k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
            for k, v in state.items() if projection or not k.startswith("text_projection")}


def sd3_to_original_state_dict(pipe: Any) -> dict[str, torch.Tensor]:
    """The whole pipeline (MMDiT, VAE, both CLIPs) as Stability's single file holds it."""
    transformer = pipe.transformer
    state = {
        **{"model.diffusion_model." + k: v for k, v in sd3_transformer_to_original(
            transformer.state_dict(), transformer.config.num_layers).items()},
        **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
        # Stability's CLIP-L has no projection (diffusers loads it as the identity); CLIP-G keeps its own
        **_clip(pipe.text_encoder.state_dict(), "text_encoders.clip_l.transformer.", projection=False),
        **_clip(pipe.text_encoder_2.state_dict(), "text_encoders.clip_g.transformer.", projection=True),
    }
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def write_sd3_checkpoint(pipe: Any, path: Path) -> Path:
    """Save an SD3-family pipeline as a Stability-layout ``.safetensors`` file (CLIPs included, no T5)."""
    save_file(sd3_to_original_state_dict(pipe), str(path))
    return path
