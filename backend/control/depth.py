"""Depth and normal preprocessors: a transformers depth model (Depth Anything, DPT / MiDaS) from the models folder.

A depth model is a transformers folder (``config.json``, ``model.safetensors``, ``preprocessor_config.json``,
as ``depth-anything/Depth-Anything-V2-Small-hf`` or ``Intel/dpt-hybrid-midas`` ship) in
``<models>/annotators/depth/<name>/``. These predict relative inverse depth, so near is bright, as in the
depth ControlNets' training maps; metric models (depth grows with distance) are not offered. The normal map
is made from the depth the way the original ``control_sd15_normal`` training maps were (lllyasviel's MiDaS
annotator): the depth's gradients with a constant z, flat where the depth is far background.
"""

from __future__ import annotations

import json
import logging
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .preprocessors import Preprocessor, check_picture
from .weights import Cached, unusable

log = logging.getLogger(__name__)

FOLDER = "depth"
FAMILIES = ("depth_anything", "dpt")  # config.json model_type of the relative inverse-depth models
NORMAL_Z = 2 * math.pi  # the annotator's constant z against gradients of the 0..255 depth map
NORMAL_BACKGROUND = 0.1  # depth (0..1, 1 nearest) below which the normal faces the viewer


def depth_models(roots: tuple[Path, ...]) -> tuple[Path, ...]:
    """The usable depth model folders in the annotator ``roots``, by name; others are logged with the reason."""
    found = []
    for root in roots:
        for folder in sorted((root / FOLDER).glob("*/")) if (root / FOLDER).is_dir() else ():
            try:
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("depth model %s not offered: no readable config.json", folder)
                continue
            kind = config.get("model_type")
            if kind not in FAMILIES or config.get("depth_estimation_type", "relative") != "relative":
                log.warning("depth model %s not offered: a %s %s model; only relative Depth Anything and DPT "
                            "models make the maps depth ControlNets know", folder,
                            config.get("depth_estimation_type", ""), kind)
            elif not (folder / "preprocessor_config.json").is_file():
                log.warning("depth model %s not offered: no preprocessor_config.json", folder)
            else:
                found.append(folder)
    return tuple(found)


def _load(folder: Path, device: Any) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    try:
        model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds for a broken folder; none may stop the server
        raise unusable(folder, f"could not be loaded as a depth model ({type(exc).__name__}: {exc})"[:400])
    return model.to(device).eval(), processor


def estimate(network: Cached[tuple[Any, Any]], rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Relative inverse depth of ``rgb`` (near = large) as ``size`` (h, w) float32."""
    import torch

    model, processor = network.get()
    inputs = processor(images=rgb, return_tensors="pt").to(next(model.parameters()).device)
    with torch.inference_mode():
        outputs = model(**inputs)
    depth = processor.post_process_depth_estimation(outputs, target_sizes=[size])[0]["predicted_depth"]
    return depth.float().cpu().numpy().reshape(size)


def unit_range(depth: np.ndarray) -> np.ndarray:
    """``depth`` stretched to 0..1 (the relative models' scale means nothing); flat depth is all 0."""
    low, high = float(depth.min()), float(depth.max())
    if not high > low:
        return np.zeros_like(depth, dtype=np.float32)
    return ((depth - low) / (high - low)).astype(np.float32)


def depth_image(depth: np.ndarray) -> np.ndarray:
    """0..1 depth as the grey H x W x 3 uint8 control image."""
    grey = np.clip(np.rint(depth * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def normal_from_depth(depth: np.ndarray) -> np.ndarray:
    """0..1 depth (1 nearest) -> the normal map H x W x 3 uint8 control_sd15_normal was trained on."""
    import cv2

    height = depth.astype(np.float32) * 255.0
    dx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)
    far = depth < NORMAL_BACKGROUND
    dx[far] = 0
    dy[far] = 0
    normal = np.stack([dx, dy, np.full_like(dx, NORMAL_Z)], axis=2)
    normal = normal / np.linalg.norm(normal, axis=2, keepdims=True)
    # the annotator stacked x, y, z and the ControlNet took the channels reversed: the image is (z, y, x)
    return np.clip(normal * 127.5 + 127.5, 0, 255).astype(np.uint8)[..., ::-1].copy()


def depth(network: Cached[tuple[Any, Any]], rgb: np.ndarray) -> np.ndarray:
    check_picture(rgb)
    return depth_image(unit_range(estimate(network, rgb, rgb.shape[:2])))


def normal(network: Cached[tuple[Any, Any]], resolution: int, rgb: np.ndarray) -> np.ndarray:
    """Normals from depth at the detection resolution (gradients depend on the pixel size), at the picture's size."""
    import cv2

    check_picture(rgb)
    height, width = rgb.shape[:2]
    scale = resolution / min(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = normal_from_depth(unit_range(estimate(network, rgb, size)))
    return cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR) if size != (height, width) else out


def available(roots: tuple[Path, ...], device: Any, resolution: int) -> dict[str, Preprocessor]:
    """``depth`` and ``normal`` from the first depth model folder found (sharing its network)."""
    folders = depth_models(roots)
    if not folders:
        return {}
    if len(folders) > 1:
        log.info("depth models %s found; the preprocessors use %s", ", ".join(f.name for f in folders), folders[0])
    network: Cached[tuple[Any, Any]] = Cached(partial(_load, folders[0], device))
    log.info("preprocessors depth, normal: %s", folders[0])
    return {
        "depth": Preprocessor("depth", partial(depth, network), ("depth",)),
        "normal": Preprocessor("normal", partial(normal, network, resolution), ("normal",)),
    }
