"""Which base architecture a single-file checkpoint holds, from tensor names and shapes only.

``safe_open`` reads the JSON header; no weights are loaded, so scanning a folder of 7 GB files is instant.
Marker keys follow diffusers' ``single_file_utils`` (CHECKPOINT_KEY_NAMES).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from safetensors import safe_open

UNET = "model.diffusion_model."
CONV_IN = UNET + "input_blocks.0.0.weight"
SD1_TEXT = (
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
    "cond_stage_model.transformer.embeddings.position_embedding.weight",  # older SD 1.x exports
)
SD2_TEXT = "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"
SD2_CROSS_ATTN = UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
SDXL_BASE = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
SDXL_REFINER = "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias"
SD3 = UNET + "joint_blocks.0.context_block.adaLN_modulation.1.bias"
FLUX = ("double_blocks.0.img_attn.norm.key_norm.scale", UNET + "double_blocks.0.img_attn.norm.key_norm.scale")

SUPPORTED_BASES = ("sd15", "sdxl")
NATIVE_RESOLUTION = {"sd15": 512, "sdxl": 1024, "tiny": 256}


class Detection(NamedTuple):
    base: str  # "sd15", "sdxl" (supported); "sd2", "sdxl-refiner", "sd3", "flux" (recognised, refused); "unknown"
    inpaint: bool  # 9-channel UNet input

    @property
    def supported(self) -> bool:
        return self.base in SUPPORTED_BASES

    @property
    def refusal(self) -> str:
        """Why a recognised but unsupported checkpoint is not offered ("" when supported or unknown)."""
        reasons = {
            "sd2": "Stable Diffusion 2.x checkpoints are not supported (use SD 1.5 or SDXL)",
            "sdxl-refiner": "the SDXL refiner is not a stand-alone model; use an SDXL base checkpoint",
            "sd3": "Stable Diffusion 3 checkpoints are not supported (use SD 1.5 or SDXL)",
            "flux": "Flux checkpoints are not supported (use SD 1.5 or SDXL)",
        }
        return reasons.get(self.base, "")


def detect_keys(shapes: dict[str, list[int]]) -> Detection:
    """Detection from a mapping of tensor name -> shape (what a safetensors header holds)."""
    conv_in = shapes.get(CONV_IN)
    inpaint = bool(conv_in and len(conv_in) > 1 and conv_in[1] == 9)
    if SDXL_BASE in shapes:
        return Detection("sdxl", inpaint)
    if SDXL_REFINER in shapes:
        return Detection("sdxl-refiner", inpaint)
    if SD3 in shapes:
        return Detection("sd3", False)
    if any(k in shapes for k in FLUX):
        return Detection("flux", False)
    cross = shapes.get(SD2_CROSS_ATTN)
    if SD2_TEXT in shapes or (cross is not None and cross[-1] == 1024):
        return Detection("sd2", inpaint)
    if any(k in shapes for k in SD1_TEXT) and conv_in is not None:
        return Detection("sd15", inpaint)
    return Detection("unknown", False)  # a LoRA, VAE, upscaler, embedding, ...


def detect_file(path: Path) -> Detection:
    """Detection of a ``.safetensors`` file; raises OSError/ValueError-like errors for unreadable files."""
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        wanted = {CONV_IN, SD2_CROSS_ATTN}
        shapes: dict[str, list[int]] = {k: [] for k in keys}
        for k in wanted & set(keys):
            shapes[k] = list(f.get_slice(k).get_shape())
    return detect_keys(shapes)
