"""The built-in ``tiny`` models: SD 1.5-, SDXL- and SDXL-refiner-shaped pipelines with seeded random weights.

They exist so the whole backend runs anywhere with no download: every code path of a real model, a few MB
of weights, milliseconds per step. They produce coloured noise, not pictures. The VAE keeps four levels so
the latent is 1/8 of the image side as in real SD. Building never touches the global torch RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .clip_vocab import MODEL_MAX_LENGTH, make_tiny_tokenizer

TINY_RESOLUTION = 256  # native side: keeps CPU cost sane while the latent is still 1/8 of the image
TEXT_HIDDEN = 32


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run module construction under a private RNG state (no global side effect)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def text_encoder_config(vocab_size: int, hidden: int = TEXT_HIDDEN) -> CLIPTextConfig:
    # bos/eos ids 0/2 (as in the real SD configs) make transformers pool at argmax(input_ids), i.e. the EOS token.
    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=MODEL_MAX_LENGTH, layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2,
        pad_token_id=1, projection_dim=hidden, hidden_act="quick_gelu",
    )


def unet_config(in_channels: int, *, xl: bool = False) -> dict:
    config: dict = {
        "sample_size": TINY_RESOLUTION // 8, "in_channels": in_channels, "out_channels": 4,
        "block_out_channels": (32, 64), "layers_per_block": 1, "attention_head_dim": 8, "norm_num_groups": 32,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "cross_attention_dim": TEXT_HIDDEN,
    }
    if xl:  # SDXL conditioning: two text encoders side by side, pooled text + 6 size numbers as extra embedding
        config |= {
            "cross_attention_dim": 2 * TEXT_HIDDEN, "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + TEXT_HIDDEN, "use_linear_projection": True,
            "transformer_layers_per_block": (1, 2), "attention_head_dim": (2, 4),
        }
    return config


VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (8, 16, 32, 32), "layers_per_block": 1,
    "norm_num_groups": 8, "latent_channels": 4, "sample_size": TINY_RESOLUTION, "scaling_factor": 0.18215,
    "force_upcast": False,  # fp16-safe; avoids SDXL pipelines re-casting it every call
}
SCHEDULER_CONFIG = {  # SD 1.5 / SDXL values
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "steps_offset": 1, "prediction_type": "epsilon", "timestep_spacing": "leading",
}


def tiny_sd15_components(*, inpaint: bool, seed: int = 0, tokenizer: CLIPTokenizer | None = None) -> dict:
    """Components of a tiny SD 1.5 pipeline; pass the real CLIP ``tokenizer`` to get a 49408-token text encoder."""
    tokenizer = tokenizer or make_tiny_tokenizer()
    with _seeded(seed):
        return {
            "unet": UNet2DConditionModel(**unet_config(9 if inpaint else 4)).eval(),
            "vae": AutoencoderKL(**VAE_CONFIG).eval(),
            "text_encoder": CLIPTextModel(text_encoder_config(len(tokenizer))).eval(),
            "tokenizer": tokenizer,
            "scheduler": EulerDiscreteScheduler(**SCHEDULER_CONFIG),
            "safety_checker": None,
            "feature_extractor": None,
            "image_encoder": None,
            "requires_safety_checker": False,
        }


def build_tiny_sd15(*, inpaint: bool, seed: int = 0) -> StableDiffusionPipeline | StableDiffusionInpaintPipeline:
    """The built-in ``tiny`` (4-channel) or ``tiny-inpaint`` (9-channel UNet) pipeline."""
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    return cls(**tiny_sd15_components(inpaint=inpaint, seed=seed))


def build_tiny_sdxl(*, inpaint: bool, seed: int = 0) -> StableDiffusionXLPipeline | StableDiffusionXLInpaintPipeline:
    """A tiny SDXL-shaped pipeline (two text encoders, text_time conditioning) for tests of the SDXL code path."""
    tokenizer = make_tiny_tokenizer()
    tokenizer_2 = make_tiny_tokenizer()
    with _seeded(seed):
        components = {
            "unet": UNet2DConditionModel(**unet_config(9 if inpaint else 4, xl=True)).eval(),
            "vae": AutoencoderKL(**VAE_CONFIG).eval(),
            "text_encoder": CLIPTextModel(text_encoder_config(len(tokenizer))).eval(),
            "text_encoder_2": CLIPTextModelWithProjection(text_encoder_config(len(tokenizer_2))).eval(),
            "tokenizer": tokenizer,
            "tokenizer_2": tokenizer_2,
            "scheduler": EulerDiscreteScheduler(**SCHEDULER_CONFIG),
        }
    if inpaint:
        return StableDiffusionXLInpaintPipeline(**components, requires_aesthetics_score=False)
    return StableDiffusionXLPipeline(**components)


def build_tiny_sdxl_refiner(*, seed: int = 1) -> StableDiffusionXLImg2ImgPipeline:
    """A tiny SDXL-refiner-shaped pipeline: as stabilityai's refiner, only the second text encoder, and a UNet
    whose extra embedding takes 5 numbers (sizes, crop and the aesthetic score) instead of the base's 6."""
    tokenizer_2 = make_tiny_tokenizer()
    config = unet_config(4, xl=True) | {
        "cross_attention_dim": TEXT_HIDDEN, "projection_class_embeddings_input_dim": 5 * 8 + TEXT_HIDDEN,
    }
    with _seeded(seed):
        return StableDiffusionXLImg2ImgPipeline(
            unet=UNet2DConditionModel(**config).eval(), vae=AutoencoderKL(**VAE_CONFIG).eval(), text_encoder=None,
            text_encoder_2=CLIPTextModelWithProjection(text_encoder_config(len(tokenizer_2))).eval(),
            tokenizer=None, tokenizer_2=tokenizer_2, scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
            requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
        )


def _dit() -> Any:
    from . import tiny_dit  # built from this module's parts, so imported when first used

    return tiny_dit


# the built-in models by name (models/registry.py BUILTINS says their base): each call builds a fresh pipeline
BUILDERS: dict[str, Callable[[], DiffusionPipeline]] = {
    "tiny": lambda: build_tiny_sd15(inpaint=False),
    "tiny-inpaint": lambda: build_tiny_sd15(inpaint=True),
    "tiny-sdxl": lambda: build_tiny_sdxl(inpaint=False),
    "tiny-sdxl-refiner": build_tiny_sdxl_refiner,
    "tiny-sd3": lambda: _dit().build_tiny_sd3(),
    "tiny-flux": lambda: _dit().build_tiny_flux(),
}
