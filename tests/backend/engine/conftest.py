"""Fixtures for the diffusion engine tests: tiny engines, a models folder of tiny checkpoints, event recorders.

Everything is built offline from configs with seeded random weights; session scope keeps the folder fast.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models.clip_vocab import CONFIGS_DIR, load_shipped_tokenizer
from latentbrush.backend.models.ldm_layout import write_sd15_checkpoint
from latentbrush.backend.models.tiny import build_tiny_sdxl, tiny_sd15_components
from latentbrush.protocol import JobRequest, Rect, Size
from safetensors.torch import save_file

FAKE_HASH = "sha256:" + "0" * 64


@pytest.fixture(scope="session", autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)  # the CI box has two cores shared with other suites


class RecordingEvents:
    """A JobEvents that records every call; ``cancel_at`` sets the cancel event when that step is reported."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.cancel = threading.Event()
        self.cancel_at = cancel_at
        self.calls: list[tuple[str, Any]] = []
        self.previews: list[tuple[int, int, np.ndarray, Rect, int]] = []

    def started(self, total: int, seed: int | None) -> None:
        self.calls.append(("started", (total, seed)))

    def progress(self, step: int, total: int, stage: str) -> None:
        self.calls.append(("progress", (step, total, stage)))
        if self.cancel_at is not None and step >= self.cancel_at:
            self.cancel.set()

    def preview(self, step: int, total: int, rgb: np.ndarray, rect: Rect, index: int) -> None:
        self.calls.append(("preview", step))
        self.previews.append((step, total, rgb.copy(), rect, index))

    def result(self, index: int, rgba: np.ndarray, seed: int | None) -> None:
        self.calls.append(("result", (index, rgba.copy(), seed)))

    def of(self, kind: str) -> list[Any]:
        return [args for name, args in self.calls if name == kind]


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def make_events() -> Callable[..., RecordingEvents]:
    return RecordingEvents


@pytest.fixture(scope="session")
def tiny_engine() -> Engine:
    """The engine with nothing configured: built-in tiny and tiny-inpaint on the CPU."""
    return Engine(EngineSettings(models_dir=None, device="cpu"))


def job(**fields: Any) -> JobRequest:
    """A JobRequest with small defaults (128 px canvas, 2 steps, fixed seed); override any field."""
    defaults: dict[str, Any] = {
        "id": "job-1", "op": "txt2img", "canvas": Size(128, 128), "region": Rect(0, 0, 128, 128),
        "steps": 2, "seed": 1234, "resolution": Size(128, 128), "sampler": "Euler",
    }
    defaults.update(fields)
    if defaults.get("image") is True:
        defaults["image"] = FAKE_HASH
    if defaults.get("mask") is True:
        defaults["mask"] = FAKE_HASH
    return JobRequest(**defaults)


@pytest.fixture
def make_job() -> Callable[..., JobRequest]:
    return job


@pytest.fixture
def picture() -> Callable[[int, int], np.ndarray]:
    """A deterministic RGBA test picture (smooth gradients plus texture)."""

    def make(width: int, height: int) -> np.ndarray:
        y, x = np.mgrid[0:height, 0:width]
        rgba = np.empty((height, width, 4), np.uint8)
        rgba[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
        rgba[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
        rgba[..., 2] = ((x * 7 + y * 13) % 256).astype(np.uint8)
        rgba[..., 3] = 255
        return rgba

    return make


# ---------------------------------------------------------------------------------------------- models folder


def _tiny_pipeline_with_real_vocab(inpaint: bool, seed: int) -> Any:
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    tokenizer = load_shipped_tokenizer(CONFIGS_DIR / "sd15" / "tokenizer")  # 49408 tokens, as checkpoints have
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    return cls(**tiny_sd15_components(inpaint=inpaint, seed=seed, tokenizer=tokenizer))


@pytest.fixture(scope="session")
def tiny_sd15_pipelines() -> dict[str, Any]:
    """Source pipelines of the tiny single-file checkpoints (plain and 9-channel inpaint)."""
    return {"plain": _tiny_pipeline_with_real_vocab(False, seed=3), "inpaint": _tiny_pipeline_with_real_vocab(True, 4)}


@pytest.fixture(scope="session")
def tiny_skeletons(tmp_path_factory: pytest.TempPathFactory, tiny_sd15_pipelines: dict[str, Any]) -> Path:
    """The shipped skeletons with tiny component sizes (model_index, scheduler, tokenizer stay as shipped)."""
    root = tmp_path_factory.mktemp("skeletons")
    saved = tmp_path_factory.mktemp("tiny-saved")
    for name, pipe in (("sd15", tiny_sd15_pipelines["plain"]), ("sd15-inpaint", tiny_sd15_pipelines["inpaint"])):
        shutil.copytree(CONFIGS_DIR / name, root / name)
        pipe.save_pretrained(saved / name)
        for part in ("unet", "vae", "text_encoder"):
            shutil.copy(saved / name / part / "config.json", root / name / part / "config.json")
    return root


def write_header_only(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A valid safetensors file whose tensors have the given shapes (zeros, fp16; keep shapes small)."""
    save_file({k: torch.zeros(s, dtype=torch.float16) for k, s in shapes.items()}, str(path))
    return path


@pytest.fixture
def write_header() -> Callable[[Path, dict[str, tuple[int, ...]]], Path]:
    return write_header_only


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_sd15_pipelines: dict[str, Any]) -> Path:
    """A models folder as a user would have it: A1111 files, a diffusers folder, and things to ignore or refuse."""
    root = tmp_path_factory.mktemp("models")
    write_sd15_checkpoint(tiny_sd15_pipelines["plain"], root / "tiny-a1111.safetensors")
    (root / "inpainting").mkdir()
    write_sd15_checkpoint(tiny_sd15_pipelines["inpaint"], root / "inpainting" / "tiny-a1111-inpaint.safetensors")
    build_tiny_sdxl(inpaint=False, seed=5).save_pretrained(root / "tiny-xl")
    (root / "old.ckpt").write_bytes(b"not loaded")
    write_header_only(root / "sd2-model.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": (1, 4, 1, 1),
        "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (1, 1024),
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": (1, 1),
    })
    write_header_only(root / "some-lora.safetensors", {"lora_unet_down_blocks_0.alpha": (1,)})
    (root / "broken.safetensors").write_bytes(b"\x00" * 5)
    (root / "upscale").mkdir()
    write_header_only(root / "upscale" / "4x-tiny.safetensors", {"body.0.weight": (1,)})
    (root / "notes.json").write_text(json.dumps({"not": "a model"}))
    return root


@pytest.fixture(scope="session")
def folder_engine(models_dir: Path, tiny_skeletons: Path) -> Engine:
    return Engine(EngineSettings(models_dir=models_dir, device="cpu", configs_dir=tiny_skeletons))
