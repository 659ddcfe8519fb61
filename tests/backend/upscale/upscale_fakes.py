"""Test doubles for the upscale package: a recording JobEvents, tiny spandrel models, an OOM-raising model."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.upscale.registry import UpscalerRegistry
from latentbrush.protocol import JobRequest, Rect, Size, UpscaleParams
from safetensors.torch import save_file

FAKE_HASH = "sha256:" + "0" * 64


class RecordingEvents:
    """JobEvents that records every call; ``cancel_after`` sets the cancel event after that many progress calls."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.cancel = threading.Event()
        self.cancel_after = cancel_after
        self.calls: list[tuple[Any, ...]] = []

    def started(self, total: int, seed: int | None) -> None:
        self.calls.append(("started", total, seed))

    def progress(self, step: int, total: int, stage: str) -> None:
        self.calls.append(("progress", step, total, stage))
        if self.cancel_after is not None and len(self.of("progress")) >= self.cancel_after:
            self.cancel.set()

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> None:
        self.calls.append(("preview", step, total, rgb.copy(), rect, index))

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None:
        self.calls.append(("result", index, rgba.copy(), seed))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


def compact(scale: int = 4, seed: int = 0, num_feat: int = 8, num_conv: int = 2) -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=scale, act_type="prelu")


def esrgan(scale: int = 4, seed: int = 0) -> torch.nn.Module:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)


def registry_at(models_dir: Path | None, **options: Any) -> UpscalerRegistry:
    """The upscaler registry of a models folder laid out as ours (upscale/, upscale_models/)."""
    return UpscalerRegistry(ModelFolders.from_models_dir(models_dir).upscale, **options)


def save_model(module: torch.nn.Module, path: Path) -> Path:
    """Writes ``module``'s weights as .safetensors, or as a Real-ESRGAN style {"params": ...} .pth."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"params": state}, path)
    return path


def descriptor(module: torch.nn.Module):
    """The spandrel ImageModelDescriptor of ``module`` (as the registry would load it), on CPU."""
    import spandrel

    return spandrel.ModelLoader(device="cpu").load_from_state_dict(module.state_dict()).eval()


@dataclass
class OomModel:
    """Wraps a spandrel descriptor; raises out-of-memory for inputs larger than ``max_side`` and logs sizes."""

    inner: Any
    max_side: int
    error: type[Exception] = torch.cuda.OutOfMemoryError
    tiling: Any = None
    seen: list[tuple[int, int]] = field(default_factory=list)
    failed: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scale = self.inner.scale
        self.size_requirements = self.inner.size_requirements
        self.input_channels = self.inner.input_channels
        self.device = self.inner.device
        self.dtype = self.inner.dtype
        if self.tiling is None:
            self.tiling = self.inner.tiling

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if max(h, w) > self.max_side:
            self.failed.append((h, w))
            if self.error is torch.cuda.OutOfMemoryError:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise self.error("MPS backend out of memory (MPS allocated: 1 GB)")
        self.seen.append((h, w))
        return self.inner(image)


class FixedRegistry:
    """Stands in for UpscalerRegistry with one in-memory model (for OOM and tiling-hint fakes)."""

    def __init__(self, model: Any, name: str = "fake.safetensors") -> None:
        self.model = model
        self.name = name

    def resolve(self, name: str) -> str:
        return "lanczos" if name == "lanczos" else self.name

    def load(self, name: str) -> Any:
        return self.model


def smooth_image(height: int, width: int, seed: int = 0, alpha: np.ndarray | None = None) -> np.ndarray:
    """RGBA uint8: smooth gradients and waves plus mild noise, so tile seams stand out against it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [
            0.5 + 0.4 * np.sin(x / 9.0 + y / 23.0),
            0.5 + 0.4 * np.cos(y / 11.0 - x / 31.0),
            (x + y) / (width + height),
        ],
        axis=-1,
    )
    rgb += rng.normal(0, 0.02, rgb.shape).astype(np.float32)
    out = np.empty((height, width, 4), dtype=np.uint8)
    out[..., :3] = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    out[..., 3] = 255 if alpha is None else alpha
    return out


def upscale_job(
    region: Rect, context: Rect | None = None, canvas: Size | None = None, preview_format: str = "jpeg", **params: Any
) -> JobRequest:
    context = context or region
    canvas = canvas or Size(context.x + context.width, context.y + context.height)
    return JobRequest(
        id="up1",
        op="upscale",
        canvas=canvas,
        region=region,
        context=context,
        image=FAKE_HASH,
        upscale=UpscaleParams(**params),
        preview_format=preview_format,
        preview_max_side=64,
    )
