"""LoRAs in jobs: weight 0 is no LoRA, weights re-weight without reloading, tags, errors, job info."""

from __future__ import annotations

import numpy as np
import pytest
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.lora.apply import STATS
from latentbrush.backend.ops.prompt_cache import PROMPTS
from latentbrush.protocol import ErrorCode, LoraRef
from lora_helpers import Events, make_job


@pytest.fixture(scope="module")
def plain_engine() -> Engine:
    return Engine(EngineSettings(models_dir=None, device="cpu"))  # the same tiny model, no LoRA ever loaded


def test_weight_zero_is_no_lora_and_weight_one_changes_the_picture(run_job, plain_engine) -> None:
    never, _ = run_job(plain_engine)
    zero, info = run_job(loras=(LoraRef("detail", 0.0),))
    one, info_one = run_job(loras=(LoraRef("detail", 1.0),))
    assert np.array_equal(zero, never)
    assert not np.array_equal(one, never)
    assert info["loras"] == [{"name": "detail", "weight": 0.0}]
    assert info_one["loras"] == [{"name": "detail", "weight": 1.0}]


def test_a_job_without_loras_after_one_with_paints_as_if_none_was_ever_loaded(run_job, plain_engine) -> None:
    run_job(loras=(LoraRef("detail", 1.0), LoraRef("styles/unet-only", 0.7)))
    after, info = run_job()
    assert np.array_equal(after, run_job(plain_engine)[0]) and info["loras"] == []


def test_changing_a_weight_reweights_the_loaded_adapter(run_job) -> None:
    run_job(loras=(LoraRef("styles/unet-only", 1.0),))
    loads = STATS.loads
    half, _ = run_job(loras=(LoraRef("styles/unet-only", 0.5),))
    full, _ = run_job(loras=(LoraRef("styles/unet-only", 1.0),))
    assert STATS.loads == loads  # no file read again
    assert not np.array_equal(half, full)


def test_two_loras_together_differ_from_each_alone(run_job) -> None:
    both, info = run_job(loras=(LoraRef("detail", 0.8), LoraRef("styles/unet-only", 0.8)))
    alone, _ = run_job(loras=(LoraRef("detail", 0.8),))
    assert not np.array_equal(both, alone) and [x["name"] for x in info["loras"]] == ["detail", "styles/unet-only"]


def test_a_prompt_tag_is_a_lora_and_leaves_the_text(run_job) -> None:
    listed, _ = run_job(prompt="a cat ", loras=(LoraRef("detail", 0.6),))
    tagged, info = run_job(prompt="a cat <lora:detail:0.6>")
    assert np.array_equal(listed, tagged) and info["loras"] == [{"name": "detail", "weight": 0.6}]
    _, info = run_job(prompt="a cat <lora:detail>")
    assert info["loras"] == [{"name": "detail", "weight": 1.0}]


def test_the_list_wins_over_a_tag_of_the_same_name(run_job) -> None:
    _, info = run_job(prompt="a cat <lora:detail:2> <lora:styles/unet-only:0.3>", loras=(LoraRef("detail", 0.5),))
    assert info["loras"] == [{"name": "detail", "weight": 0.5}, {"name": "styles/unet-only", "weight": 0.3}]


def test_a_text_encoder_lora_is_part_of_the_prompt_cache_key(run_job) -> None:
    run_job(prompt="a photo", loras=(LoraRef("detail", 0.5),))
    misses = PROMPTS.stats.misses
    run_job(prompt="a photo", loras=(LoraRef("detail", 0.9),))  # its text-encoder layers changed the embedding
    assert PROMPTS.stats.misses == misses + 1
    run_job(prompt="a photo", loras=(LoraRef("styles/unet-only", 0.5),))
    misses = PROMPTS.stats.misses
    run_job(prompt="a photo", loras=(LoraRef("styles/unet-only", 0.9),))  # UNet only: the same embedding
    assert PROMPTS.stats.misses == misses


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"loras": (LoraRef("nope", 1.0),)}, ErrorCode.BAD_FIELD, "job.loras[0].name"),
    ({"loras": (LoraRef("detail"), LoraRef("nope"))}, ErrorCode.BAD_FIELD, "job.loras[1].name"),
    ({"prompt": "a cat <lora:nope:1>"}, ErrorCode.BAD_FIELD, "job.prompt"),
    ({"prompt": "a cat <lora:detail:strong>"}, ErrorCode.BAD_FIELD, "job.prompt"),
    ({"prompt": "a cat <lora:detail:9>"}, ErrorCode.BAD_FIELD, "job.prompt"),
    ({"loras": (LoraRef("detail"), LoraRef("detail"))}, ErrorCode.BAD_FIELD, "job.loras[1].name"),
    ({"loras": (LoraRef("real-sd15"),)}, ErrorCode.NOT_SUPPORTED, "job.loras[0].name"),  # another family
    ({"loras": (LoraRef("loha"),)}, ErrorCode.NOT_SUPPORTED, "job.loras[0].name"),  # diffusers cannot load it
    ({"op": "preprocess", "loras": (LoraRef("detail"),)}, ErrorCode.NOT_SUPPORTED, "job.loras"),
])
def test_bad_loras_get_their_error_before_and_when_running(lora_engine: Engine, fields, code, field) -> None:
    job = make_job(**fields)
    error = lora_engine.check(job)
    assert error is not None and (error.code, error.field) == (code, field), error
    with pytest.raises(EngineError) as raised:
        lora_engine.run(job, {}, Events())
    assert (raised.value.code, raised.value.field) == (code, field)


def test_the_wrong_family_error_names_both_families(lora_engine: Engine) -> None:
    error = lora_engine.check(make_job(loras=(LoraRef("real-sd15"),)))
    assert error is not None and "sd15" in error.message and "tiny" in error.message


def test_an_unknown_model_is_reported_before_its_loras(lora_engine: Engine) -> None:
    error = lora_engine.check(make_job(model="nope", loras=(LoraRef("nope"),)))
    assert error is not None and error.field == "job.model"


def test_a_long_prompt_with_a_lora_tag_reports_its_chunks_and_the_lora(run_job) -> None:
    _, info = run_job(prompt="a cat " * 60 + "<lora:detail:0.8>", negative_prompt="the photo", cfg=5.0)
    assert (info["prompt_chunks"], info["negative_prompt_chunks"]) == (2, 1)
    assert info["loras"] == [{"name": "detail", "weight": 0.8}]


def test_an_upscale_refine_applies_the_loras_too(lora_engine: Engine) -> None:
    from latentbrush.backend.inputs import InputPixels
    from latentbrush.protocol import JobInput, UpscaleParams

    picture = np.random.default_rng(4).integers(0, 256, (64, 64, 4), np.uint8)
    picture[..., 3] = 255
    inputs = {"image": (InputPixels(JobInput("image", "sha256:" + "0" * 64), picture, "job.image"),)}
    params = UpscaleParams(upscaler="lanczos", scale=2.0, refine=True, refine_strength=0.5, refine_tile=256)

    def upscale(**fields) -> np.ndarray:
        job = make_job(op="upscale", image="sha256:" + "0" * 64, upscale=params, **fields)
        return lora_engine.run(job, inputs, Events()).images[0]

    plain = upscale()
    assert not np.array_equal(upscale(prompt="a cat <lora:detail:1>"), plain)
    assert np.array_equal(upscale(loras=(LoraRef("detail", 0.0),)), plain)


def test_sdxl_loras_and_long_prompts_on_the_tiny_sdxl_model(run_job) -> None:
    common = {"model": "tiny-sdxl", "cfg": 5.0, "negative_prompt": "the photo"}
    never, _ = run_job(**common)
    zero, _ = run_job(loras=(LoraRef("xl-detail", 0.0),), **common)
    one, info = run_job(prompt="a cat " * 60 + "<lora:xl-detail:1>", **common)
    assert np.array_equal(zero, never) and not np.array_equal(one, never)
    assert (info["prompt_chunks"], info["negative_prompt_chunks"], info["loras"]) == (
        2, 1, [{"name": "xl-detail", "weight": 1.0}])


def test_past_the_limit_the_least_recently_used_adapter_goes(run_job, lora_models, monkeypatch) -> None:
    from latentbrush.backend.lora import apply

    engine = Engine(EngineSettings(models_dir=lora_models, device="cpu"))  # its own tiny model: no adapters yet
    first, _ = run_job(engine, loras=(LoraRef("detail", 1.0),))
    monkeypatch.setattr(apply, "MAX_LOADED", 1)
    run_job(engine, loras=(LoraRef("styles/unet-only", 1.0),))
    adapters = engine.load("tiny").pipeline("txt2img").get_list_adapters()
    assert len(adapters["unet"]) == 1 and not adapters.get("text_encoder")  # detail's layers went with it
    loads = STATS.loads
    again, _ = run_job(engine, loras=(LoraRef("detail", 1.0),))
    assert STATS.loads == loads + 1 and np.array_equal(again, first)  # read again, the same LoRA
