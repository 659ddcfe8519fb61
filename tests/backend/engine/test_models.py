"""Model discovery, base-type detection, offline loading of single files / folders / Hub ids, and the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.models import detect
from latentbrush.backend.models.clip_vocab import CONFIGS_DIR, load_shipped_tokenizer
from latentbrush.backend.models.registry import BUILTINS
from latentbrush.backend.ops import masks
from latentbrush.backend.ops.samplers import make_scheduler
from latentbrush.protocol import ErrorCode, Rect, Size
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)

UNET = "model.diffusion_model."
SD15_KEYS = {
    UNET + "input_blocks.0.0.weight": [320, 4, 3, 3],
    UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": [77, 768],
}
SDXL_KEYS = {
    UNET + "input_blocks.0.0.weight": [320, 4, 3, 3],
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": [77, 768],
    "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": [1280],
}


def with_inpaint(keys: dict[str, list[int]]) -> dict[str, list[int]]:
    return {**keys, UNET + "input_blocks.0.0.weight": [320, 9, 3, 3]}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (SD15_KEYS, ("sd15", False)),
        (with_inpaint(SD15_KEYS), ("sd15", True)),
        (SDXL_KEYS, ("sdxl", False)),
        (with_inpaint(SDXL_KEYS), ("sdxl", True)),
        ({**SD15_KEYS, UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": [320, 1024]}, ("sd2", False)),
        ({"conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias": [1280]}, ("sdxl-refiner", False)),
        ({"double_blocks.0.img_attn.norm.key_norm.scale": [128]}, ("flux", False)),
        ({"lora_unet_down_blocks_0_attentions_0_proj_in.alpha": []}, ("unknown", False)),
        ({UNET + "input_blocks.0.0.weight": [320, 4, 3, 3]}, ("unknown", False)),  # a UNet without text encoder
    ],
)
def test_detect_keys(keys: dict[str, list[int]], expected: tuple[str, bool]) -> None:
    found = detect.detect_keys(keys)
    assert tuple(found) == expected
    assert found.supported == (expected[0] in ("sd15", "sdxl", "sdxl-refiner"))  # a refiner: for job.refiner
    assert bool(found.refusal) == (expected[0] in ("sd2", "flux"))


def test_detect_reads_only_the_header_of_synthetic_sdxl_files(tmp_path: Path, write_header) -> None:
    shrunk = {k: tuple(1 if i != 1 else d for i, d in enumerate(s)) or (1,) for k, s in SDXL_KEYS.items()}
    plain = write_header(tmp_path / "xl.safetensors", shrunk)
    conv_in_9 = {**shrunk, UNET + "input_blocks.0.0.weight": (1, 9)}
    inpaint = write_header(tmp_path / "xl-inpaint.safetensors", conv_in_9)
    assert detect.detect_file(plain) == ("sdxl", False)
    assert detect.detect_file(inpaint) == ("sdxl", True)


def test_detect_tiny_a1111_checkpoints(models_dir: Path) -> None:
    assert detect.detect_file(models_dir / "tiny-a1111.safetensors") == ("sd15", False)
    assert detect.detect_file(models_dir / "inpainting" / "tiny-a1111-inpaint.safetensors") == ("sd15", True)


# ---------------------------------------------------------------------------------------------- skeletons

KNOWN_PARAMETERS = {  # parameter counts of the public SD 1.5 / SDXL 1.0 components
    "unet": {"sd15": 859_520_964, "sd15-inpaint": 859_535_364, "sdxl": 2_567_463_684, "sdxl-inpaint": 2_567_478_084},
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "text_encoder_2": 694_659_840,
}


@pytest.mark.parametrize("skeleton", ["sd15", "sd15-inpaint", "sdxl", "sdxl-inpaint"])
def test_shipped_skeletons_build_the_full_size_architectures(skeleton: str) -> None:
    folder = CONFIGS_DIR / skeleton
    index = json.loads((folder / "model_index.json").read_text())
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    with init_empty_weights():  # meta tensors: no memory, no time
        unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text()))
        text = CLIPTextModel(CLIPTextConfig.from_json_file(folder / "text_encoder" / "config.json"))
        assert count(unet) == KNOWN_PARAMETERS["unet"][skeleton]
        assert count(vae) == KNOWN_PARAMETERS["vae"] and count(text) == KNOWN_PARAMETERS["text_encoder"]
        if skeleton.startswith("sdxl"):
            config_2 = CLIPTextConfig.from_json_file(folder / "text_encoder_2" / "config.json")
            text_2 = CLIPTextModelWithProjection(config_2)
            assert count(text_2) == KNOWN_PARAMETERS["text_encoder_2"]
            assert index["tokenizer_2"] == ["transformers", "CLIPTokenizer"]
    assert index["_class_name"].endswith("InpaintPipeline") == skeleton.endswith("inpaint")
    assert make_scheduler("Euler a", json.loads((folder / "scheduler" / "scheduler_config.json").read_text()))


def test_shipped_tokenizers_are_the_real_clip_vocabulary() -> None:
    tokenizer = load_shipped_tokenizer(CONFIGS_DIR / "sd15" / "tokenizer")
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    second = load_shipped_tokenizer(CONFIGS_DIR / "sdxl" / "tokenizer_2")
    assert second.pad_token == "!" and second.pad_token_id == 0
    assert (CONFIGS_DIR / "README.md").is_file()


# ---------------------------------------------------------------------------------------------- folder discovery


def test_models_folder_discovery(folder_engine: Engine) -> None:
    info = {m.name: m for m in folder_engine.describe().models}
    assert set(info) == {"tiny-a1111", "inpainting/tiny-a1111-inpaint", "tiny-xl", *BUILTINS}
    assert (info["tiny-a1111"].base, info["tiny-a1111"].inpaint, info["tiny-a1111"].source) == ("sd15", False, "file")
    assert info["inpainting/tiny-a1111-inpaint"].inpaint
    assert (info["tiny-xl"].base, info["tiny-xl"].source, info["tiny-xl"].resolution) == ("sdxl", "folder", 1024)
    assert folder_engine.describe().default_model != "tiny"


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("old", ErrorCode.NOT_SUPPORTED, "pickle"),
        ("sd2-model", ErrorCode.NOT_SUPPORTED, "2.x"),
        ("broken", ErrorCode.NOT_SUPPORTED, "unreadable"),
        ("some-lora", ErrorCode.UNKNOWN_MODEL, "unknown"),
        ("upscale/4x-tiny", ErrorCode.UNKNOWN_MODEL, "unknown"),
    ],
)
def test_unusable_files_get_a_clear_reason(folder_engine: Engine, make_job, name: str, code: ErrorCode, words: str):
    error = folder_engine.check(make_job(model=name))
    assert error is not None and error.code == code and error.field == "job.model" and words in error.message


def test_single_file_loads_offline_bit_exact(folder_engine: Engine, tiny_sd15_pipelines: dict[str, Any], make_job,
                                             events) -> None:
    out = folder_engine.run(make_job(model="tiny-a1111", steps=2, cfg=5.0), {}, events)
    source = tiny_sd15_pipelines["plain"]
    source.scheduler = make_scheduler("Euler", source.scheduler.config)
    expected = source("", num_inference_steps=2, guidance_scale=5.0, height=128, width=128, output_type="np",
                      generator=torch.Generator().manual_seed(1234)).images[0]
    np.testing.assert_array_equal(out.images[0][..., :3], np.rint(expected * 255).astype(np.uint8))
    assert out.info["base"] == "sd15"


def test_single_file_inpaint_model(folder_engine: Engine, make_job, events, picture) -> None:
    mask = np.zeros((128, 128), np.uint8)
    mask[40:90, 30:100] = 255
    job = make_job(model="inpainting/tiny-a1111-inpaint", op="inpaint", image=True, mask=True, mask_grow=2)
    out = folder_engine.run(job, engine_inputs(picture(128, 128), mask), events)
    alpha = out.images[0][..., 3]
    assert not alpha[masks.grow(mask, 2) == 0].any() and (alpha[mask > 0] == 255).all()
    assert out.info["prefill"] == "none" and len(events.previews) == 2


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_sdxl_folder_model_runs_every_op(folder_engine: Engine, make_job, events, picture, op: str) -> None:
    mask = np.zeros((96, 128), np.uint8)
    mask[20:70, 30:90] = 255
    job = make_job(model="tiny-xl", op=op, canvas=Size(128, 96), region=Rect(0, 0, 128, 96),
                   resolution=Size(128, 96), strength=0.75, steps=4, image=op != "txt2img" or None,
                   mask=op == "inpaint" or None)
    image = picture(128, 96) if op != "txt2img" else None
    out = folder_engine.run(job, engine_inputs(image, mask if op == "inpaint" else None), events)
    assert out.images[0].shape == (96, 128, 4) and out.info["base"] == "sdxl"
    assert len(events.previews) == (4 if op == "txt2img" else 3)  # strength 0.75 x 4 steps
    assert events.previews[0][2].shape == (96, 128, 3)  # the region's size; jpeg previews are opaque


# ---------------------------------------------------------------------------------------------- Hub and cache


def test_hub_model_offline_is_a_clear_error(make_job, events) -> None:
    engine = Engine(EngineSettings(device="cpu", hub_models=("latentbrush-tests/not-downloaded",)))
    info = engine.describe()
    assert info.default_model == "latentbrush-tests/not-downloaded"
    assert info.models[0].source == "hub" and info.models[0].base == "unknown"
    with pytest.raises(EngineError) as error:
        engine.run(make_job(), {}, events)
    assert error.value.code == ErrorCode.UNKNOWN_MODEL and error.value.field == "job.model"
    assert "cache" in error.value.message


def test_cache_evicts_least_recently_used(make_job, make_events) -> None:
    engine = Engine(EngineSettings(device="cpu", cache_budget_bytes=1))  # room for the newest model only
    engine.run(make_job(steps=1), {}, make_events())
    assert "tiny" in engine.cache
    engine.run(make_job(steps=1, model="tiny-inpaint"), {}, make_events())
    assert "tiny-inpaint" in engine.cache and "tiny" not in engine.cache


def test_missing_models_folder_falls_back_to_tiny(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        engine = Engine(EngineSettings(models_dir=tmp_path / "nope", device="cpu"))
    assert engine.describe().default_model == "tiny"
    assert "noise, not pictures" in caplog.text


def test_task_variants_share_modules_and_keep_the_dtype() -> None:
    engine = Engine(EngineSettings(device="cpu", dtype="bfloat16"))
    model, _ = engine.cache.get(engine.registry.get("tiny"))
    pipes = [model.pipeline(task) for task in ("txt2img", "img2img", "inpaint")]
    assert len({id(p) for p in pipes}) == 3 and len({id(p.unet) for p in pipes}) == 1
    for pipe in pipes:
        assert {m.dtype for m in (pipe.unet, pipe.vae, pipe.text_encoder)} == {torch.bfloat16}
    assert engine.describe().dtype == "bfloat16"


def test_a_user_file_named_tiny_does_not_hide_the_builtin(tmp_path: Path, tiny_sd15_pipelines: dict[str, Any]) -> None:
    from latentbrush.backend.models.folders import ModelFolders
    from latentbrush.backend.models.ldm_layout import write_sd15_checkpoint
    from latentbrush.backend.models.registry import ModelRegistry

    write_sd15_checkpoint(tiny_sd15_pipelines["plain"], tmp_path / "tiny.safetensors")
    registry = ModelRegistry(ModelFolders.from_models_dir(tmp_path))
    assert {"tiny", "tiny-inpaint", "tiny.safetensors"} <= {info.name for info in registry.infos()}
    assert registry.get("tiny").source == "builtin"
    assert registry.get("tiny.safetensors").source == "file" and registry.default == "tiny.safetensors"
