"""Fixtures for the download tests: a fake Hub huggingface_hub is pointed at, and a tiny set of fake models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.fake_hub import FakeHub, point_huggingface_hub_at

WEIGHTS = os.urandom(300_000)  # an "upscaler" (LFS file: sha256 listed by the Hub)
TAESD_WEIGHTS = os.urandom(50_000)
TAESD_CONFIG = b'{"_class_name": "AutoencoderTiny"}'  # a plain git file (blob id listed)
GATED_WEIGHTS = os.urandom(1_000)

TINY_SETS = {
    "sets": [
        {"name": "tiny", "title": "Tiny test models", "items": [
            {"repo": "fake/upscaler", "file": "weights/up.safetensors", "dest": "upscale/4x-tiny.safetensors",
             "size": 1, "licence": "mit"},
            {"repo": "fake/taesd", "dest": "taesd", "allow_patterns": ["config.json", "*.safetensors"],
             "size": 1, "licence": "mit"},
        ]},
        {"name": "locked", "title": "A gated model", "items": [
            {"repo": "fake/gated", "file": "model.safetensors", "dest": "gated.safetensors", "size": 1000,
             "licence": "other", "gated": True},
        ]},
    ]
}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    fake = FakeHub()
    fake.add("fake/upscaler", "weights/up.safetensors", WEIGHTS)
    fake.add("fake/upscaler", "README.md", b"# not in any set", lfs=False)
    fake.add("fake/taesd", "config.json", TAESD_CONFIG, lfs=False)
    fake.add("fake/taesd", "diffusion_pytorch_model.safetensors", TAESD_WEIGHTS)
    fake.add("fake/taesd", "taesd_decoder.pth", b"not matched by the patterns")
    fake.add("fake/gated", "model.safetensors", GATED_WEIGHTS)
    fake.gated["fake/gated"] = "hf_accepted_token_123"
    with fake.running():
        point_huggingface_hub_at(fake.url, monkeypatch, tmp_path / "hf-home")
        yield fake


@pytest.fixture
def sets_file(tmp_path) -> Path:
    path = tmp_path / "sets.json"
    path.write_text(json.dumps(TINY_SETS), encoding="utf-8")
    return path


@pytest.fixture
def tiny_sets(sets_file):
    from latentbrush.backend.downloads.sets import load_sets

    return load_sets(sets_file)
