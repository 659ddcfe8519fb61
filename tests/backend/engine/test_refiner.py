"""SDXL base + refiner (SPEC.md 9.13) through Engine.run on the built-in tiny-sdxl and tiny-sdxl-refiner."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.models import detect
from latentbrush.backend.models.clip_vocab import CONFIGS_DIR
from latentbrush.backend.models.placement import module_bytes
from latentbrush.backend.models.tiny import SCHEDULER_CONFIG, build_tiny_sdxl, build_tiny_sdxl_refiner
from latentbrush.backend.ops.refiner import Handoff, plan_handoff
from latentbrush.protocol import ErrorCode, Rect, Size, UpscaleParams
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)

BASE, REFINER = "tiny-sdxl", "tiny-sdxl-refiner"
SIDE = 64  # processing size: two tiny UNets per job stay cheap on two cores


def xl_job(make_job, op: str = "txt2img", **fields):
    defaults = {"model": BASE, "refiner": REFINER, "canvas": Size(SIDE, SIDE), "region": Rect(0, 0, SIDE, SIDE),
                "resolution": Size(SIDE, SIDE), "steps": 5, "seed": 11, "image": op != "txt2img" or None,
                "mask": op == "inpaint" or None, "strength": 0.8 if op != "txt2img" else 1.0}
    return make_job(op=op, **(defaults | fields))


def blob_mask() -> np.ndarray:
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[16:48, 12:52] = 255
    return mask


def inputs_for(op: str, picture):
    if op == "txt2img":
        return {}
    return engine_inputs(picture(SIDE, SIDE), blob_mask() if op == "inpaint" else None)


# ---------------------------------------------------------------------------------------------- hand-over plan


@pytest.mark.parametrize(("steps", "running", "at", "expected"), [
    (5, 5, 0.8, (4, 1)),  # Euler "leading" 5 steps: 801 601 401 201 1; diffusers cuts at t >= 200
    (10, 10, 0.5, (5, 5)),
    (10, 6, 0.8, (4, 2)),  # img2img at strength 0.6: the last 6 steps run, the cut is where it is for all 10
    (10, 2, 0.8, (1, 1)),  # strength 0.2 starts after the cut: the base still runs one step
    (5, 5, 1.0, (5, 0)),  # nothing is left for the refiner
    (5, 5, 0.0, (1, 4)),
])
def test_hand_over_splits_the_steps_that_run(steps: int, running: int, at: float, expected: tuple[int, int]) -> None:
    handoff = plan_handoff("Euler", SCHEDULER_CONFIG, steps, running, at)
    assert (handoff.base_steps, handoff.refiner_steps) == expected
    if handoff.refiner_steps:  # the fraction both stages get puts diffusers' cut right before the refiner's step
        assert 0 < handoff.fraction < 1
    else:
        assert handoff == Handoff(running, 0, 1.0)


# ---------------------------------------------------------------------------------------------- runs


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_refiner_continues_the_model_and_progress_runs_once_over_both(tiny_engine: Engine, make_job, make_events,
                                                                      picture, op: str) -> None:
    inputs = inputs_for(op, picture)
    job = xl_job(make_job, op)
    events = make_events()
    refined = tiny_engine.run(job, inputs, events)
    alone = tiny_engine.run(dataclasses.replace(job, refiner=None), inputs, make_events())
    again = tiny_engine.run(job, inputs, make_events())
    steps = 5 if op == "txt2img" else 4  # strength 0.8 of 5 steps
    assert events.of("started") == [(steps, 11)]
    assert [p[0] for p in events.of("progress")] == list(range(1, steps + 1))  # 1..N, never backwards
    assert [p[0] for p in events.previews] == list(range(1, steps + 1))
    assert refined.info["refiner"] == {"model": REFINER, "at": 0.8, "handoff_step": steps - 1, "steps": 1}
    assert alone.info["refiner"] is None
    np.testing.assert_array_equal(refined.images[0], again.images[0])  # deterministic for a seed
    changed = refined.images[0][..., :3] != alone.images[0][..., :3]
    assert changed.any()  # the refiner's UNet did the last step
    if op == "inpaint":  # the refiner repaints the mask only: outside it, the canvas stays bit for bit
        outside = refined.images[0][..., 3] == 0
        assert outside.any() and not changed[outside].any()
        assert (refined.images[0][..., 3] == alone.images[0][..., 3]).all()


def test_handoff_fraction_and_order_two_sampler(tiny_engine: Engine, make_job, make_events) -> None:
    events = make_events()
    out = tiny_engine.run(xl_job(make_job, steps=6, refiner_at=0.5, sampler="DPM2"), {}, events)
    # 6 "leading" steps start at 831 665 499 333 167 1: diffusers cuts 0.5 at t >= 500, after two of them
    assert out.info["refiner"]["handoff_step"] == 2 and out.info["refiner"]["steps"] == 4
    steps = [p[0] for p in events.of("progress")]  # DPM2 calls back about twice a step: still 1..6 once each
    assert steps == sorted(steps) and steps[-1] == 6 and len(set(steps)) == len(steps)
    assert events.of("started") == [(6, 11)]


def test_refiner_at_one_is_the_model_alone(tiny_engine: Engine, make_job, make_events) -> None:
    job = xl_job(make_job, refiner_at=1.0)
    out = tiny_engine.run(job, {}, make_events())
    alone = tiny_engine.run(dataclasses.replace(job, refiner=None), {}, make_events())
    np.testing.assert_array_equal(out.images[0], alone.images[0])
    assert out.info["refiner"]["steps"] == 0 and out.info["refiner"]["handoff_step"] == 5


def test_refiner_at_changes_the_picture(tiny_engine: Engine, make_job, make_events) -> None:
    late = tiny_engine.run(xl_job(make_job, refiner_at=0.8), {}, make_events())
    early = tiny_engine.run(xl_job(make_job, refiner_at=0.4), {}, make_events())
    assert early.info["refiner"]["handoff_step"] == 2 and early.info["refiner"]["steps"] == 3
    assert not np.array_equal(late.images[0], early.images[0])


def test_batch_items_each_get_the_refiner(tiny_engine: Engine, make_job, make_events) -> None:
    events = make_events()
    out = tiny_engine.run(xl_job(make_job, batch=2, steps=3), {}, events)
    assert [p[0] for p in events.of("progress")] == [1, 2, 3, 4, 5, 6]
    single = tiny_engine.run(xl_job(make_job, steps=3, seed=12), {}, make_events())
    np.testing.assert_array_equal(out.images[1], single.images[0])


def test_refiner_shares_the_base_vae_and_text_encoder(make_job, make_events) -> None:
    engine = Engine(EngineSettings(device="cpu"))
    engine.run(xl_job(make_job, steps=2), {}, make_events())
    base = engine.load(BASE)
    refiner = engine.load_refiner(xl_job(make_job))
    assert refiner.component("vae") is base.component("vae")
    assert refiner.component("text_encoder_2") is base.component("text_encoder_2")
    assert refiner.component("text_encoder") is None and refiner.entry.refiner
    unet = sum(p.numel() * p.element_size() for p in refiner.component("unet").parameters())
    assert REFINER in engine.cache and refiner.nbytes == unet  # the shared modules count once, with the base
    assert refiner.nbytes < module_bytes(build_tiny_sdxl_refiner())


def test_cache_budget_counts_the_refiner(make_job, make_events) -> None:
    engine = Engine(EngineSettings(device="cpu", cache_budget_bytes=1))  # room for the newest model only
    out = engine.run(xl_job(make_job, steps=2), {}, make_events())
    assert out.info["refiner"]["steps"] == 1
    assert REFINER in engine.cache and BASE not in engine.cache  # loading the refiner unloaded the base


# ---------------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize(("fields", "code", "field", "words"), [
    ({"refiner": "no-such-refiner"}, ErrorCode.UNKNOWN_MODEL, "job.refiner", "unknown refiner"),
    ({"refiner": "tiny"}, ErrorCode.BAD_FIELD, "job.refiner", "not an SDXL refiner"),
    ({"refiner": BASE}, ErrorCode.BAD_FIELD, "job.refiner", "not an SDXL refiner"),
    ({"model": "tiny"}, ErrorCode.NOT_SUPPORTED, "job.refiner", "SDXL models only"),
    ({"model": REFINER, "refiner": None}, ErrorCode.NOT_SUPPORTED, "job.model", "not a stand-alone model"),
    ({"model": "no-such-model"}, ErrorCode.UNKNOWN_MODEL, "job.model", "unknown model"),  # the model comes first
])
def test_refiner_checks(tiny_engine: Engine, make_job, make_events, fields, code, field, words) -> None:
    job = xl_job(make_job, **fields)
    error = tiny_engine.check(job)
    assert error is not None and (error.code, error.field) == (code, field) and words in error.message
    with pytest.raises(EngineError) as raised:
        tiny_engine.run(job, {}, make_events())
    assert (raised.value.code, raised.value.field) == (code, field)


def test_an_upscale_takes_no_refiner(tiny_engine: Engine, make_job) -> None:
    job = make_job(op="upscale", image=True, model=BASE, refiner=REFINER, upscale=UpscaleParams(upscaler="lanczos"))
    error = tiny_engine.check(job)
    assert error is not None and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, "job.refiner")


def test_refiners_are_offered_but_never_the_default(tiny_engine: Engine) -> None:
    info = {m.name: m for m in tiny_engine.describe().models}
    assert (info[REFINER].base, info[REFINER].source, info[REFINER].resolution) == (REFINER, "builtin", 256)
    assert info[BASE].base == BASE and tiny_engine.describe().default_model == "tiny"


# ---------------------------------------------------------------------------------------------- users' refiners


REFINER_KEYS = {  # the marker diffusers' single-file loader keys on, plus a UNet input (header only)
    detect.SDXL_REFINER: (1,),
    "model.diffusion_model.input_blocks.0.0.weight": (1, 4, 1, 1),
}


@pytest.fixture(scope="module")
def refiner_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refiner-models")
    build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(root / "xl-base")
    build_tiny_sdxl_refiner(seed=6).save_pretrained(root / "xl-refiner")
    build_tiny_sdxl(inpaint=True, seed=7).save_pretrained(root / "xl-inpainting")  # a 9-channel SDXL model
    return root


@pytest.fixture(scope="module")
def refiner_engine(refiner_models: Path) -> Engine:
    return Engine(EngineSettings(models_dir=refiner_models, device="cpu"))


def test_a_refiner_single_file_is_detected_as_a_refiner(tmp_path: Path, write_header, make_job) -> None:
    write_header(tmp_path / "sd_xl_refiner_1.0.safetensors", REFINER_KEYS)
    assert detect.detect_file(tmp_path / "sd_xl_refiner_1.0.safetensors") == ("sdxl-refiner", False)
    engine = Engine(EngineSettings(models_dir=tmp_path, device="cpu"))
    info = {m.name: m for m in engine.describe().models}
    assert (info["sd_xl_refiner_1.0"].base, info["sd_xl_refiner_1.0"].source) == ("sdxl-refiner", "file")
    assert info["sd_xl_refiner_1.0"].resolution == 1024
    assert engine.describe().default_model == "tiny"  # a refiner alone is no model to paint with
    error = engine.check(make_job(model="sd_xl_refiner_1.0"))
    assert error is not None and error.code == ErrorCode.NOT_SUPPORTED and "stand-alone" in error.message
    error = engine.check(make_job(model=BASE, refiner="sd_xl_refiner_1.0"))  # an SDXL refiner for a tiny model
    assert error is not None and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, "job.refiner")


def test_a_refiner_folder_is_detected_and_continues_an_sdxl_folder_model(refiner_engine: Engine, make_job,
                                                                         make_events) -> None:
    info = {m.name: m for m in refiner_engine.describe().models}
    assert (info["xl-refiner"].base, info["xl-refiner"].source) == ("sdxl-refiner", "folder")
    assert refiner_engine.describe().default_model == "xl-base"
    error = refiner_engine.check(make_job(model="xl-refiner"))
    assert error is not None and error.field == "job.model" and "stand-alone" in error.message
    job = xl_job(make_job, model="xl-base", refiner="xl-refiner", steps=3)
    events = make_events()
    out = refiner_engine.run(job, {}, events)
    assert out.info["refiner"]["model"] == "xl-refiner" and [p[0] for p in events.of("progress")] == [1, 2, 3]
    refiner = refiner_engine.load_refiner(job)
    assert refiner.component("vae") is refiner_engine.load("xl-base").component("vae")  # never loaded twice
    assert refiner.component("unet").config.projection_class_embeddings_input_dim == 5 * 8 + 32


def test_a_9_channel_sdxl_inpaint_model_hands_over_to_the_refiner(refiner_engine: Engine, make_job, make_events,
                                                                  picture) -> None:
    job = xl_job(make_job, "inpaint", model="xl-inpainting", refiner="xl-refiner", steps=4, strength=1.0)
    inputs = inputs_for("inpaint", picture)
    events = make_events()
    out = refiner_engine.run(job, inputs, events)
    alone = refiner_engine.run(dataclasses.replace(job, refiner=None), inputs, make_events())
    assert out.info["task"] == "inpaint" and out.info["refiner"]["handoff_step"] == 3
    assert [p[0] for p in events.of("progress")] == [1, 2, 3, 4]
    inside = out.images[0][..., 3] == 255
    assert (out.images[0][..., :3][inside] != alone.images[0][..., :3][inside]).any()
    outside = out.images[0][..., 3] == 0
    np.testing.assert_array_equal(out.images[0][outside], alone.images[0][outside])  # the canvas, untouched


def test_the_shipped_refiner_skeleton_is_stabilityais_refiner() -> None:
    folder = CONFIGS_DIR / "sdxl-refiner"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLImg2ImgPipeline" and index["requires_aesthetics_score"]
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]
    assert not (folder / "text_encoder").exists() and (folder / "tokenizer_2" / "tokenizer_config.json").is_file()
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    with init_empty_weights():  # meta tensors: no memory, no time
        unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text()))
        text_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_json_file(folder / "text_encoder_2" / "config.json"))
    # 2.26 B parameters: the 4.52 GB fp16 UNet of stabilityai/stable-diffusion-xl-refiner-1.0
    assert count(unet) == 2_259_526_660 and unet.add_embedding.linear_1.in_features == 1280 + 5 * 256
    assert count(vae) == 83_653_863 and count(text_2) == 694_659_840  # SDXL's VAE and OpenCLIP bigG, as the base
