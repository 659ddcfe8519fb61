"""Few-step presets in the server hello, over a real loopback socket with the real engine (nothing runs)."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.models.tiny import build_tiny_sd15
from latentbrush.backend.ops.presets import PRESETS
from latentbrush.protocol import QueryModels, SamplerPreset
from server_harness import TestClient, running_server


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("models")
    build_tiny_sd15(inpaint=False, seed=1).save_pretrained(root / "lcm-dreamshaper")
    shutil.copytree(root / "lcm-dreamshaper", root / "ordinary")
    return Engine(EngineSettings(models_dir=root, device="cpu"))


def test_hello_lists_the_presets_and_each_models_own(engine: Engine) -> None:
    async def scenario() -> None:
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            hello = client.hello
            assert hello.presets == PRESETS and hello.presets["lightning-4step"] == SamplerPreset(
                "Euler trailing", 4, 1.0)
            assert all(preset.sampler in hello.samplers for preset in hello.presets.values())
            models = {m.name: m.preset for m in hello.models}
            assert models["lcm-dreamshaper"] == SamplerPreset("LCM", 4, 1.0)
            assert models["ordinary"] is None and models["tiny"] is None
            await client.send(QueryModels())
            answer = await client.next_other()
            assert {m.name: m.preset for m in answer.models} == models

    asyncio.run(scenario())
