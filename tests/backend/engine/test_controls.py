"""ControlNet control inputs (issue 12): preprocessors, discovery in the models folder, and jobs on the tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAKE_HASH, job
from latentbrush.backend.control import preprocessors as pre
from latentbrush.backend.control.registry import ControlRegistry, detect_keys, mode_from_name
from latentbrush.backend.control.tiny import build_tiny_controlnet, save_tiny_controlnet
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.inputs import InputPixels
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.models.ldm_layout import write_controlnet_checkpoint
from latentbrush.backend.models.tiny import build_tiny_sdxl
from latentbrush.protocol import ErrorCode, JobInput
from safetensors.torch import save_file

# ---------------------------------------------------------------------------------------------- preprocessors


def test_scribble_turns_dark_strokes_on_paper_into_white_on_black() -> None:
    paper = np.full((40, 60, 3), 235, np.uint8)
    paper[20, 5:55] = (40, 40, 60)  # a one-pixel pencil line
    out = pre.scribble(paper)
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
    assert (out[20, 5:55] == 255).all() and (out[19, 10] == 255).all()  # thickened to the trained width
    assert not out[:15].any() and not out[25:].any()
    inverted = pre.scribble(255 - paper)  # light strokes on dark: already white on black
    np.testing.assert_array_equal(inverted, out)
    assert not pre.scribble(np.full((8, 8, 3), 90, np.uint8)).any()  # no contrast, no strokes


def test_canny_finds_the_edges_of_a_square() -> None:
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[16:48, 16:48] = 200
    edges = pre.canny(picture)
    assert edges[16:48, 15:18].any() and edges[15:18, 16:48].any()
    assert not edges[24:40, 24:40].any() and not edges[:8].any()
    with pytest.raises(ValueError, match="H x W x 3"):
        pre.canny(np.zeros((4, 4), np.uint8))


def test_preprocessors_offered_without_weights() -> None:
    assert set(pre.available()) == {"", "scribble", "canny"}  # OpenCV is in the dev install


# ---------------------------------------------------------------------------------------------- discovery


@pytest.mark.parametrize(("name", "mode"), [
    ("control_v11p_sd15_lineart", "lineart"), ("control_v11f1e_sd15_tile", "tile"),
    ("diffusers_xl_canny_mid", "canny"), ("controlnet-sd-xl-1.0-softedge-dexined", "softedge"),
    ("control_sd15_openpose", "pose"), ("t2i-adapter_xl_sketch", "scribble"), ("my_controlnet", ""),
])
def test_mode_from_published_names(name: str, mode: str) -> None:
    assert mode_from_name(name) == mode


def test_detection_from_tensor_names() -> None:
    assert detect_keys({"controlnet_cond_embedding.conv_in.weight"}) == ("sd15", "diffusers")
    assert detect_keys({"controlnet_cond_embedding.conv_in.weight", "add_embedding.linear_1.weight"}) == (
        "sdxl", "diffusers")
    assert detect_keys({"control_model.input_hint_block.0.weight"}) == ("sd15", "ldm")
    assert detect_keys({"input_hint_block.0.weight", "label_emb.0.0.weight"}) == ("sdxl", "ldm")
    assert detect_keys({"lora_unet_down_blocks_0.alpha"}) is None


@pytest.fixture(scope="module")
def control_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder as painters have it: ComfyUI's controlnet/ with a folder, files and foreign things."""
    root = tmp_path_factory.mktemp("models")
    folder = root / "controlnet"
    folder.mkdir()
    build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(root / "tiny-xl")
    save_tiny_controlnet(folder / "tiny_sd15_scribble_folder", layout="folder", seed=1)
    save_tiny_controlnet(folder / "tiny_xl_canny", layout="folder", xl=True, seed=2)
    save_tiny_controlnet(folder / "tiny_sd15_depth.safetensors", layout="file", seed=3)
    write_controlnet_checkpoint(build_tiny_controlnet(seed=4), folder / "control_v11p_tiny_lineart.safetensors")
    save_file({"control_model.input_hint_block.0.weight": torch.zeros(2, 2),
               "control_model.label_emb.0.0.weight": torch.zeros(2, 2)}, str(folder / "control_xl_lineart.safetensors"))
    save_file({"lora_unet_x.alpha": torch.zeros(1)}, str(folder / "a_lora.safetensors"))
    (folder / "old_canny.pth").write_bytes(b"\x80pickle")
    return root


def test_registry_finds_controlnets_where_painters_keep_them(control_models: Path) -> None:
    registry = ControlRegistry(ModelFolders.from_models_dir(control_models).controlnet)
    found = {e.name: (e.mode, e.family, e.layout, e.source) for e in registry.entries()}
    assert found == {
        "tiny_sd15_scribble_folder": ("scribble", "sd15", "diffusers", "folder"),
        "tiny_xl_canny": ("canny", "sdxl", "diffusers", "folder"),
        "control_v11p_tiny_lineart": ("lineart", "sd15", "ldm", "file"),
        "tiny_sd15_depth": ("depth", "sd15", "diffusers", "file"),
    }
    assert "diffusers version" in registry.refused["control_xl_lineart"]
    assert "not a ControlNet" in registry.refused["a_lora"] and "pickle" in registry.refused["old_canny"]
    assert registry.for_mode("canny", "sdxl").name == "tiny_xl_canny" and registry.for_mode("canny", "sd15") is None


# ---------------------------------------------------------------------------------------------- jobs


def control_input(pixels: np.ndarray, **params) -> InputPixels:
    return InputPixels(JobInput("control", FAKE_HASH, **params), pixels, "job.inputs[0].blob")


def scribble_picture() -> np.ndarray:
    rgba = np.zeros((128, 128, 4), np.uint8)  # a transparent layer with a dark ring drawn on it
    y, x = np.mgrid[0:128, 0:128]
    ring = np.abs(np.hypot(x - 64, y - 64) - 40) < 3
    rgba[ring] = (20, 20, 20, 255)
    return rgba


def control_job(**params):
    return job(inputs=(JobInput("control", FAKE_HASH, **params),))


def run(engine: Engine, request, inputs, make_events):
    return engine.run(request, inputs, make_events())


def test_the_hello_lists_control_models_and_preprocessors(control_models: Path) -> None:
    info = Engine(EngineSettings(models_dir=control_models, device="cpu")).describe()
    names = {(c.name, c.mode, c.family) for c in info.controls}
    assert ("tiny-scribble", "scribble", "tiny") in names and ("tiny_xl_canny", "canny", "sdxl") in names
    assert info.preprocessors == ("", "scribble", "canny")


def test_a_control_steers_the_result_and_weight_0_does_not(tiny_engine: Engine, make_events) -> None:
    plain = run(tiny_engine, job(), {}, make_events).images[0]
    ring = scribble_picture()
    steered = run(tiny_engine, control_job(mode="scribble", preprocessor="scribble"),
                  {"control": (control_input(ring, mode="scribble", preprocessor="scribble"),)}, make_events)
    zero = run(tiny_engine, control_job(mode="scribble", preprocessor="scribble", weight=0.0),
               {"control": (control_input(ring, mode="scribble", preprocessor="scribble", weight=0.0),)}, make_events)
    assert np.abs(steered.images[0].astype(int) - plain.astype(int)).mean() > 1  # the control changed the picture
    np.testing.assert_array_equal(zero.images[0], plain)  # weight 0: exactly the uncontrolled result
    assert steered.info["controls"] == [{"mode": "scribble", "weight": 1.0, "start": 0.0, "end": 1.0}]


def test_two_controls_and_a_named_one(tiny_engine: Engine, make_events) -> None:
    ring = scribble_picture()
    square = np.zeros((128, 128, 4), np.uint8)
    square[32:96, 32:96] = (200, 200, 200, 255)
    items = (control_input(ring, model="tiny-scribble", preprocessor="scribble"),
             InputPixels(JobInput("control", FAKE_HASH, model="tiny-canny", preprocessor="canny", end=0.5), square,
                         "job.inputs[1].blob"))
    request = job(inputs=tuple(i.input for i in items))
    out = run(tiny_engine, request, {"control": items}, make_events)
    assert len(out.info["controls"]) == 2 and out.info["controls"][1]["end"] == 0.5


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"preprocessor": "depth_anything"}, "job.inputs[0].preprocessor", "no preprocessor"),
    ({"mode": "depth"}, "job.inputs[0].mode", "ControlNet for mode 'depth'"),
    ({"model": "nope"}, "job.inputs[0].model", "no control model 'nope'"),
])
def test_a_control_this_server_cannot_do_is_refused_by_name(tiny_engine: Engine, params, field, words) -> None:
    error = tiny_engine.check(control_job(**params))
    assert error is not None and error.code is ErrorCode.NOT_SUPPORTED and error.field == field
    assert words in error.message


def test_a_control_model_for_another_family_is_refused(control_models: Path) -> None:
    engine = Engine(EngineSettings(models_dir=control_models, device="cpu"))
    error = engine.check(job(model="tiny", inputs=(JobInput("control", FAKE_HASH, model="tiny_xl_canny"),)))
    assert error is not None and error.field == "job.inputs[0].model" and "for sdxl models" in error.message


def test_an_sdxl_controlnet_folder_steers_an_sdxl_model(control_models: Path, make_events) -> None:
    engine = Engine(EngineSettings(models_dir=control_models, device="cpu"))
    square = np.zeros((128, 128, 4), np.uint8)
    square[32:96, 32:96] = (230, 230, 230, 255)
    item = control_input(square, mode="canny", preprocessor="canny")  # picked by mode for the SDXL model
    request = job(model="tiny-xl", inputs=(item.input,))
    assert engine.check(request) is None
    plain = run(engine, job(model="tiny-xl"), {}, make_events).images[0]
    steered = run(engine, request, {"control": (item,)}, make_events)
    assert np.abs(steered.images[0].astype(int) - plain.astype(int)).mean() > 1


@pytest.fixture(scope="module")
def tiny_control_configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Config skeletons for tiny single-file ControlNets (the shipped ones are the full-size architectures)."""
    root = tmp_path_factory.mktemp("configs")
    build_tiny_controlnet().save_config(root / "controlnet-sd15")
    return root


@pytest.mark.parametrize("name", ["control_v11p_tiny_lineart", "tiny_sd15_depth"])
def test_single_file_controlnets_load_offline_bit_for_bit(control_models: Path, tiny_control_configs: Path,
                                                          name: str) -> None:
    engine = Engine(EngineSettings(models_dir=control_models, device="cpu", configs_dir=tiny_control_configs))
    loaded = engine.controls.load(engine.controls.registry.get(name))
    seed = 4 if "lineart" in name else 3
    expected = build_tiny_controlnet(seed=seed).state_dict()
    assert set(loaded.state_dict()) == set(expected)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


def test_the_shipped_controlnet_skeletons_are_the_published_architectures() -> None:
    from diffusers import ControlNetModel
    from latentbrush.backend.models.clip_vocab import CONFIGS_DIR

    counts = {}
    for family in ("sd15", "sdxl"):
        with torch.device("meta"):
            model = ControlNetModel.from_config(ControlNetModel.load_config(CONFIGS_DIR / f"controlnet-{family}"))
        counts[family] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    assert counts == {"sd15": 361.3, "sdxl": 1251.0}  # lllyasviel's SD 1.5 ControlNets, diffusers' SDXL ones


def test_a_controlnet_of_another_architecture_is_refused_in_plain_words(control_models: Path,
                                                                          make_events) -> None:
    engine = Engine(EngineSettings(models_dir=control_models, device="cpu"))  # full-size skeletons, tiny file
    with pytest.raises(EngineError, match="standard sd15 ControlNet architecture"):
        engine.controls.load(engine.controls.registry.get("tiny_sd15_depth"))
