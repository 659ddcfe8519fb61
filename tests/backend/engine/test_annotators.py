"""Network-backed control preprocessors (issue 12): lineart, softedge, pose (controlnet_aux) and depth, normal
(transformers), loaded from a models folder as painters have it.

The weights are the real architectures with seeded random values, written in the published file layouts
(lllyasviel/Annotators' .pth files, a transformers depth folder) and read through the server's own code.
They have learnt nothing, so the tests check what does not need learning: sizes, that the picture matters,
discovery, loading once, clear errors for bad files, and the pose keypoint format on known detections.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAKE_HASH, job
from latentbrush.backend.control.depth import normal_from_depth, unit_range
from latentbrush.backend.control.pose import PARTS, draw_people, openpose_json, people_from
from latentbrush.backend.control.preprocessors import Annotation, available
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import EngineError
from latentbrush.backend.inputs import InputPixels
from latentbrush.backend.models.folders import A1111_ANNOTATORS, COMFYUI_ANNOTATORS, ModelFolders
from latentbrush.protocol import ErrorCode, JobInput

pytest.importorskip("controlnet_aux")  # the annotators extra (in dev)
with warnings.catch_warnings():  # controlnet_aux warns about optional packages it does not need here
    warnings.simplefilter("ignore")
    from controlnet_aux.hed import ControlNetHED_Apache2
    from controlnet_aux.lineart import Generator
    from controlnet_aux.open_pose.model import bodypose_model
    from controlnet_aux.pidi.model import pidinet

RESOLUTION = 64  # detection size for the tests, the smallest there is (the server's is 512, as in training)
WEIGHTLESS = {"", "scribble", "canny"}
IMAGE_PREPROCESSORS = ("lineart", "lineart_coarse", "softedge_hed", "softedge_pidinet", "softedge", "depth", "normal")


def seeded_state(build, seed: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build().state_dict()


def write_body(path: Path) -> None:
    """body_pose_model.pth as published: keys without the block prefix (``conv1_1.weight``, not ``model0.``).
    The heatmap head is zeroed: random heatmaps are peaks everywhere, and matching them all takes minutes."""
    state = {k.split(".", 1)[1]: v for k, v in seeded_state(bodypose_model, 4).items()}
    for key in ("Mconv7_stage6_L2.weight", "Mconv7_stage6_L2.bias"):
        state[key] = torch.zeros_like(state[key])
    torch.save(state, path)


def write_depth_anything(folder: Path, seed: int = 0) -> None:
    """A tiny Depth Anything folder (config.json, model.safetensors, preprocessor_config.json)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, reshape_hidden_states=False,
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 64],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 70, "width": 70}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                      ).save_pretrained(folder)


@pytest.fixture(scope="module")
def annotator_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with every annotator in ``annotators/`` (lllyasviel/Annotators' names) and a depth model."""
    root = tmp_path_factory.mktemp("models")
    folder = root / "annotators"
    folder.mkdir()
    torch.save(seeded_state(lambda: Generator(3, 1, 3), 0), folder / "sk_model.pth")
    torch.save(seeded_state(lambda: Generator(3, 1, 3), 1), folder / "sk_model2.pth")
    torch.save(seeded_state(ControlNetHED_Apache2, 2), folder / "ControlNetHED.pth")
    pidi = {"module." + k: v for k, v in seeded_state(pidinet, 3).items()}  # as the training checkpoint has it
    torch.save({"state_dict": pidi}, folder / "table5_pidinet.pth")
    write_body(folder / "body_pose_model.pth")
    write_depth_anything(folder / "depth" / "depth-anything-tiny")
    return root


def roots(models_dir: Path | None) -> tuple[Path, ...]:
    """Where the server looks for annotator weights with this models folder (and no --reuse)."""
    return ModelFolders.from_models_dir(models_dir).annotators


@pytest.fixture(scope="module")
def offered(annotator_models: Path):
    return available(roots(annotator_models), "cpu", RESOLUTION)


def picture(kind: str, height: int = 72, width: int = 100) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    if kind == "disc":  # a blue disc on paper
        out = np.full((height, width, 3), 230, np.uint8)
        out[np.hypot(x - width / 2, y - height / 2) < height / 3] = (30, 60, 200)
        return out
    out = np.full((height, width, 3), 20, np.uint8)  # light stripes on dark
    out[:, ::10] = 250
    return out


# ---------------------------------------------------------------------------------------------- discovery


def test_each_preprocessor_is_offered_when_its_weights_are_there(offered) -> None:
    modes = {name: p.modes for name, p in offered.items() if name not in WEIGHTLESS}
    assert modes == {
        "lineart": ("lineart",), "lineart_coarse": ("lineart",), "softedge_hed": ("softedge",),
        "softedge_pidinet": ("softedge",), "softedge": ("softedge",), "depth": ("depth",), "normal": ("normal",),
        "pose": ("pose",),
    }


def test_without_weights_only_the_weightless_ones_are_offered(tmp_path: Path) -> None:
    assert set(available(roots(None))) == WEIGHTLESS
    (tmp_path / "annotators" / "depth" / "not-a-model").mkdir(parents=True)
    (tmp_path / "annotators" / "facenet.pth").write_bytes(b"")  # a file no preprocessor here uses
    assert set(available(roots(tmp_path))) == WEIGHTLESS


def test_weights_are_found_where_comfyui_and_a1111_keep_them(tmp_path: Path) -> None:
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / COMFYUI_ANNOTATORS).mkdir(parents=True)
    (comfy / COMFYUI_ANNOTATORS / "sk_model.pth").write_bytes(b"")
    assert set(available(roots(comfy / "models"))) == WEIGHTLESS | {"lineart"}  # the models folder is ComfyUI/models
    webui = tmp_path / "stable-diffusion-webui"
    (webui / "models").mkdir(parents=True)
    (webui / A1111_ANNOTATORS / "openpose").mkdir(parents=True)
    (webui / A1111_ANNOTATORS / "openpose" / "body_pose_model.pth").write_bytes(b"")
    assert set(available(roots(webui / "models"))) == WEIGHTLESS | {"pose"}  # one folder per annotator


def test_depth_models_that_make_other_maps_are_not_offered(tmp_path: Path) -> None:
    folder = tmp_path / "annotators" / "depth"
    write_depth_anything(folder / "metric")
    config = (folder / "metric" / "config.json").read_text()
    (folder / "metric" / "config.json").write_text(config.replace('"relative"', '"metric"'))
    write_depth_anything(folder / "no-processor")
    (folder / "no-processor" / "preprocessor_config.json").unlink()
    assert set(available(roots(tmp_path))) == WEIGHTLESS


def test_the_engine_lists_them_and_a_control_job_runs_one(annotator_models: Path, make_events) -> None:
    engine = Engine(EngineSettings(models_dir=annotator_models, device="cpu"))
    assert {"lineart", "softedge", "depth", "normal", "pose"} <= set(engine.describe().preprocessors)
    rgba = np.dstack([picture("disc", 128, 128), np.full((128, 128), 255, np.uint8)])
    item = InputPixels(JobInput("control", FAKE_HASH, mode="scribble", preprocessor="depth"), rgba,
                       "job.inputs[0].blob")  # a depth map steering the built-in tiny model's scribble ControlNet
    out = engine.run(job(inputs=(item.input,)), {"control": (item,)}, make_events())
    assert out.images[0].shape == (128, 128, 4) and out.info["controls"][0]["weight"] == 1.0


# ---------------------------------------------------------------------------------------------- control images


@pytest.mark.parametrize("name", IMAGE_PREPROCESSORS)
def test_a_control_image_has_the_pictures_size_and_depends_on_it(offered, name: str) -> None:
    preprocessor = offered[name]
    disc, stripes = picture("disc"), picture("stripes")
    out = preprocessor.run(disc)
    assert out.shape == disc.shape and out.dtype == np.uint8
    assert not np.array_equal(out, preprocessor.run(stripes))
    annotation = preprocessor.annotate(disc)
    assert isinstance(annotation, Annotation) and annotation.data == {}
    np.testing.assert_array_equal(annotation.image, out)  # the same picture, the same control image
    with pytest.raises(ValueError, match="H x W x 3"):
        preprocessor.run(disc[..., 0])


def test_weights_are_read_on_first_use_and_kept(annotator_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda path, **kw: reads.append(Path(path)) or real(path, **kw))
    lineart = available(roots(annotator_models), "cpu", RESOLUTION)["lineart"]
    assert reads == []  # offering reads nothing
    lineart.run(picture("disc"))
    lineart.run(picture("stripes"))
    assert [p.name for p in reads] == ["sk_model.pth"]


# ---------------------------------------------------------------------------------------------- bad files


def bad_files(folder: Path) -> dict[str, bytes]:
    real = (folder / "sk_model.pth").read_bytes()
    other = folder.parent / "other.pth"
    torch.save(seeded_state(pidinet, 0), other)  # another network's weights under lineart's name
    return {"garbage": b"this is not a torch file", "truncated": real[: len(real) // 2],
            "another network": other.read_bytes()}


@pytest.mark.parametrize("what", ["garbage", "truncated", "another network"])
def test_a_bad_weights_file_is_a_clear_error_and_nothing_else_breaks(annotator_models: Path, tmp_path: Path,
                                                                      what: str) -> None:
    folder = tmp_path / "annotators"
    folder.mkdir()
    (folder / "sk_model.pth").write_bytes(bad_files(annotator_models / "annotators")[what])
    lineart = available(roots(tmp_path), "cpu", RESOLUTION)["lineart"]  # offered: discovery reads names only
    with pytest.raises(EngineError) as caught:
        lineart.run(picture("disc"))
    assert caught.value.code is ErrorCode.NOT_SUPPORTED and str(folder / "sk_model.pth") in str(caught.value)
    assert len(str(caught.value)) < 500
    with pytest.raises(EngineError):  # tried again (the painter may have replaced the file), still refused
        lineart.run(picture("disc"))
    assert available(roots(tmp_path))["scribble"].run(picture("disc")).any()


def test_a_broken_depth_model_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "annotators" / "depth" / "broken"
    write_depth_anything(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    depth = available(roots(tmp_path), "cpu", RESOLUTION)["depth"]
    with pytest.raises(EngineError, match="broken") as caught:
        depth.run(picture("disc"))
    assert caught.value.code is ErrorCode.NOT_SUPPORTED and str(folder) in str(caught.value)


# ---------------------------------------------------------------------------------------------- depth, normal


def test_normals_tilt_with_the_depth_and_face_the_viewer_where_flat() -> None:
    ramp = np.tile(np.linspace(0.2, 1.0, 64, dtype=np.float32), (48, 1))  # nearer to the right
    tilted = normal_from_depth(ramp)
    flat = normal_from_depth(np.full((48, 64), 0.5, np.float32))
    assert tilted.shape == (48, 64, 3) and tilted.dtype == np.uint8
    assert (flat == (255, 127, 127)).all()  # (z, y, x): straight at the viewer
    inner = tilted[4:-4, 4:-4].astype(int)
    assert (inner[..., 2] > 140).all() and (inner[..., 0] < 250).all() and (np.abs(inner[..., 1] - 127) <= 1).all()
    far = normal_from_depth(np.zeros((8, 8), np.float32) + np.eye(8, dtype=np.float32) * 0.05)
    assert (far == (255, 127, 127)).all()  # the far background is left flat
    assert not unit_range(np.full((4, 4), 3.0, np.float32)).any()  # flat depth: no NaN, all far


# ---------------------------------------------------------------------------------------------- pose


def test_pose_comes_back_as_openpose_keypoints_in_the_pictures_pixels(offered) -> None:
    disc = picture("disc")
    annotation = offered["pose"].annotate(disc)
    assert annotation.image.shape == disc.shape and annotation.image.dtype == np.uint8
    assert annotation.data["canvas_width"] == 100 and annotation.data["canvas_height"] == 72
    assert annotation.data["people"] == []  # the zeroed heatmap head finds no one
    assert not annotation.image.any()
    np.testing.assert_array_equal(offered["pose"].run(disc), annotation.image)


def test_body_detections_become_people_scaled_to_the_picture() -> None:
    # Body's raw answer at the detection size: candidate rows (x, y, score, id), one subset row per person
    candidate = np.array([[40.0, 20.0, 0.9, 0], [40.0, 40.0, 0.8, 1], [30.0, 40.0, 0.7, 2], [50.0, 40.0, 0.6, 3]])
    subset = np.full((1, PARTS + 2), -1.0)
    subset[0, :3] = [0, 1, 2]  # nose, neck, right shoulder
    subset[0, 5] = 3  # left shoulder; the right elbow (3) and the rest were not found
    subset[0, PARTS:] = [3.0, 4]  # total score, parts found
    people = people_from(candidate, subset, (2.0, 0.5))  # the picture is twice as wide, half as high
    assert len(people) == 1 and len(people[0]) == PARTS
    assert people[0][0] == (80.0, 10.0, 0.9) and people[0][5] == (100.0, 20.0, 0.6) and people[0][3] is None
    data = openpose_json(people, 160, 40)
    keypoints = data["people"][0]["pose_keypoints_2d"]
    assert data["canvas_width"] == 160 and data["canvas_height"] == 40 and len(keypoints) == 3 * PARTS
    assert keypoints[:6] == [80.0, 10.0, 0.9, 80.0, 20.0, 0.8] and keypoints[9:12] == [0.0, 0.0, 0.0]
    assert json.loads(json.dumps(data)) == data  # goes into the job's info as it is
    assert people_from(candidate, np.zeros((0, PARTS + 2)), (1.0, 1.0)) == []

    image = draw_people(people, (160, 40), (40, 160))
    assert image.shape == (40, 160, 3) and image.dtype == np.uint8
    assert image[10, 80].any() and image[20, 80].any()  # joints drawn where the keypoints are
    assert image[20, 80:100].any(axis=1).all()  # the neck-to-left-shoulder limb
    assert not image[:, :40].any() and not image[:, 130:].any()  # nothing far from the person
