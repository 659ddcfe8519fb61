"""OpenPose results as keypoints in the picture's pixels (OpenPose JSON) and as the skeleton control image.

controlnet_aux's ``Body`` answers with OpenPose's raw form: ``candidate`` rows (x, y, score, id) of every
peak found and ``subset`` rows, one per person, holding 18 candidate indices (-1: part not found) then the
person's total score and part count. Poses are 18-keypoint COCO order (nose, neck, right shoulder, ...),
the order the openpose ControlNets were drawn in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .weights import quiet_import

PARTS = 18
Keypoint = tuple[float, float, float]  # x, y in the picture's pixels, confidence 0..1
Person = tuple[Keypoint | None, ...]  # PARTS entries, None where the part was not found


def people_from(candidate: np.ndarray, subset: np.ndarray, scale: tuple[float, float]) -> list[Person]:
    """The people of a Body result with coordinates scaled by ``scale`` (x, y) from the detection size."""
    people = []
    for row in np.asarray(subset).reshape(-1, PARTS + 2):
        person: list[Keypoint | None] = []
        for index in row[:PARTS].astype(int):
            if index < 0:
                person.append(None)
                continue
            x, y, score = (float(v) for v in candidate[index][:3])
            person.append((x * scale[0], y * scale[1], score))
        people.append(tuple(person))
    return people


def openpose_json(people: Sequence[Person], width: int, height: int) -> dict[str, Any]:
    """OpenPose's JSON: per person ``pose_keypoints_2d`` = [x, y, confidence] * 18, (0, 0, 0) when missing."""
    return {
        "canvas_width": width,
        "canvas_height": height,
        "people": [{"pose_keypoints_2d": [v for point in person for v in (point or (0.0, 0.0, 0.0))]}
                   for person in people],
    }


def draw_people(people: Sequence[Person], picture: tuple[int, int], canvas: tuple[int, int]) -> np.ndarray:
    """The skeletons (controlnet_aux's colours and limbs) on black, ``canvas`` (h, w) large; coordinates are in
    the ``picture`` (w, h) pixels."""
    quiet_import()
    from controlnet_aux.open_pose.body import Keypoint as AuxKeypoint
    from controlnet_aux.open_pose.util import draw_bodypose

    image = np.zeros((*canvas, 3), np.uint8)
    for person in people:
        points = [None if p is None else AuxKeypoint(p[0] / picture[0], p[1] / picture[1], p[2]) for p in person]
        image = draw_bodypose(image, points)
    return image
