"""SD3 / SD3.5 and Flux.1 checkpoints as users have them: diffusers folders and single files, detected from
their files and loaded offline through the registry and loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from conftest import write_header_only
from diffusers import SD3Transformer2DModel
from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models import detect
from latentbrush.backend.models.clip_vocab import CONFIGS_DIR, load_shipped_tokenizer
from latentbrush.backend.models.dit_layout import sd3_transformer_to_original, write_sd3_checkpoint
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.models.registry import ModelRegistry
from latentbrush.backend.models.tiny_dit import build_tiny_flux, build_tiny_sd3
from latentbrush.protocol import ErrorCode, Rect, Size

SMALL = {"canvas": Size(64, 64), "region": Rect(0, 0, 64, 64), "resolution": Size(64, 64)}
UNET = "model.diffusion_model."
SD3_MARK = UNET + "joint_blocks.0.context_block.adaLN_modulation.1.bias"
CLIPS = {key: [1, 768] for key in detect.SD3_CLIPS}  # "incl_clips" files: CLIP-L and CLIP-G inside


@pytest.fixture(scope="module")
def sd3_source() -> Any:
    """A tiny SD3 whose CLIPs use the real 49408-token vocabulary, as a downloaded checkpoint's do."""
    return build_tiny_sd3(seed=6, tokenizer=load_shipped_tokenizer(CONFIGS_DIR / "sd3" / "tokenizer"),
                          tokenizer_2=load_shipped_tokenizer(CONFIGS_DIR / "sd3" / "tokenizer_2"))


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory, sd3_source: Any) -> tuple[Path, Path]:
    """(models folder, config skeletons): SD3 as a folder and a Stability-layout file, Flux folders, refused files;
    the shipped sd3 skeleton with the tiny component sizes (model_index, scheduler and tokenizers as shipped)."""
    root = tmp_path_factory.mktemp("family-models")
    sd3_source.save_pretrained(root / "tiny-sd3-folder")
    write_sd3_checkpoint(sd3_source, root / "tiny-sd3-file.safetensors")
    build_tiny_flux(seed=4).save_pretrained(root / "tiny-flux-dev")
    schnell = root / "FLUX.1-schnell-tiny"
    build_tiny_flux(seed=4).save_pretrained(schnell)
    config = json.loads((schnell / "transformer" / "config.json").read_text())
    (schnell / "transformer" / "config.json").write_text(json.dumps({**config, "guidance_embeds": False}))
    shutil.copytree(root / "tiny-sd3-folder", root / "sd3.5-large-turbo-tiny")
    write_header_only(root / "sd3-transformer-only.safetensors", {SD3_MARK: (1,)})
    write_header_only(root / "flux1-dev.safetensors", {"double_blocks.0.img_attn.norm.key_norm.scale": (1,),
                                                       "img_in.weight": (1, 64)})
    skeletons = tmp_path_factory.mktemp("family-skeletons")
    shutil.copytree(CONFIGS_DIR / "sd3", skeletons / "sd3")
    for part in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        shutil.copy(root / "tiny-sd3-folder" / part / "config.json", skeletons / "sd3" / part / "config.json")
    return root, skeletons


@pytest.fixture(scope="module")
def family_engine(family_models: tuple[Path, Path]) -> Engine:
    root, skeletons = family_models
    return Engine(EngineSettings(models_dir=root, device="cpu", configs_dir=skeletons))


# ---------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("keys", "expected", "skeleton"),
    [
        ({SD3_MARK: [9216], **CLIPS, detect.SD3_POS_EMBED: [1, 36864, 1536]},
         ("sd3", False), "sd3"),
        ({SD3_MARK: [9216], **CLIPS, detect.SD3_POS_EMBED: [1, 147456, 1536]},
         ("sd3", False), "sd35-medium"),
        ({SD3_MARK: [14592], **CLIPS, detect.SD35_LARGE: [9728, 2432]},
         ("sd3", False), "sd35-large"),
        ({SD3_MARK: [9216]}, ("sd3-bare", False), ""),
        ({"double_blocks.0.img_attn.norm.key_norm.scale": [128], "img_in.weight": [3072, 64]}, ("flux", False), ""),
        ({UNET + "double_blocks.0.img_attn.norm.key_norm.scale": [128], UNET + "img_in.weight": [3072, 384]},
         ("flux", True), ""),  # FLUX.1-Fill: masked image and mask in the input
    ],
)
def test_detect_sd3_and_flux_files(keys: dict[str, list[int]], expected: tuple[str, bool], skeleton: str) -> None:
    found = detect.detect_keys(keys)
    assert tuple(found) == expected
    assert found.supported == (expected[0] == "sd3")
    assert bool(found.refusal) == (expected[0] != "sd3")
    if skeleton:
        assert detect.sd3_skeleton(keys) == skeleton


def test_models_folder_offers_the_families(family_engine: Engine) -> None:
    infos = {m.name: m for m in family_engine.describe().models}
    assert (infos["tiny-sd3-folder"].base, infos["tiny-sd3-folder"].source) == ("sd3", "folder")
    assert (infos["tiny-sd3-file"].base, infos["tiny-sd3-file"].source) == ("sd3", "file")
    assert (infos["tiny-flux-dev"].base, infos["tiny-flux-dev"].inpaint) == ("flux", False)
    assert infos["tiny-sd3-file"].resolution == 1024 and infos["tiny-sd3-file"].samplers == ("Euler a", "Euler", "Heun")
    assert infos["FLUX.1-schnell-tiny"].preset.sampler == "Euler" and infos["FLUX.1-schnell-tiny"].preset.steps == 4
    assert infos["sd3.5-large-turbo-tiny"].preset.steps == 4 and infos["sd3.5-large-turbo-tiny"].preset.cfg == 1.0
    assert infos["tiny-flux-dev"].preset is None


@pytest.mark.parametrize(("name", "words"), [("sd3-transformer-only", "CLIP"), ("flux1-dev", "diffusers folder")])
def test_unusable_family_files_get_a_clear_reason(family_engine: Engine, make_job, name: str, words: str) -> None:
    error = family_engine.check(make_job(model=name))
    assert error is not None and error.code == ErrorCode.NOT_SUPPORTED and error.field == "job.model"
    assert words in error.message


def test_a_name_read_as_an_sd_few_step_model_gets_no_preset_on_a_flow_model(tmp_path: Path) -> None:
    build_tiny_flux(seed=1).save_pretrained(tmp_path / "flux-lcm-merge")
    (info,) = [m for m in ModelRegistry(ModelFolders.from_models_dir(tmp_path)).infos() if m.name == "flux-lcm-merge"]
    assert info.preset is None  # "lcm" would advise the LCM sampler, which does not fit a flow model


# ---------------------------------------------------------------------------------------------- loading


def test_stability_layout_round_trips_through_diffusers_converter() -> None:
    for extra in ({}, {"qk_norm": "rms_norm", "dual_attention_layers": (0,)}):  # SD3 Medium / SD3.5 shapes
        model = SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=3,
                                      attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
                                      caption_projection_dim=16, pooled_projection_dim=16, pos_embed_max_size=16,
                                      **extra)
        state = model.state_dict()
        original = sd3_transformer_to_original(state, 3)
        back = convert_sd3_transformer_checkpoint_to_diffusers({UNET + k: v for k, v in original.items()})
        assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_single_file_loads_offline_with_the_same_weights(family_engine: Engine, sd3_source: Any, make_job,
                                                         events) -> None:
    out = family_engine.run(make_job(model="tiny-sd3-file", steps=2, **SMALL), {}, events)
    assert out.info["t5"] is False  # no T5 tokenizer is shipped: single files run on the two CLIPs
    pipe = family_engine.load("tiny-sd3-file").pipeline("txt2img")
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(pipe, name).state_dict(), getattr(sd3_source, name).state_dict()
        assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in theirs), name


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_folder_models_run_every_op(family_engine: Engine, make_job, events, picture, op: str) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    fields = {"image": True, **({"mask": True} if op == "inpaint" else {})} if op != "txt2img" else {}
    inputs = engine_inputs(picture(64, 64) if op != "txt2img" else None, mask if op == "inpaint" else None)
    for model in ("tiny-sd3-folder", "tiny-flux-dev"):
        out = family_engine.run(make_job(model=model, op=op, steps=2, strength=0.5, **SMALL, **fields), inputs,
                                events)
        assert out.images[0].shape == (64, 64, 4) and out.info["t5"] is True


def test_folder_without_t5_when_asked(family_models: tuple[Path, Path], make_job, events) -> None:
    root, skeletons = family_models
    engine = Engine(EngineSettings(models_dir=root, device="cpu", configs_dir=skeletons, t5=False))
    out = engine.run(make_job(model="tiny-sd3-folder", steps=2, **SMALL), {}, events)
    assert out.info["t5"] is False and engine.load("tiny-sd3-folder").pipeline("txt2img").text_encoder_3 is None


@pytest.mark.parametrize(("skeleton", "billions"), [("sd3", 2.03), ("sd35-medium", 2.24), ("sd35-large", 8.06)])
def test_shipped_sd3_skeletons_build_the_full_size_transformers(skeleton: str, billions: float) -> None:
    folder = CONFIGS_DIR / skeleton
    with init_empty_weights():  # meta tensors: no memory
        model = SD3Transformer2DModel.from_config(json.loads((folder / "transformer" / "config.json").read_text()))
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == billions
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline" and index["text_encoder_3"] == [None, None]
