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
FLUX_IMG_IN = ("img_in.weight", UNET + "img_in.weight")  # (hidden, in): 64 packed latent channels; Fill 384
FLUX_FILL_IN = 384  # + 64 masked-image and 256 mask channels
# SD3 / SD3.5 files in Stability's layout; those without the CLIP encoders (ComfyUI loads them apart) cannot run
SD3_CLIPS = ("text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight",
             "text_encoders.clip_g.transformer.text_model.embeddings.position_embedding.weight")
SD3_POS_EMBED = UNET + "pos_embed"  # (1, max_size^2, hidden): SD3 Medium 192^2, SD3.5 Medium 384^2
SD35_MEDIUM_POSITIONS = 384 * 384
SD35_LARGE = UNET + "joint_blocks.37.x_block.mlp.fc1.weight"  # 38 joint blocks (SD3 / SD3.5 Medium: 24)

SUPPORTED_BASES = ("sd15", "sdxl", "sdxl-refiner", "sd3")  # a refiner: offered for JobRequest.refiner only
NATIVE_RESOLUTION = {
    "sd15": 512, "sdxl": 1024, "tiny": 256,
    "sdxl-refiner": 1024,
    "tiny-sdxl": 256,
    "tiny-sdxl-refiner": 256,
    "sd3": 1024, "flux": 1024, "tiny-sd3": 256, "tiny-flux": 256,
}


class Detection(NamedTuple):
    # "sd15", "sdxl", "sdxl-refiner", "sd3" (supported); "sd2", "sd3-bare", "flux" (recognised, refused); "unknown"
    base: str
    inpaint: bool  # 9-channel UNet input (or FLUX.1-Fill's 384-channel transformer input)

    @property
    def supported(self) -> bool:
        return self.base in SUPPORTED_BASES

    @property
    def refusal(self) -> str:
        """Why a recognised but unsupported checkpoint is not offered ("" when supported or unknown)."""
        reasons = {
            "sd2": "Stable Diffusion 2.x checkpoints are not supported (use SD 1.5, SDXL, SD3 or Flux)",
            "sd3-bare": "this SD3 / SD3.5 file holds no CLIP text encoders (they ship apart for ComfyUI); use the "
                        "diffusers folder layout (the whole stabilityai repository) or a file that includes the CLIPs",
            "flux": "a Flux single file holds only the transformer, and Flux's T5 tokenizer cannot ship offline; use "
                    "the diffusers folder layout (the whole black-forest-labs FLUX.1 repository: "
                    "`latentbrush-server models download flux-schnell` fetches one)",
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
        return Detection("sd3" if all(k in shapes for k in SD3_CLIPS) else "sd3-bare", False)
    if any(k in shapes for k in FLUX):
        img_in = next((shapes[k] for k in FLUX_IMG_IN if k in shapes), [])
        return Detection("flux", len(img_in) > 1 and img_in[1] == FLUX_FILL_IN)
    cross = shapes.get(SD2_CROSS_ATTN)
    if SD2_TEXT in shapes or (cross is not None and cross[-1] == 1024):
        return Detection("sd2", inpaint)
    if any(k in shapes for k in SD1_TEXT) and conv_in is not None:
        return Detection("sd15", inpaint)
    return Detection("unknown", False)  # a LoRA, VAE, upscaler, embedding, ...


def detect_file(path: Path) -> Detection:
    """Detection of a ``.safetensors`` file; raises OSError/ValueError-like errors for unreadable files."""
    return detect_keys(file_shapes(path))


def sd3_skeleton(shapes: dict[str, list[int]]) -> str:
    """The shipped config folder for an SD3-family file: SD3.5 Large (and Large Turbo), SD3.5 Medium, SD3 Medium."""
    if SD35_LARGE in shapes:
        return "sd35-large"
    positions = shapes.get(SD3_POS_EMBED, [])
    return "sd35-medium" if len(positions) > 1 and positions[1] == SD35_MEDIUM_POSITIONS else "sd3"


def file_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a ``.safetensors`` header (shapes of the detection markers only)."""
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        shapes: dict[str, list[int]] = {k: [] for k in keys}
        for k in {CONV_IN, SD2_CROSS_ATTN, SD3_POS_EMBED, *FLUX_IMG_IN} & set(keys):
            shapes[k] = list(f.get_slice(k).get_shape())
    return shapes
