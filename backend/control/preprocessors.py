"""Control preprocessors: a picture in, the control image a ControlNet expects out (here the weightless ones).

ControlNets are trained on white structure on black: Canny edges, scribble strokes. A painter's own
line art or scribble layer is usually dark strokes on a light (or transparent) ground, so ``scribble``
turns that into the trained form; ``""`` sends the picture as it is (a ready control image). Canny uses
OpenCV when it is installed (the optional ``opencv`` extra); without it, it is not offered.

Every function takes and returns H x W x 3 uint8 RGB and is pure. ``available`` adds the network-backed
preprocessors (``annotators.py``: lineart, softedge, pose; ``depth.py``: depth, normal) whose weights are in
the models folder.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

NONE = ""
CANNY_LOW, CANNY_HIGH = 100, 200  # the thresholds the canny ControlNets were trained with (lllyasviel)
SCRIBBLE_THRESHOLD = 0.5  # of the local contrast: darker than this counts as a stroke
SCRIBBLE_WIDTH_PX = 3  # trained strokes are a few pixels wide; thinner input is thickened to this

DETECT_RESOLUTION = 512  # the short side annotators see, as when the ControlNets' training images were made

Preprocess = Callable[[np.ndarray], np.ndarray]


def check_picture(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"a control picture must be H x W x 3 uint8, got {rgb.dtype} {rgb.shape}")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma as float32 0..255 (what PIL's "L" conversion uses)."""
    check_picture(rgb)
    return rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)


def white_on_black(strokes: np.ndarray) -> np.ndarray:
    """A boolean stroke map as the RGB control image (255 on strokes, 0 elsewhere)."""
    out = np.zeros((*strokes.shape, 3), np.uint8)
    out[strokes] = 255
    return out


def scribble(rgb: np.ndarray) -> np.ndarray:
    """Dark strokes on a light ground -> white strokes on black, at least SCRIBBLE_WIDTH_PX wide.

    The threshold sits between the picture's darkest and lightest luma, so pencil grey on paper and black
    ink on white both work. A picture with no contrast has no strokes (all black).
    """
    luma = luminance(rgb)
    low, high = float(luma.min()), float(luma.max())
    if high - low < 1.0:
        return np.zeros_like(rgb)
    strokes = luma < low + SCRIBBLE_THRESHOLD * (high - low)
    if strokes.mean() > 0.5:  # light strokes on a dark ground: already the trained polarity
        strokes = ~strokes
    strokes = ndimage.binary_dilation(strokes, iterations=SCRIBBLE_WIDTH_PX // 2)
    return white_on_black(strokes)


def canny(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's Canny edges (white on black) with the thresholds the canny ControlNets used."""
    check_picture(rgb)
    import cv2

    edges = cv2.Canny(np.ascontiguousarray(rgb), CANNY_LOW, CANNY_HIGH)
    return white_on_black(edges > 0)


def as_is(rgb: np.ndarray) -> np.ndarray:
    check_picture(rgb)
    return rgb


@dataclass(frozen=True)
class Annotation:
    """A control image and what the preprocessor found besides (JSON-able; pose: OpenPose keypoints)."""

    image: np.ndarray  # H x W x 3 uint8, the picture's size
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Preprocessor:
    name: str
    run: Preprocess
    modes: tuple[str, ...]  # the control modes it makes images for ("" = any)
    annotator: Callable[[np.ndarray], Annotation] | None = None  # when it finds more than the image (pose)

    def annotate(self, rgb: np.ndarray) -> Annotation:
        """The control image of ``rgb`` with its data ({} for all but pose)."""
        if self.annotator is not None:
            return self.annotator(rgb)
        return Annotation(self.run(rgb), {})


def available(annotator_roots: tuple[Path, ...] = (), device: Any = "cpu",
              resolution: int = DETECT_RESOLUTION) -> dict[str, Preprocessor]:
    """The preprocessors this installation can run, by name: the weightless ones, then those whose weights are
    in ``annotator_roots`` (``ModelFolders.annotators``; loaded on first use onto ``device``; ``resolution`` is
    the short side they detect at)."""
    from . import annotators, depth  # they build on the types above

    found = {
        NONE: Preprocessor(NONE, as_is, ("",)),
        "scribble": Preprocessor("scribble", scribble, ("scribble",)),
    }
    if importlib.util.find_spec("cv2") is not None:
        found["canny"] = Preprocessor("canny", canny, ("canny",))
        # the annotators' pre- and post-processing is OpenCV too
        found.update(annotators.available(annotator_roots, device, resolution))
        found.update(depth.available(annotator_roots, device, resolution))
    return found
