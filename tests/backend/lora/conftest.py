"""A models folder with tiny LoRAs and embeddings as painters keep them, and an engine over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.lora_files import a1111_embedding, kohya_lora, write_lora
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models.tiny import build_tiny_sd15, build_tiny_sdxl
from lora_helpers import Events, make_job


@pytest.fixture(scope="session", autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)  # the CI box has two cores shared with other suites


@pytest.fixture(scope="session")
def tiny_pipe() -> Any:
    return build_tiny_sd15(inpaint=False)  # the built-in "tiny" model's modules, to shape files after


@pytest.fixture(scope="session")
def lora_models(tmp_path_factory: pytest.TempPathFactory, tiny_pipe: Any) -> Path:
    root = tmp_path_factory.mktemp("lora-models")
    write_lora(root / "loras", "detail", kohya_lora(tiny_pipe, seed=1))  # UNet and text encoder
    write_lora(root / "Lora" / "styles", "unet-only", kohya_lora(tiny_pipe, seed=2, text_encoder=False))  # A1111
    write_lora(root / "loras", "xl-detail", kohya_lora(build_tiny_sdxl(inpaint=False), seed=3))  # for "tiny-sdxl"
    # an SD 1.5-sized one (768-wide text): listed, but not for the tiny model
    write_lora(root / "LyCORIS", "real-sd15", {
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.zeros(2, 768),
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.zeros(320, 2),
    })
    write_lora(root / "loras", "loha", {"lora_unet_x_attn2_to_k.hada_w1_a": torch.zeros(2, 2)})
    (root / "loras" / "old.pt").write_bytes(b"not read")
    (root / "Lora" / "older.ckpt").write_bytes(b"not read")  # not a checkpoint for the model scan to refuse
    write_lora(root / "embeddings", "mystyle", a1111_embedding(tiny_pipe, vectors=2))
    (root / "embeddings" / "pickled.pt").write_bytes(b"not read")
    return root


@pytest.fixture(scope="session")
def lora_engine(lora_models: Path) -> Engine:
    return Engine(EngineSettings(models_dir=lora_models, device="cpu"))


@pytest.fixture
def run_job(lora_engine: Engine):
    """Run a job with these fields on the LoRA engine: (RGBA result, job info)."""

    def run(engine: Engine | None = None, **fields: Any) -> tuple[Any, dict[str, Any]]:
        out = (engine or lora_engine).run(make_job(**fields), {}, Events())
        return out.images[0], out.info

    return run
