"""Regenerate the shipped config skeletons and the CLIP vocabulary (run by hand; the output is committed).

    python backend/configs/build_configs.py --open-clip-wheel open_clip_torch-*.whl

The wheel comes from ``pip download --no-deps open_clip_torch``; only its ``bpe_simple_vocab_16e6.txt.gz`` is
read. Without ``--open-clip-wheel`` only the JSON skeletons are rewritten. The values mirror the public
``model_index.json``/``config.json`` files of the SD 1.5 and SDXL 1.0 (inpainting) repositories.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

from latentbrush.backend.models.clip_vocab import SHARED_TOKENIZER_DIR, vocab_from_bpe_gz, write_vocab

HERE = Path(__file__).resolve().parent
DIFFUSERS_VERSION = "0.42.1"
NULL = [None, None]

SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False,
    "prediction_type": "epsilon", "trained_betas": None, "timestep_spacing": "leading",
}
TOKENIZER = {
    "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
    "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
}
CLIP_L = {  # openai/clip-vit-large-patch14 text tower, as in SD 1.5 and SDXL's first encoder
    "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "hidden_act": "quick_gelu",
    "hidden_size": 768, "intermediate_size": 3072, "max_position_embeddings": 77, "num_attention_heads": 12,
    "num_hidden_layers": 12, "projection_dim": 768, "vocab_size": 49408, "layer_norm_eps": 1e-05,
    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "attention_dropout": 0.0, "dropout": 0.0,
    "initializer_factor": 1.0, "initializer_range": 0.02, "torch_dtype": "float32",
}
CLIP_BIGG = {  # OpenCLIP ViT-bigG/14 text tower with projection, SDXL's second encoder
    **CLIP_L, "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
    "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280,
}
VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "sample_size": 512, "scaling_factor": 0.18215,
}
SD15_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SDXL_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280], "center_input_sample": False, "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "downsample_padding": 1,
    "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
    "norm_num_groups": 32, "out_channels": 4, "projection_class_embeddings_input_dim": 2816, "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10], "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
    "UpBlock2D"], "use_linear_projection": True,
}
SDXL_REFINER_UNET = {  # stabilityai/stable-diffusion-xl-refiner-1.0: wider, 4 levels, only OpenCLIP bigG's text
    **SDXL_UNET, "attention_head_dim": [6, 12, 24, 24], "block_out_channels": [384, 768, 1536, 1536],
    "cross_attention_dim": 1280, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
    "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "projection_class_embeddings_input_dim": 2560,  # pooled bigG 1280 + 5 time ids x 256 (sizes, crop, aesthetic)
    "transformer_layers_per_block": 4,
}
# SDXL's VAE overflows in fp16; force_upcast makes the pipelines decode in fp32.
SDXL_VAE = {**VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}


def _sd15(inpaint: bool) -> dict[str, dict]:
    return {
        "model_index.json": {
            "_class_name": "StableDiffusionInpaintPipeline" if inpaint else "StableDiffusionPipeline",
            "_diffusers_version": DIFFUSERS_VERSION, "feature_extractor": NULL, "safety_checker": NULL,
            "image_encoder": NULL, "requires_safety_checker": False, "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        },
        "unet/config.json": {**SD15_UNET, "in_channels": 9 if inpaint else 4},
        "vae/config.json": VAE,
        "text_encoder/config.json": CLIP_L,
        "scheduler/scheduler_config.json": {"_class_name": "PNDMScheduler", **SCHEDULER},
        "tokenizer/tokenizer_config.json": TOKENIZER,
    }


def _sdxl(inpaint: bool) -> dict[str, dict]:
    index = {
        "_class_name": "StableDiffusionXLInpaintPipeline" if inpaint else "StableDiffusionXLPipeline",
        "_diffusers_version": DIFFUSERS_VERSION, "feature_extractor": NULL, "image_encoder": NULL,
        "force_zeros_for_empty_prompt": True, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }
    if inpaint:
        index["requires_aesthetics_score"] = False
    return {
        "model_index.json": index,
        "unet/config.json": {**SDXL_UNET, "in_channels": 9 if inpaint else 4},
        "vae/config.json": SDXL_VAE,
        "text_encoder/config.json": CLIP_L,
        "text_encoder_2/config.json": CLIP_BIGG,
        "scheduler/scheduler_config.json": {
            "_class_name": "EulerDiscreteScheduler", **SCHEDULER, "interpolation_type": "linear",
            "use_karras_sigmas": False, "sample_max_value": 1.0,
        },
        "tokenizer/tokenizer_config.json": TOKENIZER,
        "tokenizer_2/tokenizer_config.json": {**TOKENIZER, "pad_token": "!"},
    }


def _sdxl_refiner() -> dict[str, dict]:
    """The SDXL refiner: an img2img pipeline with no first text encoder that conditions on an aesthetic score."""
    files = _sdxl(False)
    index = {**files["model_index.json"], "_class_name": "StableDiffusionXLImg2ImgPipeline",
             "force_zeros_for_empty_prompt": False, "requires_aesthetics_score": True, "text_encoder": NULL,
             "tokenizer": NULL}
    del files["text_encoder/config.json"], files["tokenizer/tokenizer_config.json"]
    return {**files, "model_index.json": index, "unet/config.json": SDXL_REFINER_UNET}


SKELETONS = {"sd15": _sd15(False), "sd15-inpaint": _sd15(True), "sdxl": _sdxl(False), "sdxl-inpaint": _sdxl(True),
             "sdxl-refiner": _sdxl_refiner()}


def controlnet_config(unet: dict) -> dict:
    """A ControlNet's config for a UNet: what ``ControlNetModel.from_unet`` derives (built on the meta device,
    so no weights exist), which is how lllyasviel's SD 1.5 and diffusers' SDXL ControlNets are shaped."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.device("meta"):
        model = ControlNetModel.from_unet(UNet2DConditionModel.from_config(unet), load_weights_from_unet=False)
    return {"_class_name": "ControlNetModel", **{k: v for k, v in dict(model.config).items() if not k.startswith("_")}}


def write_skeletons(root: Path) -> None:
    for name, files in SKELETONS.items():
        for rel, obj in files.items():
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    for family in ("sd15", "sdxl"):  # single-file ControlNets (control/models.py)
        path = root / f"controlnet-{family}" / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        config = controlnet_config(SKELETONS[family]["unet/config.json"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open-clip-wheel", type=Path, help="open_clip_torch wheel holding the CLIP BPE merges")
    args = parser.parse_args()
    write_skeletons(HERE)
    if args.open_clip_wheel:
        with zipfile.ZipFile(args.open_clip_wheel) as wheel:
            bpe = wheel.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
        vocab, merges = vocab_from_bpe_gz(bpe)
        write_vocab(vocab, merges, SHARED_TOKENIZER_DIR)
        print(f"wrote {len(vocab)} tokens, {len(merges)} merges to {SHARED_TOKENIZER_DIR}")


if __name__ == "__main__":
    main()
