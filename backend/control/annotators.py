"""Lineart, softedge and pose preprocessors: controlnet_aux's annotator networks with lllyasviel's weights.

The networks and their pre- and post-processing are controlnet_aux's (the ``annotators`` extra), so the
control images are the ones the ControlNets were trained on. Only the loading is ours: weights come from the
models folder (``weights.py``), never from the Hub, read with the weights-only unpickler, built on first use
and kept on the engine's device. A preprocessor is offered only when its file is there.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .pose import draw_people, openpose_json, people_from
from .preprocessors import Annotation, Preprocessor, check_picture
from .weights import Cached, fill, find_file, load_state, quiet_import

log = logging.getLogger(__name__)

LINEART = "sk_model.pth"  # lineart ("realistic")
LINEART_COARSE = "sk_model2.pth"
HED = "ControlNetHED.pth"  # softedge; the v1.1 softedge ControlNets were trained on HED and PiDiNet maps
PIDINET = "table5_pidinet.pth"
BODY = "body_pose_model.pth"  # OpenPose body (18 keypoints)


def fit(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``image`` (H' x W' [x C] uint8) as H x W x 3 uint8 of the picture ``like``."""
    import cv2

    height, width = like.shape[:2]
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image, dtype=np.uint8)


# ------------------------------------------------------------------------------------- building the detectors


def _lineart(path: Path, device: Any) -> Any:
    quiet_import()
    from controlnet_aux.lineart import Generator, LineartDetector

    model = fill(Generator(3, 1, 3), load_state(path), path, "lineart (sk_model)").to(device)
    return LineartDetector(model, model)  # one file, one detector: coarse is its own preprocessor


def _hed(path: Path, device: Any) -> Any:
    quiet_import()
    from controlnet_aux.hed import ControlNetHED_Apache2, HEDdetector

    return HEDdetector(fill(ControlNetHED_Apache2().float(), load_state(path), path, "ControlNetHED").to(device))


def _pidinet(path: Path, device: Any) -> Any:
    quiet_import()
    from controlnet_aux.pidi import PidiNetDetector
    from controlnet_aux.pidi.model import pidinet

    state = load_state(path)
    state = state.get("state_dict", state)  # the training checkpoint wraps it, keys prefixed by DataParallel
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return PidiNetDetector(fill(pidinet(), state, path, "PiDiNet").to(device))


def _body(path: Path, device: Any) -> Any:
    quiet_import()
    from controlnet_aux.open_pose import util
    from controlnet_aux.open_pose.body import Body
    from controlnet_aux.open_pose.model import bodypose_model

    class LoadedBody(Body):  # Body's own __init__ reads the file with torch.load's defaults
        def __init__(self, model: Any) -> None:
            self.model = model

    model = bodypose_model()
    try:  # the file's keys lack the model's block prefix (model0., model1_1., ...); transfer adds it
        state = util.transfer(model, load_state(path))
    except KeyError:
        state = {}  # fill() names the missing keys
    return LoadedBody(fill(model, state, path, "OpenPose body").to(device))


# ------------------------------------------------------------------------------------- running them


def edges(detector: Cached[Any], resolution: int, rgb: np.ndarray, **options: Any) -> np.ndarray:
    """A lineart or softedge map of ``rgb`` (white on black, the picture's size)."""
    check_picture(rgb)
    out = detector.get()(rgb, detect_resolution=resolution, image_resolution=resolution, output_type="np",
                         **options)
    return fit(out, rgb)


def pose(body: Cached[Any], resolution: int, rgb: np.ndarray) -> Annotation:
    """The OpenPose skeletons of ``rgb`` drawn as the pose ControlNets expect, with their keypoints."""
    check_picture(rgb)
    quiet_import()
    from controlnet_aux.util import resize_image

    height, width = rgb.shape[:2]
    small = resize_image(rgb, resolution)
    candidate, subset = body.get()(np.ascontiguousarray(small[:, :, ::-1]))  # OpenPose takes BGR
    people = people_from(candidate, subset, (width / small.shape[1], height / small.shape[0]))
    # drawn at the detection size as in training (4 px limbs there), then brought to the picture's size
    image = fit(draw_people(people, (width, height), small.shape[:2]), rgb)
    return Annotation(image, openpose_json(people, width, height))


# name, weights file, builder, control mode; in this order, the first of a mode is also offered under the mode's
# own name ("softedge": HED when there, the map most softedge ControlNets were trained on, else PiDiNet)
EDGE_ANNOTATORS: tuple[tuple[str, str, Callable[[Path, Any], Any], str], ...] = (
    ("lineart", LINEART, _lineart, "lineart"),
    ("lineart_coarse", LINEART_COARSE, _lineart, "lineart"),
    ("softedge_hed", HED, _hed, "softedge"),
    ("softedge_pidinet", PIDINET, _pidinet, "softedge"),
)


def available(roots: tuple[Path, ...], device: Any, resolution: int) -> dict[str, Preprocessor]:
    """The annotator preprocessors whose weights are in ``roots`` (``ModelFolders.annotators``; nothing without
    controlnet_aux)."""
    if not roots:
        return {}
    if importlib.util.find_spec("controlnet_aux") is None:
        log.warning("annotator weights in %s are not used: install the annotators extra "
                    "(pip install 'latentbrush[annotators]')", ", ".join(map(str, roots)))
        return {}
    found: dict[str, Preprocessor] = {}
    for name, filename, build, mode in EDGE_ANNOTATORS:
        if path := find_file(roots, filename):
            run = partial(edges, Cached(partial(build, path, device)), resolution)
            found[name] = Preprocessor(name, run, (mode,))
            found.setdefault(mode, Preprocessor(mode, run, (mode,)))
            log.info("preprocessor %s: %s", name, path)
    if path := find_file(roots, BODY):
        annotate = partial(pose, Cached(partial(_body, path, device)), resolution)
        found["pose"] = Preprocessor("pose", lambda rgb: annotate(rgb).image, ("pose",), annotate)
        log.info("preprocessor pose: %s", path)
    return found
