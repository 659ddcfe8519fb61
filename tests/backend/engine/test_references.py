"""Reference images through IP-Adapter (issue 12 item 3): discovery, modes, and jobs on tiny models.

The tiny adapters and encoder are written to a models folder in the layouts users have (h94's ``.safetensors``
and ``.bin``, transformers encoder folders in ``clip_vision/``) and load through diffusers' ``load_ip_adapter``
exactly as real ones do; the tiny checkpoints sit beside them as diffusers folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAKE_HASH, job
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.inputs import InputPixels
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.models.tiny import build_tiny_sd15, build_tiny_sdxl, unet_config
from latentbrush.backend.reference.models import reference_picture
from latentbrush.backend.reference.modes import active, block_scales
from latentbrush.backend.reference.registry import ReferenceRegistry, detect_adapter
from latentbrush.backend.reference.tiny import save_tiny_adapter, save_tiny_encoder
from latentbrush.protocol import ErrorCode, JobInput, Size
from safetensors.torch import save_file

SD15_UNET = {"layers_per_block": 2, "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
             "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3}
SDXL_UNET = {"layers_per_block": 2, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
             "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")}


# ---------------------------------------------------------------------------------------------- modes


def test_style_and_composition_are_instantstyle_blocks() -> None:
    # InstantStyle's published SDXL dicts, found from the UNet's own block layout
    assert block_scales("style", SDXL_UNET, 1.0) == {"up": {"block_0": [0.0, 1.0, 0.0]}}
    assert block_scales("composition", SDXL_UNET, 1.0) == {"down": {"block_2": [0.0, 1.0]}}
    # SD 1.5: the blocks at the same lowest resolution
    assert block_scales("style", SD15_UNET, 0.5) == {"up": {"block_1": [0.0, 0.5, 0.0]}}
    assert block_scales("composition", SD15_UNET, 0.5) == {"down": {"block_2": [0.0, 0.5]}}
    assert block_scales("reference", SD15_UNET, 0.7) == 0.7
    with pytest.raises(ValueError, match="mode must be one of"):
        block_scales("pose", SD15_UNET, 1.0)


def test_a_span_follows_the_controlnet_rule() -> None:
    assert [active(i, 4, 0.0, 1.0) for i in range(4)] == [True] * 4
    assert [active(i, 4, 0.25, 0.75) for i in range(4)] == [False, True, True, False]


def test_reference_picture_is_cropped_to_its_opaque_part_over_white() -> None:
    layer = np.zeros((100, 80, 4), np.uint8)
    layer[10:30, 20:60] = (200, 0, 0, 255)
    layer[10, 20, 3] = 0  # a transparent pixel inside the box reads as white
    picture = reference_picture(layer)
    assert picture is not None and picture.shape == (20, 40, 3)
    assert tuple(picture[0, 0]) == (255, 255, 255) and tuple(picture[5, 5]) == (200, 0, 0)
    assert reference_picture(np.zeros((8, 8, 4), np.uint8)) is None


# ---------------------------------------------------------------------------------------------- discovery


def test_detection_from_tensor_shapes() -> None:
    ip = {"1.to_k_ip.weight": (320, 768)}
    assert detect_adapter({"proj.weight": (3072, 1024), "norm.weight": (768,)}, ip) == ("sd15", "basic", 1024)
    assert detect_adapter({"latents": (1, 16, 1280), "proj_in.weight": (1280, 1664)},
                          {"1.to_k_ip.weight": (640, 2048)}) == ("sdxl", "plus", 1664)
    assert detect_adapter({"proj.0.weight": (1280, 1280), "proj.3.weight": (768,)}, ip) == ("sd15", "full", 1280)
    assert "SD 2.x" in detect_adapter({"proj.weight": (4096, 1024)}, {"1.to_k_ip.weight": (320, 1024)})
    assert "FaceID" in detect_adapter({"proj.0.weight": (1, 1), "norm.weight": (768,)}, ip)
    assert "not an IP-Adapter" in detect_adapter({}, {})


def folders_of(models_dir: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The IP-Adapter and image-encoder folders of a models folder laid out as ours."""
    folders = ModelFolders.from_models_dir(models_dir)
    return folders.ipadapter, folders.clip_vision


@pytest.fixture(scope="module")
def reference_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder as painters have it: ComfyUI's ipadapter/ and clip_vision/, tiny checkpoint folders."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_sd15(inpaint=False, seed=6).save_pretrained(root / "tiny-sd15")
    build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(root / "tiny-xl")
    adapters = root / "ipadapter"
    adapters.mkdir()
    save_tiny_adapter(adapters / "tiny-ip-adapter_sd15.safetensors", seed=1)
    save_tiny_adapter(adapters / "tiny-ip-adapter_sd15_b.bin", seed=2)
    save_tiny_adapter(adapters / "tiny-ip-adapter_sdxl.safetensors", xl=True, seed=3)
    faceid = {"image_proj.proj.0.weight": torch.zeros(2, 2), "image_proj.norm.weight": torch.zeros(768),
              "ip_adapter.1.to_k_ip.weight": torch.zeros(2, 768)}
    save_file(faceid, str(adapters / "ip-adapter-faceid_sd15.safetensors"))
    save_file({"lora_unet_x.alpha": torch.zeros(1)}, str(adapters / "a_lora.safetensors"))
    save_tiny_encoder(root / "clip_vision" / "tiny-vit", seed=1)
    (root / "clip_vision" / "CLIP-ViT-H-14.safetensors").write_bytes(b"")  # ComfyUI's single file: not used
    return root


@pytest.fixture(scope="module")
def engine(reference_models: Path) -> Engine:
    return Engine(EngineSettings(models_dir=reference_models, device="cpu"))


def test_registry_finds_adapters_and_encoders_where_painters_keep_them(reference_models: Path) -> None:
    registry = ReferenceRegistry(*folders_of(reference_models))
    found = {e.name: (e.family, e.kind, e.encoder_dim) for e in registry.adapters()}
    assert found == {"tiny-ip-adapter_sd15": ("sd15", "basic", 16), "tiny-ip-adapter_sd15_b": ("sd15", "basic", 16),
                     "tiny-ip-adapter_sdxl": ("sdxl", "basic", 16)}
    assert "FaceID" in registry.refused["ip-adapter-faceid_sd15"] and "not an IP-Adapter" in registry.refused["a_lora"]
    assert [(e.name, e.projection_dim) for e in registry.encoders()] == [("tiny-vit", 16)]


def test_the_hello_lists_reference_models_and_modes(engine: Engine) -> None:
    info = engine.describe()
    assert {(r.name, r.family) for r in info.references} >= {("tiny-ip-adapter_sd15", "sd15"),
                                                              ("tiny-ip-adapter_sdxl", "sdxl"),
                                                              ("tiny-ip-adapter", "tiny")}
    assert info.reference_modes == ("reference", "style", "composition")
    assert {m.name for m in info.models} >= {"tiny-sd15", "tiny-xl"}  # the adapter folders hold no checkpoints


# ---------------------------------------------------------------------------------------------- jobs


def photo(seed: int = 0, size: tuple[int, int] = (96, 72)) -> np.ndarray:
    """A reference of its own size (not the context's): a random colourful picture, opaque."""
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def ref_job(model: str, *params: dict, **fields):
    items = tuple(InputPixels(JobInput("reference", FAKE_HASH, **p), photo(i), f"job.inputs[{i}].blob")
                  for i, p in enumerate(params))
    fields = {"resolution": Size(64, 64), **fields}  # the smallest side the engine runs at: fast tests
    return job(model=model, inputs=tuple(i.input for i in items), **fields), ({"reference": items} if items else {})


def generate(engine: Engine, make_events, model: str, *params: dict, **fields) -> np.ndarray:
    request, inputs = ref_job(model, *params, **fields)
    assert engine.check(request) is None
    return engine.run(request, inputs, make_events()).images[0]


def differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-xl"])
def test_a_reference_steers_the_result_and_weight_0_does_not(engine: Engine, make_events, model: str) -> None:
    plain = generate(engine, make_events, model)
    steered = generate(engine, make_events, model, {})
    zero = generate(engine, make_events, model, {"weight": 0.0})
    assert differs(steered, plain) > 1  # the reference changed the picture
    np.testing.assert_array_equal(zero, plain)  # weight 0: exactly the result without a reference
    np.testing.assert_array_equal(generate(engine, make_events, model), plain)  # and nothing stayed loaded


def test_modes_differ_and_two_references_at_once(engine: Engine, make_events) -> None:
    request, inputs = ref_job("tiny-sd15", {"mode": "style"}, {"model": "tiny-ip-adapter_sd15_b", "weight": 0.6})
    two = engine.run(request, inputs, make_events())
    assert two.info["references"] == [
        {"model": "tiny-ip-adapter_sd15", "encoder": "tiny-vit", "mode": "style", "weight": 1.0, "start": 0.0,
         "end": 1.0},
        {"model": "tiny-ip-adapter_sd15_b", "encoder": "tiny-vit", "mode": "reference", "weight": 0.6, "start": 0.0,
         "end": 1.0},
    ]
    one = generate(engine, make_events, "tiny-sd15", {"mode": "style"})
    assert differs(two.images[0], one) > 1  # the second reference acts too
    reference = generate(engine, make_events, "tiny-sd15", {})
    composition = generate(engine, make_events, "tiny-sd15", {"mode": "composition"})
    assert differs(one, reference) > 0.5 and differs(composition, reference) > 0.5 and differs(one, composition) > 0.5


def test_a_span_outside_every_step_is_no_reference(engine: Engine, make_events) -> None:
    plain = generate(engine, make_events, "tiny-sd15", steps=4)
    late = generate(engine, make_events, "tiny-sd15", {"start": 0.5}, steps=4)
    np.testing.assert_array_equal(generate(engine, make_events, "tiny-sd15", {"start": 0.9, "end": 0.95}, steps=4),
                                  plain)  # no step lies inside the span
    assert differs(late, plain) > 0.5


def test_img2img_and_inpaint_take_references(engine: Engine, make_events, picture) -> None:
    image = picture(128, 128)
    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 32:96] = 255
    for op, extra in (("img2img", {}), ("inpaint", {"mask": mask})):
        request, inputs = ref_job("tiny-sd15", {}, op=op, strength=0.75)
        items = {"image": (InputPixels(JobInput("image", FAKE_HASH), image, "job.image"),), **inputs}
        if extra:
            items["mask"] = (InputPixels(JobInput("mask", FAKE_HASH), extra["mask"], "job.mask"),)
        roles = [JobInput("image", FAKE_HASH), *(JobInput("mask", FAKE_HASH) for _ in extra), *request.inputs]
        request = job(model="tiny-sd15", op=op, strength=0.75, inputs=tuple(roles), resolution=Size(64, 64))
        assert engine.check(request) is None
        out = engine.run(request, items, make_events())
        assert len(out.info["references"]) == 1 and out.images[0].shape == (128, 128, 4)


def test_the_builtin_tiny_model_takes_the_builtin_adapter(tiny_engine: Engine, make_events) -> None:
    plain = generate(tiny_engine, make_events, "tiny")
    steered = generate(tiny_engine, make_events, "tiny", {"mode": "style"})
    assert differs(steered, plain) > 0.5


@pytest.mark.parametrize(("model", "params", "field", "words"), [
    ("tiny-xl", {"model": "tiny-ip-adapter_sd15"}, "job.inputs[0].model", "is for sd15 models"),
    ("tiny-sd15", {"model": "nope"}, "job.inputs[0].model", "no reference model 'nope'"),
    ("tiny-sd15", {"model": "ip-adapter-faceid_sd15"}, "job.inputs[0].model", "FaceID"),
    ("tiny", {"model": "tiny-ip-adapter_sdxl"}, "job.inputs[0].model", "is for sdxl models"),
])
def test_a_reference_this_server_cannot_do_is_refused_by_name(engine: Engine, model, params, field, words) -> None:
    request, _ = ref_job(model, params)
    error = engine.check(request)
    assert error is not None and error.code is ErrorCode.NOT_SUPPORTED and error.field == field
    assert words in error.message


def test_without_an_image_encoder_the_adapter_is_refused_saying_so(tmp_path: Path) -> None:
    (tmp_path / "ipadapter").mkdir()
    save_tiny_adapter(tmp_path / "ipadapter" / "tiny-ip-adapter_sd15.safetensors")
    build_tiny_sd15(inpaint=False).save_pretrained(tmp_path / "tiny-sd15")
    error = Engine(EngineSettings(models_dir=tmp_path, device="cpu")).check(ref_job("tiny-sd15", {})[0])
    assert error is not None and error.field == "job.inputs[0].model" and "clip_vision/" in error.message


def test_an_empty_reference_picture_is_a_clear_error(engine: Engine, make_events) -> None:
    request, _ = ref_job("tiny-sd15", {})
    empty = InputPixels(request.inputs[0], np.zeros((40, 40, 4), np.uint8), "job.inputs[0].blob")
    with pytest.raises(EngineError, match="fully transparent") as caught:
        engine.run(request, {"reference": (empty,)}, make_events())
    assert caught.value.code is ErrorCode.BAD_IMAGE and caught.value.field == "job.inputs[0].blob"


def test_a_tiny_unet_config_gets_the_same_rule() -> None:
    config = unet_config(4)
    assert block_scales("style", config, 1.0) == {"up": {"block_0": [0.0, 1.0]}}
    assert block_scales("composition", config, 1.0) == {"down": {"block_1": [1.0]}}


def test_a_reference_with_a_control_and_the_control_alone_after(tiny_engine: Engine, make_events) -> None:
    """ControlNet pipelines share the UNet (``from_pipe``): the adapter goes off it for the next job too."""
    ring = np.zeros((128, 128, 4), np.uint8)
    ring[40:80, 40:44] = (20, 20, 20, 255)
    control = InputPixels(JobInput("control", FAKE_HASH, model="tiny-scribble", preprocessor="scribble"), ring,
                          "job.inputs[0].blob")
    reference = InputPixels(JobInput("reference", FAKE_HASH), photo(), "job.inputs[1].blob")

    def run(*items: InputPixels) -> np.ndarray:
        request = job(inputs=tuple(i.input for i in items), resolution=Size(64, 64))
        assert tiny_engine.check(request) is None
        inputs = {role: tuple(i for i in items if i.input.role == role) for role in {i.input.role for i in items}}
        return tiny_engine.run(request, inputs, make_events()).images[0]

    alone = run(control)
    assert differs(run(control, reference), alone) > 0.5
    np.testing.assert_array_equal(run(control), alone)
