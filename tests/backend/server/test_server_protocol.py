"""Protocol v1 over a real loopback socket with the fake engine: hello, every operation, formats, queries."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from latentbrush.protocol import PROTOCOL_VERSION, QueryBlobs, QueryModels, QueryQueue, Rect, UpscaleParams, blob_hash
from server_fakes import DEFAULT_SEED, MODELS, SAMPLERS, FakeEngine, rgb_for
from server_harness import (
    TestClient,
    blob_frame,
    circle_mask,
    decode_png,
    job,
    pattern,
    running_server,
    submit,
    test_config,
)


def run(coro) -> None:
    asyncio.run(coro)


def decode_result(header, payload: bytes) -> np.ndarray:
    if header.format in ("rgba8", "bgra8"):
        pixels = np.frombuffer(payload, np.uint8).reshape(header.height, header.width, 4)
        return pixels[..., [2, 1, 0, 3]] if header.format == "bgra8" else pixels
    return decode_png(payload)


def test_hello_announces_engine_and_limits():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            hello = client.hello
            assert type(hello).TYPE == "hello"
            assert hello.protocol == PROTOCOL_VERSION and hello.resumed is False
            assert hello.client_id and hello.device == "fake"
            assert [m.name for m in hello.models] == [m.name for m in MODELS]
            assert hello.samplers == SAMPLERS and hello.default_model == "fake-sd"
            assert hello.limits == test_config().limits()
            assert hello.limits.max_frame_bytes == 8 * 1024 * 1024

    run(scenario())


def test_txt2img_lifecycle_and_result_pixels():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("t1", steps=3, seed=7, region=Rect(8, 16, 32, 24))))
            trace = await client.finish("t1")
            assert trace.kinds[:2] == ["queued", "started"] and trace.kinds[-1] == "done"
            assert [m.step for m in trace.messages if type(m).TYPE == "progress"] == [1, 2, 3]
            started = trace.messages[1]
            assert (started.total, started.seed) == (3, 7)
            done = trace.final
            assert done.results == 1 and done.seeds == (7,) and done.info["model"] == "fake-sd"
            assert "seconds" in done.info
            ((header, payload),) = trace.results
            assert header.rect == Rect(8, 16, 32, 24) and (header.width, header.height) == (32, 24)
            pixels = decode_result(header, payload)
            assert pixels.shape == (24, 32, 4)
            assert (pixels[..., :3] == rgb_for(7)).all() and (pixels[..., 3] == 255).all()

    run(scenario())


def test_inpaint_uses_uploaded_image_and_mask():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            image = await client.upload_rgba(pattern(64, 48), "png")
            mask_pixels = circle_mask(64, 48)
            mask = await client.upload_rgba(mask_pixels, "gray8")
            request = job(
                "i1",
                "inpaint",
                size=128,
                context=Rect(32, 40, 64, 48),
                region=Rect(40, 44, 40, 32),
                image=image,
                mask=mask,
                seed=3,
                batch=2,
            )
            await client.send(submit(request))
            trace = await client.finish("i1")
            assert trace.final.results == 2 and trace.final.seeds == (3, 4)
            for index, (header, payload) in enumerate(trace.results):
                assert header.index == index and header.seed == 3 + index
                pixels = decode_result(header, payload)
                # the fake's alpha is the mask cropped to the region: the crop arrived intact
                assert np.array_equal(pixels[..., 3], mask_pixels[4:36, 8:48])
                assert (pixels[..., :3] == rgb_for(3 + index)).all()

    run(scenario())


def test_img2img_and_upscale():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            image = await client.upload_rgba(pattern(64, 64), "rgba8")
            await client.send(submit(job("r1", "img2img", image=image, strength=0.5, steps=2)))
            await client.send(
                submit(job("u1", "upscale", image=image, steps=2, upscale=UpscaleParams(upscaler="fake-2x", scale=2.0)))
            )
            refine = await client.finish("r1")
            upscale = await client.finish("u1")
            assert refine.final.results == 1 and refine.results[0][0].width == 64
            ((header, payload),) = upscale.results
            assert (header.width, header.height) == (128, 128)
            assert decode_result(header, payload).shape == (128, 128, 4)

    run(scenario())


@pytest.mark.parametrize("fmt", ["png", "rgba8", "bgra8", "webp"])
def test_result_formats_are_lossless(fmt):
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            mask_pixels = circle_mask(48, 40)
            image = await client.upload_rgba(pattern(48, 40), "bgra8")
            mask = await client.upload_rgba(mask_pixels, "png")
            request = job(
                "f1", "inpaint", image=image, mask=mask, region=Rect(0, 0, 48, 40), result_format=fmt, seed=11, steps=1
            )
            await client.send(submit(request))
            trace = await client.finish("f1")
            ((header, payload),) = trace.results
            assert header.format == fmt
            if fmt in ("rgba8", "bgra8"):
                assert header.stride == 48 * 4 and len(payload) == 48 * 40 * 4
            pixels = decode_result(header, payload)
            assert np.array_equal(pixels[..., 3], mask_pixels)
            assert (pixels[..., :3] == rgb_for(11)).all()

    run(scenario())


def test_every_step_previewed_when_client_keeps_up():
    engine = FakeEngine(preview_size=(256, 128))
    engine.lockstep()

    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            request = job(
                "p1",
                size=256,
                context=Rect(0, 0, 256, 256),
                region=Rect(16, 32, 200, 100),
                steps=6,
                preview_max_side=64,
                preview_format="png",
            )
            await client.send(submit(request))
            trace = None
            seen = 0
            while trace is None or trace.final is None:
                item = await client.recv()
                client._file(item)
                trace = client.traces.get("p1")
                if trace is not None and len(trace.previews) > seen:
                    seen = len(trace.previews)
                    engine.advance()  # the next step only after this preview arrived
            assert [h.step for h, _ in trace.previews] == [1, 2, 3, 4, 5, 6]
            for header, payload in trace.previews:
                assert header.rect == Rect(16, 32, 200, 100) and header.total == 6
                assert (header.width, header.height) == (64, 32)  # longest side scaled to preview_max_side
                picture = decode_png(payload)
                assert picture.shape == (32, 64, 4) and tuple(picture[0, 0, :3]) == (header.step, 255 - header.step, 0)

    run(scenario())


def test_a_reading_client_gets_every_preview_even_when_they_come_fast():
    """Previews are only replaced while the socket is backed up, never because the engine is quick."""

    async def scenario():
        async with running_server(FakeEngine(preview_size=(32, 32))) as server, TestClient.connect(server.url) as c:
            await c.send(submit(job("fast", steps=40, batch=2)))
            trace = await c.finish("fast")
            for index in (0, 1):
                assert [h.step for h, _ in trace.previews if h.index == index] == list(range(1, 41))

    run(scenario())


def test_previews_off_and_raw_preview_format():
    async def scenario():
        async with running_server(FakeEngine(preview_size=(16, 16))) as server, TestClient.connect(server.url) as c:
            await c.send(submit(job("n1", steps=3, preview_format="none")))
            await c.send(submit(job("n2", steps=2, preview_format="bgra8")))
            assert (await c.finish("n1")).previews == []
            trace = await c.finish("n2")
            assert trace.previews, "at least the last preview of a job reaches a reading client"
            header, payload = trace.previews[-1]
            assert header.format == "bgra8" and len(payload) == 16 * 16 * 4
            assert tuple(payload[:4]) == (0, 255 - header.step, header.step, 255)  # B, G, R, A

    run(scenario())


def test_queries_models_queue_and_blobs():
    engine = FakeEngine()
    engine.hold()

    async def scenario():
        async with running_server(engine) as server, TestClient.connect(server.url) as client:
            await client.send(QueryModels())
            models = await client.next_other()
            assert [m.name for m in models.models] == [m.name for m in MODELS] and models.upscalers == ("fake-2x",)

            await client.send(submit(job("q1")))
            await client.send(submit(job("q2")))
            await client.wait_for("q2", "queued")
            await client.send(QueryQueue())
            queue = await client.next_other()
            assert [(j.job_id, j.position, j.op) for j in queue.jobs] == [("q1", None, "txt2img"), ("q2", 0, "txt2img")]
            engine.release()
            await client.finish("q2")

            header, payload = blob_frame(pattern(16, 16), "png")
            missing = blob_hash(b"never uploaded")
            await client.send(QueryBlobs((header.hash, missing)))
            answer = await client.next_other()
            assert answer.have == () and answer.missing == (header.hash, missing)
            stored = await client.upload(header, payload)
            assert (stored.hash, stored.width, stored.height) == (header.hash, 16, 16)
            await client.send(QueryBlobs((header.hash, missing)))
            answer = await client.next_other()
            assert answer.have == (header.hash,) and answer.missing == (missing,)

    run(scenario())


def test_blobs_are_shared_and_deduplicated_across_connections():
    async def scenario():
        async with running_server() as server:
            header, payload = blob_frame(pattern(32, 32, seed=5), "png")
            async with TestClient.connect(server.url) as first:
                await first.upload(header, payload)
            async with TestClient.connect(server.url) as second:
                await second.send(QueryBlobs((header.hash,)))
                assert (await second.next_other()).have == (header.hash,)
                # the second client never sends the pixels, yet can use them
                await second.send(submit(job("d1", "img2img", size=32, image=header.hash, strength=0.4)))
                assert type((await second.finish("d1")).final).TYPE == "done"

    run(scenario())


def test_default_seed_reported_when_client_leaves_it_to_the_server():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("s1", steps=1)))
            trace = await client.finish("s1")
            assert trace.final.seeds == (DEFAULT_SEED,) and trace.results[0][0].seed == DEFAULT_SEED

    run(scenario())
