"""The preprocess operation: the control image of a picture as a job result ("make control image from canvas")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import FAKE_HASH, RecordingEvents, job
from latentbrush.backend.control import preprocessors as pre
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import JobCancelled
from latentbrush.backend.inputs import InputPixels
from latentbrush.protocol import ErrorCode, JobInput, Rect, Size


def picture(height: int = 96, width: int = 128) -> np.ndarray:
    """A transparent layer with a dark filled square and a dark ring drawn on it."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[20:50, 20:50] = (30, 30, 30, 255)
    y, x = np.mgrid[0:height, 0:width]
    rgba[np.abs(np.hypot(x - 90, y - 50) - 20) < 2] = (10, 10, 10, 255)
    return rgba


def preprocess_job(preprocessor: str, context: Rect, region: Rect | None = None):
    control = JobInput("control", FAKE_HASH, preprocessor=preprocessor)
    return job(op="preprocess", canvas=Size(context.right, context.bottom), context=context,
               region=region or context, inputs=(control,), resolution=None)


def inputs_of(rgba: np.ndarray):
    return {"control": (InputPixels(JobInput("control", FAKE_HASH), rgba, "job.inputs[0].blob"),)}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(EngineSettings(models_dir=None, device="cpu"))


def flat_on_paper(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    return np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)


def test_scribble_of_a_transparent_layer_is_what_a_control_input_would_steer_with(engine: Engine) -> None:
    rgba = picture()
    events = RecordingEvents()
    out = engine.run(preprocess_job("scribble", Rect(0, 0, 128, 96)), inputs_of(rgba), events)
    image = out.images[0]
    assert image.shape == (96, 128, 4) and (image[..., 3] == 255).all()  # an opaque new layer
    np.testing.assert_array_equal(image[..., :3], pre.scribble(flat_on_paper(rgba)))  # transparent = paper
    assert image[35, 35, 0] == 255 and image[5, 5, 0] == 0  # white strokes on black
    assert out.info["preprocessor"] == "scribble" and "annotation" not in out.info
    assert events.of("started") == [(1, None)] and events.of("progress") == [(1, 1, "preprocess")]
    assert [index for index, _rgba, _seed in events.of("result")] == [0] and not events.of("preview")


def test_the_context_is_preprocessed_and_the_region_returned(engine: Engine) -> None:
    rgba = picture()
    context, region = Rect(10, 20, 128, 96), Rect(30, 30, 64, 48)  # the region sits at (20, 10) in the context
    out = engine.run(preprocess_job("canny", context, region), inputs_of(rgba), RecordingEvents())
    whole = pre.canny(flat_on_paper(rgba))
    np.testing.assert_array_equal(out.images[0][..., :3], whole[10:58, 20:84])
    assert out.images[0][..., :3].any()  # the square's edges cross the region


def test_an_unknown_preprocessor_is_refused_before_any_work(engine: Engine) -> None:
    error = engine.check(preprocess_job("lineart_anime_v9", Rect(0, 0, 64, 64)))
    assert error is not None and error.code is ErrorCode.NOT_SUPPORTED
    assert error.field == "job.inputs[0].preprocessor" and "offered" in error.message


def test_a_cancel_before_it_starts_sends_nothing(engine: Engine) -> None:
    events = RecordingEvents()
    events.cancel.set()
    with pytest.raises(JobCancelled):
        engine.run(preprocess_job("scribble", Rect(0, 0, 64, 64)), inputs_of(picture(64, 64)), events)
    assert events.calls == []


def test_what_a_preprocessor_finds_comes_back_in_the_info(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pose-like preprocessor's keypoints reach ``done.info.annotation`` as the preprocessor gave them."""
    found = {"canvas_width": 64, "canvas_height": 64, "people": [{"pose_keypoints_2d": [10.0, 12.0, 0.9]}]}

    def annotate(rgb: np.ndarray) -> pre.Annotation:
        return pre.Annotation(np.zeros_like(rgb), found)

    scribble = engine.controls.preprocessors["scribble"]
    posing = replace(scribble, name="pose_test", annotator=annotate)
    monkeypatch.setitem(engine.controls.preprocessors, "pose_test", posing)
    out = engine.run(preprocess_job("pose_test", Rect(0, 0, 64, 64)), inputs_of(picture(64, 64)), RecordingEvents())
    assert out.info["annotation"] == found and not out.images[0][..., :3].any()
