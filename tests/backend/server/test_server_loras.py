"""Issue 15: a LoRA through the socket, with the real engine on the tiny model, and the hello that lists it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from helpers.lora_files import a1111_embedding, kohya_lora, write_lora
from latentbrush.protocol import ClientHello, ErrorCode, LoraInfo, LoraRef
from server_harness import TOKEN, TestClient, decode_png, job, running_server, submit

engine_module = pytest.importorskip("latentbrush.backend.engine", reason="the diffusion engine is not installed")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    from latentbrush.backend.models.tiny import build_tiny_sd15

    root: Path = tmp_path_factory.mktemp("socket-loras")
    pipe = build_tiny_sd15(inpaint=False)
    write_lora(root / "loras", "detail", kohya_lora(pipe, seed=1))
    write_lora(root / "embeddings", "mystyle", a1111_embedding(pipe))
    return engine_module.Engine(engine_module.EngineSettings(models_dir=root, device="cpu"))


async def jobs_over_the_socket(engine) -> tuple:
    async with running_server(engine) as server, TestClient.connect(server.url, hello=False) as client:
        await client.send(ClientHello(protocol=1, minor=1, client="test", token=TOKEN))
        hello = await client.recv()
        common = {"model": "tiny", "steps": 2, "seed": 5, "cfg": 5.0, "preview_format": "none"}
        requests = [job("plain", **common), job("lora", loras=(LoraRef("detail", 0.8),), **common),
                    job("unknown", loras=(LoraRef("nope", 1.0),), **common)]
        for request in requests:
            await client.send(submit(request))
        traces = {request.id: await client.finish(request.id) for request in requests}
    return hello, traces


def test_a_job_with_a_lora_through_the_socket(engine) -> None:
    hello, traces = asyncio.run(jobs_over_the_socket(engine))
    assert hello.loras == (LoraInfo("detail", "tiny"),) and hello.embeddings == ("mystyle",)
    lora, plain, unknown = traces["lora"], traces["plain"], traces["unknown"]
    assert type(lora.final).TYPE == "done" and lora.final.info["loras"] == [{"name": "detail", "weight": 0.8}]
    assert lora.final.info["prompt_chunks"] == 1
    pictures = [decode_png(trace.results[0][1]) for trace in (plain, lora)]
    assert not np.array_equal(*pictures)  # the LoRA changed the picture
    assert type(unknown.final).TYPE == "error"
    assert (unknown.final.code, unknown.final.field) == (ErrorCode.BAD_FIELD, "job.loras[0].name")
