"""The same upscale path on a CUDA device (skipped where there is none): half precision, real out-of-memory."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from latentbrush.backend.upscale import run_upscale
from latentbrush.backend.upscale.model_upscale import ModelTiler, is_out_of_memory
from latentbrush.protocol import Rect
from upscale_fakes import RecordingEvents, compact, registry_at, save_model, smooth_image, upscale_job

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fp16_on_cuda_matches_fp32_on_cpu(models_dir: Path) -> None:
    gpu = registry_at(models_dir, device="cuda", dtype=torch.float16)
    model = gpu.load("4x-tiny-compact.safetensors")
    assert model.device.type == "cuda" and model.dtype == torch.float16
    image = smooth_image(96, 80)
    job = upscale_job(Rect(0, 0, 80, 96), upscaler="4x-tiny-compact", scale=4, tile=48, overlap=16)
    on_gpu = run_upscale(job, image, RecordingEvents(), upscalers=gpu, refine=None).images[0].astype(int)
    on_cpu = run_upscale(job, image, RecordingEvents(), upscalers=registry_at(models_dir), refine=None)
    diff = np.abs(on_gpu - on_cpu.images[0].astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5


def test_a_real_cuda_out_of_memory_is_recognised() -> None:
    with pytest.raises(torch.cuda.OutOfMemoryError) as err:
        torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # a petabyte
    assert is_out_of_memory(err.value)


def test_real_out_of_memory_halves_the_tile(tmp_path: Path) -> None:
    """A memory cap makes the untiled pass fail for real; the tiler must finish on smaller tiles."""
    save_model(compact(4, num_feat=64, num_conv=16), tmp_path / "upscale" / "4x-compact.safetensors")
    model = registry_at(tmp_path, device="cuda", dtype=torch.float32).load("4x-compact")
    image = np.random.default_rng(0).random((1024, 1024, 3), dtype=np.float32)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    total = torch.cuda.get_device_properties(0).total_memory
    in_use = torch.cuda.memory_allocated()
    cap = in_use + (400 << 20)  # 400 MiB beyond what is allocated: one 1024^2 x 64 fp32 map is 256 MiB
    torch.cuda.set_per_process_memory_fraction(cap / total)
    try:
        tiler = ModelTiler(model, 4096, 32, threading.Event())
        out = tiler.run(image)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert out.shape == (4096, 4096, 3)
    assert tiler.oom_retries >= 1 and tiler.limit is not None and tiler.limit < 1024
    assert torch.cuda.max_memory_allocated() <= cap
