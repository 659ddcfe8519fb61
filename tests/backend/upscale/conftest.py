"""Fixtures for the upscale tests: torch on few threads, a models folder with tiny random-weight upscalers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from upscale_fakes import compact, esrgan, save_model


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/upscale/ with a 4x and a 2x Compact (.safetensors, .pth) and a 3x Compact and a 2x ESRGAN."""
    root = tmp_path_factory.mktemp("models")
    save_model(compact(4), root / "upscale" / "4x-tiny-compact.safetensors")
    save_model(compact(2, seed=1), root / "upscale" / "2x-tiny-compact.pth")
    save_model(compact(3, seed=2), root / "upscale_models" / "x3-tiny.safetensors")
    save_model(esrgan(2, seed=3), root / "upscale" / "esrgan" / "2x-tiny-esrgan.pth")
    return root
