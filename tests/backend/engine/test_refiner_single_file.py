"""A single-file SDXL refiner (``sd_xl_refiner_1.0.safetensors`` layout) loads offline through the shipped
``sdxl-refiner`` skeleton and continues an SDXL model's job, taking the model's VAE instead of its own."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models import detect
from latentbrush.backend.models.clip_vocab import CONFIGS_DIR, load_shipped_tokenizer
from latentbrush.backend.models.ldm_layout import unet_to_ldm, vae_to_ldm
from latentbrush.backend.models.tiny import (
    SCHEDULER_CONFIG,
    build_tiny_sdxl,
    build_tiny_sdxl_refiner,
    text_encoder_config,
)
from latentbrush.protocol import Rect, Size
from safetensors.torch import save_file
from transformers import CLIPTextModelWithProjection

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)

OPEN_CLIP = "conditioner.embedders.0.model."  # the refiner's only text encoder, OpenCLIP bigG in the original
TEXT_LAYERS = 10  # diffusers' and detect.py's refiner marker is the 10th resblock's MLP bias


def open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection in OpenCLIP's layout: the inverse of diffusers' convert_open_clip_checkpoint."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    fixed = {"text_model.embeddings.position_embedding.weight": "positional_embedding",
             "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
             "text_model.final_layer_norm.weight": "ln_final.weight",
             "text_model.final_layer_norm.bias": "ln_final.bias"}
    for key, value in state.items():
        key = key if key.startswith(("text_model.", "text_projection")) else "text_model." + key
        if key in fixed:
            out[OPEN_CLIP + fixed[key]] = value
        elif key == "text_projection.weight":
            out[OPEN_CLIP + "text_projection"] = value.T.contiguous()
        else:
            rest = key.removeprefix("text_model.encoder.layers.")
            layer, _, rest = rest.partition(".")
            block = f"{OPEN_CLIP}transformer.resblocks.{layer}."
            for part in ("q", "k", "v"):
                if rest.startswith(f"self_attn.{part}_proj."):
                    qkv.setdefault(block + "attn.in_proj_" + rest.rsplit(".", 1)[1], {})[part] = value
                    break
            else:
                for ours, theirs in (("self_attn.", "attn."), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                                     ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                    rest = rest.replace(ours, theirs)
                out[block + rest] = value
    for name, parts in qkv.items():
        out[name] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def write_refiner_checkpoint(pipe: StableDiffusionXLImg2ImgPipeline, path: Path) -> Path:
    unet = {k: v for k, v in pipe.unet.state_dict().items() if not k.startswith("add_embedding.")}
    state = {
        **unet_to_ldm(unet, pipe.unet.config),
        **{f"model.diffusion_model.label_emb.0.{0 if '_1.' in k else 2}.{k.rsplit('.', 1)[1]}": v
           for k, v in pipe.unet.state_dict().items() if k.startswith("add_embedding.")},
        **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
        **open_clip_to_ldm(pipe.text_encoder_2.state_dict()),
    }
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def refiner_file_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, StableDiffusionXLImg2ImgPipeline]:
    """A models folder with a tiny SDXL folder and a tiny refiner single file; the shipped refiner skeleton with
    the tiny component sizes (its tokenizer stays the real CLIP one, so the text encoder has 49408 tokens)."""
    root = tmp_path_factory.mktemp("refiner-file")
    models, skeletons = root / "models", root / "skeletons"
    models.mkdir()
    build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(models / "xl-base")
    tokenizer_2 = load_shipped_tokenizer(CONFIGS_DIR / "sdxl-refiner" / "tokenizer_2")
    small = build_tiny_sdxl_refiner(seed=8)
    torch.manual_seed(9)
    text_config = text_encoder_config(len(tokenizer_2))
    text_config.num_hidden_layers = TEXT_LAYERS
    source = StableDiffusionXLImg2ImgPipeline(
        unet=small.unet, vae=small.vae, text_encoder=None, tokenizer=None, tokenizer_2=tokenizer_2,
        text_encoder_2=CLIPTextModelWithProjection(text_config).eval(),
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG), requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False)
    write_refiner_checkpoint(source, models / "sd_xl_refiner_tiny.safetensors")
    shutil.copytree(CONFIGS_DIR / "sdxl-refiner", skeletons / "sdxl-refiner")
    saved = root / "saved"
    source.save_pretrained(saved)
    for part in ("unet", "vae", "text_encoder_2"):
        shutil.copy(saved / part / "config.json", skeletons / "sdxl-refiner" / part / "config.json")
    return models, skeletons, source


def test_a_refiner_single_file_loads_offline_and_continues_an_sdxl_model(refiner_file_setup, make_job,
                                                                         make_events) -> None:
    models, skeletons, source = refiner_file_setup
    assert detect.detect_file(models / "sd_xl_refiner_tiny.safetensors") == ("sdxl-refiner", False)
    engine = Engine(EngineSettings(models_dir=models, device="cpu", configs_dir=skeletons))
    info = {m.name: m for m in engine.describe().models}
    assert info["sd_xl_refiner_tiny"].base == "sdxl-refiner" and engine.describe().default_model == "xl-base"
    job = make_job(model="xl-base", refiner="sd_xl_refiner_tiny", canvas=Size(64, 64), region=Rect(0, 0, 64, 64),
                   resolution=Size(64, 64), steps=4, refiner_at=0.5)
    events = make_events()
    out = engine.run(job, {}, events)
    assert out.info["refiner"] == {"model": "sd_xl_refiner_tiny", "at": 0.5, "handoff_step": 2, "steps": 2}
    assert [p[0] for p in events.of("progress")] == [1, 2, 3, 4]
    refiner = engine.load_refiner(job)
    base = engine.load("xl-base")
    assert refiner.component("vae") is base.component("vae")  # the same architecture: not loaded twice
    # its text encoder (10 layers, the real vocabulary) is not the base's: loaded from the file, bit for bit
    assert refiner.component("text_encoder_2") is not base.component("text_encoder_2")
    for name, tensor in source.text_encoder_2.state_dict().items():
        torch.testing.assert_close(refiner.component("text_encoder_2").state_dict()[name], tensor, rtol=0, atol=0)
    for name, tensor in source.unet.state_dict().items():
        torch.testing.assert_close(refiner.component("unet").state_dict()[name], tensor, rtol=0, atol=0)
    alone = engine.run(dataclasses.replace(job, refiner=None), {}, make_events())
    assert not np.array_equal(out.images[0], alone.images[0])

