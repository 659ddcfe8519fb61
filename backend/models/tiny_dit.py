"""The built-in ``tiny-sd3`` and ``tiny-flux`` models: SD3- and Flux.1-shaped pipelines with seeded random weights.

Like ``tiny.py``'s UNet models they run every code path of the real families with no download: a 16-channel
latent at 1/8 of the image side, a transformer (MMDiT / Flux DiT) patchifying it 2x2, two CLIP text encoders
(SD3) or CLIP + T5 (Flux), a T5 encoder (SD3's optional third one) and flow-matching schedulers configured as
the public model repositories configure theirs. The T5 tokenizer is a small Unigram vocabulary built here
(``tokenizers``), so nothing is fetched. Building never touches the global torch RNG.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxFillPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from transformers import (
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

from .clip_vocab import make_tiny_tokenizer
from .tiny import TEXT_HIDDEN, TINY_RESOLUTION, _seeded, text_encoder_config

# SD3's second CLIP is wider than its first (OpenCLIP bigG 1280 vs CLIP-L 768): diffusers' single-file loader
# tells the two apart by that width, so the tiny ones differ too
CLIP_G_HIDDEN = 48
T5_HIDDEN = 96  # SD3 pads the two CLIP outputs side by side (32 + 48) up to T5's width
T5_MAX_LENGTH = 256  # what the pipelines ask for by default (Flux schnell's and SD3's max_sequence_length)
T5_WORDS = ("a", "cat", "photo", "of", "the", "painting", "dog", "red", "blue", "sky")

# The public repositories' latent statistics (stabilityai/stable-diffusion-3-medium-diffusers and
# black-forest-labs/FLUX.1-dev vae/config.json): the preview factors assume latents scaled this way.
SD3_VAE = {"scaling_factor": 1.5305, "shift_factor": 0.0609}
FLUX_VAE = {"scaling_factor": 0.3611, "shift_factor": 0.1159}
# scheduler/scheduler_config.json of the same repositories: SD3 shifts its sigmas by 3; Flux shifts them by
# the image's token count (use_dynamic_shifting, mu from base_shift..max_shift)
SD3_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}
FLUX_SCHEDULER = {
    "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
    "base_image_seq_len": 256, "max_image_seq_len": 4096,
}
FLUX_FILL_IN_CHANNELS = 384  # 64 packed latent + 64 packed masked-image latent + 256 packed 8x8 mask channels


def tiny_t5_tokenizer() -> T5TokenizerFast:
    """A T5-style (SentencePiece Unigram) tokenizer over a handful of words, built offline."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + word, -1.0) for word in T5_WORDS]
    pieces += [(chr(c), -5.0) for c in range(ord("a"), ord("z") + 1)]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def _t5(vocab_size: int) -> T5EncoderModel:
    config = T5Config(vocab_size=vocab_size, d_model=T5_HIDDEN, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config).eval()


def _vae(shift: dict) -> AutoencoderKL:
    # no quant convs: the SD3 and Flux VAEs have none (use_quant_conv / use_post_quant_conv false)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 32, 32), layers_per_block=1,
        norm_num_groups=8, latent_channels=16, sample_size=TINY_RESOLUTION, use_quant_conv=False,
        use_post_quant_conv=False, force_upcast=False, **shift,
    ).eval()


def build_tiny_sd3(
    *, seed: int = 0, t5: bool = True, tokenizer: CLIPTokenizer | None = None, tokenizer_2: CLIPTokenizer | None = None
) -> StableDiffusion3Pipeline:
    """The built-in ``tiny-sd3``: MMDiT, two CLIP encoders with projections and (with ``t5``) a T5 encoder.
    Pass the real CLIP tokenizers to get 49408-token text encoders (what single-file checkpoints hold)."""
    tokenizer, tokenizer_2 = tokenizer or make_tiny_tokenizer(), tokenizer_2 or make_tiny_tokenizer()
    tokenizer_3 = tiny_t5_tokenizer()
    with _seeded(seed):
        transformer = SD3Transformer2DModel(
            sample_size=TINY_RESOLUTION // 8, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
            attention_head_dim=8, num_attention_heads=4, joint_attention_dim=T5_HIDDEN, caption_projection_dim=32,
            pooled_projection_dim=TEXT_HIDDEN + CLIP_G_HIDDEN, pos_embed_max_size=64,  # 64 patches: 1024 px sides
        ).eval()
        clip_l = CLIPTextModelWithProjection(text_encoder_config(len(tokenizer))).eval()
        # Stability's SD3 files hold CLIP-L without its projection; diffusers loads it as the identity
        clip_l.text_projection.weight.data.copy_(torch.eye(TEXT_HIDDEN))
        components = {
            "transformer": transformer,
            "vae": _vae(SD3_VAE),
            "text_encoder": clip_l,
            "text_encoder_2": CLIPTextModelWithProjection(text_encoder_config(len(tokenizer_2), CLIP_G_HIDDEN)).eval(),
            "text_encoder_3": _t5(len(tokenizer_3)) if t5 else None,
            "tokenizer": tokenizer, "tokenizer_2": tokenizer_2, "tokenizer_3": tokenizer_3 if t5 else None,
            "scheduler": FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER),
        }
    return StableDiffusion3Pipeline(**components)


def build_tiny_flux(*, seed: int = 0, fill: bool = False) -> FluxPipeline | FluxFillPipeline:
    """The built-in ``tiny-flux`` (guidance-distilled, as FLUX.1-dev) or, with ``fill``, a Fill-shaped model
    whose transformer also takes the masked image and the mask (384 input channels, as FLUX.1-Fill-dev)."""
    tokenizer, tokenizer_2 = make_tiny_tokenizer(), tiny_t5_tokenizer()
    with _seeded(seed):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=FLUX_FILL_IN_CHANNELS if fill else 64, out_channels=64, num_layers=1,
            num_single_layers=2, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=T5_HIDDEN,
            pooled_projection_dim=TEXT_HIDDEN, guidance_embeds=True, axes_dims_rope=(4, 6, 6),
        ).eval()
        components = {
            "transformer": transformer,
            "vae": _vae(FLUX_VAE),
            "text_encoder": CLIPTextModel(text_encoder_config(len(tokenizer))).eval(),
            "text_encoder_2": _t5(len(tokenizer_2)),
            "tokenizer": tokenizer, "tokenizer_2": tokenizer_2,
            "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
        }
    return FluxFillPipeline(**components) if fill else FluxPipeline(**components)
