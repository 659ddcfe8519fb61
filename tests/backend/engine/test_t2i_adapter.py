"""T2I-Adapters: found beside the ControlNets, listed in the hello, steering Generate through diffusers' adapter
pipelines; what they cannot do is refused before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAKE_HASH, job
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from latentbrush.backend.control.tiny import attention_unet_config, save_tiny_adapter, save_tiny_controlnet
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.inputs import InputPixels
from latentbrush.backend.models.tiny import build_tiny_sdxl, tiny_sd15_components
from latentbrush.protocol import ErrorCode, JobInput, Size
from safetensors.torch import save_file

ADAPTER, XL_ADAPTER = "t2iadapter_sketch_tiny", "t2i-adapter-canny-tiny-xl"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(3)
    components = tiny_sd15_components(inpaint=False, seed=3) | {
        "unet": UNet2DConditionModel(**attention_unet_config()).eval()}
    StableDiffusionPipeline(**components).save_pretrained(root / "tiny15")
    build_tiny_sdxl(inpaint=False, seed=4).save_pretrained(root / "tiny-xl")
    folder = root / "controlnet"  # where ComfyUI and A1111 keep T2I-Adapters too
    save_tiny_adapter(folder / ADAPTER, seed=1)
    save_tiny_adapter(folder / XL_ADAPTER, xl=True, seed=2)
    save_tiny_controlnet(folder / "tiny_sd15_canny", layout="folder", seed=2)
    save_file({"adapter.conv_in.weight": torch.zeros(2, 2)}, str(folder / "t2iadapter_depth_single.safetensors"))
    return Engine(EngineSettings(models_dir=root, device="cpu"))


def ring(width: int = 128, height: int = 128) -> np.ndarray:
    rgba = np.zeros((height, width, 4), np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    rgba[np.abs(np.hypot(x - width / 2, y - height / 2) - 40) < 3] = (20, 20, 20, 255)
    return rgba


def controlled(*params: dict, **fields):
    items = tuple(JobInput("control", FAKE_HASH, **p) for p in params)
    return job(model="tiny15", inputs=items, **fields), items


def run(engine: Engine, request, items, make_events, picture: np.ndarray | None = None):
    pixels = {"control": tuple(InputPixels(item, ring() if picture is None else picture, f"job.inputs[{i}].blob")
                               for i, item in enumerate(items))} if items else {}
    assert engine.check(request) is None
    return engine.run(request, pixels, make_events())


def test_adapters_are_listed_with_their_kind_and_single_files_are_refused(engine: Engine) -> None:
    listed = {c.name: c for c in engine.describe().controls}
    assert (listed[ADAPTER].kind, listed[ADAPTER].mode, listed[ADAPTER].family) == ("t2i_adapter", "scribble", "sd15")
    assert (listed[XL_ADAPTER].kind, listed[XL_ADAPTER].mode, listed[XL_ADAPTER].family) == (
        "t2i_adapter", "canny", "sdxl")
    assert listed["tiny_sd15_canny"].kind == "controlnet"
    assert "diffusers folder" in engine.controls.registry.refused["t2iadapter_depth_single"]


def test_an_adapter_steers_generate_and_weight_0_does_not(engine: Engine, make_events) -> None:
    plain = run(engine, job(model="tiny15"), (), make_events).images[0]
    request, items = controlled({"model": ADAPTER, "preprocessor": "scribble"})
    steered = run(engine, request, items, make_events)
    request0, items0 = controlled({"model": ADAPTER, "preprocessor": "scribble", "weight": 0.0})
    zero = run(engine, request0, items0, make_events).images[0]
    assert np.abs(steered.images[0].astype(int) - plain.astype(int)).mean() > 1
    np.testing.assert_array_equal(zero, plain)  # weight 0: exactly the unsteered picture
    assert steered.info["controls"] == [{"mode": "scribble", "weight": 1.0, "start": 0.0, "end": 1.0}]


def test_an_sdxl_adapter_steers_the_first_part_of_the_steps(engine: Engine, make_events) -> None:
    square = np.zeros((128, 128, 4), np.uint8)
    square[32:96, 32:96] = (230, 230, 230, 255)
    plain = run(engine, job(model="tiny-xl", steps=4), (), make_events).images[0]
    items = (JobInput("control", FAKE_HASH, mode="canny", preprocessor="canny", end=0.5),)  # picked by mode
    steered = run(engine, job(model="tiny-xl", steps=4, inputs=items), items, make_events, square)
    assert np.abs(steered.images[0].astype(int) - plain.astype(int)).mean() > 1
    assert steered.info["controls"] == [{"mode": "canny", "weight": 1.0, "start": 0.0, "end": 0.5}]


def test_the_processing_size_is_rounded_to_what_the_adapter_divides(engine: Engine, make_events) -> None:
    request, items = controlled({"model": ADAPTER, "preprocessor": "scribble"}, resolution=Size(136, 120))
    out = run(engine, request, items, make_events)
    assert out.info["resolution"] == [144, 128]  # the tiny adapter downscales by 16
    assert out.images[0].shape == (128, 128, 4)  # still the region's size


@pytest.mark.parametrize(("op_fields", "params", "field", "words"), [
    ({"op": "img2img", "strength": 0.5}, [{"model": ADAPTER}], "job.inputs[0].model", "Generate only"),
    ({}, [{"model": ADAPTER, "start": 0.2}], "job.inputs[0].start", "first step"),
    ({}, [{"model": ADAPTER}, {"model": ADAPTER, "end": 0.5}], "job.inputs[0].end", "share their end"),
    ({}, [{"model": ADAPTER, "end": 0.5}], "job.inputs[0].end", "every step"),
    ({}, [{"model": ADAPTER}, {"model": "tiny_sd15_canny"}], "job.inputs[1].model", "not both"),
    ({"references": True}, [{"model": ADAPTER}], "job.inputs[0].model", "no reference images"),
])
def test_what_an_adapter_cannot_do_is_refused_by_name(engine: Engine, op_fields, params, field, words) -> None:
    items = tuple(JobInput("control", FAKE_HASH, **p) for p in params)
    op_fields = dict(op_fields)
    if op_fields.pop("references", False):
        items = (*items, JobInput("reference", FAKE_HASH))
    inputs = (JobInput("image", FAKE_HASH), *items) if op_fields.get("op") == "img2img" else items
    error = engine.check(job(model="tiny15", inputs=inputs, **op_fields))
    if op_fields:
        field = field.replace("inputs[0]", "inputs[1]")  # the image input comes first
    assert error is not None and error.code is ErrorCode.NOT_SUPPORTED and error.field == field
    assert words in error.message
