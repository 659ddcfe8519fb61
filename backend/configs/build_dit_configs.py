"""Regenerate the shipped SD3 / SD3.5 config skeletons (run by hand; the output is committed).

    python backend/configs/build_dit_configs.py

Values mirror the public diffusers repositories' ``model_index.json`` / ``config.json`` files:
``stabilityai/stable-diffusion-3-medium-diffusers`` (``sd3/``), ``stabilityai/stable-diffusion-3.5-medium``
(``sd35-medium/``) and ``stabilityai/stable-diffusion-3.5-large`` (``sd35-large/``, also Large Turbo). No
weights. The T5 encoder is listed as absent: its SentencePiece vocabulary is not shipped, so single files run
with CLIP-L and CLIP-G only (a diffusers folder brings its own T5 and tokenizer). Flux has no skeleton: the
backend refuses Flux single files (they hold only the transformer).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the SD skeletons' shared CLIP values

from build_configs import CLIP_BIGG, CLIP_L, DIFFUSERS_VERSION, NULL, TOKENIZER  # noqa: E402

SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": DIFFUSERS_VERSION,
             "num_train_timesteps": 1000, "shift": 3.0}
VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "force_upcast": True, "in_channels": 3, "out_channels": 3, "latent_channels": 16, "latents_mean": None,
    "latents_std": None, "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 1024,
    "scaling_factor": 1.5305, "shift_factor": 0.0609, "use_post_quant_conv": False, "use_quant_conv": False,
}
SD3_MEDIUM = {
    "_class_name": "SD3Transformer2DModel", "attention_head_dim": 64, "caption_projection_dim": 1536,
    "in_channels": 16, "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 24,
    "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 2048, "pos_embed_max_size": 192,
    "sample_size": 128,
}
SD35_MEDIUM = {**SD3_MEDIUM, "dual_attention_layers": list(range(13)), "pos_embed_max_size": 384,
               "qk_norm": "rms_norm"}
SD35_LARGE = {**SD3_MEDIUM, "caption_projection_dim": 2432, "num_attention_heads": 38, "num_layers": 38,
              "qk_norm": "rms_norm"}
# SD3's CLIP-L carries a projection (768); CLIP-G is SDXL's bigG with projection
CLIP_L_PROJ = {**CLIP_L, "architectures": ["CLIPTextModelWithProjection"]}


def _sd3(transformer: dict) -> dict[str, dict]:
    index = {
        "_class_name": "StableDiffusion3Pipeline", "_diffusers_version": DIFFUSERS_VERSION,
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_3": NULL, "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"], "tokenizer_3": NULL,
        "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
        "image_encoder": NULL, "feature_extractor": NULL,
    }
    return {
        "model_index.json": index,
        "scheduler/scheduler_config.json": SCHEDULER,
        "text_encoder/config.json": CLIP_L_PROJ,
        "text_encoder_2/config.json": CLIP_BIGG,
        "tokenizer/tokenizer_config.json": TOKENIZER,
        "tokenizer_2/tokenizer_config.json": {**TOKENIZER, "pad_token": "!"},
        "transformer/config.json": transformer,
        "vae/config.json": VAE,
    }


SKELETONS = {"sd3": _sd3(SD3_MEDIUM), "sd35-medium": _sd3(SD35_MEDIUM), "sd35-large": _sd3(SD35_LARGE)}


def write_skeletons(root: Path) -> None:
    for name, files in SKELETONS.items():
        for rel, obj in files.items():
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_skeletons(HERE)
