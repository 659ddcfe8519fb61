"""End to end with the real engine and its built-in tiny model, through a ``latentbrush-server`` process.

One server process serves the whole module (importing torch and diffusers is the slow part).
Jobs run at 64-128 px so each takes about a second on two busy cores.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import numpy as np
import pytest
from helpers.live_server import LiveServer, live_server
from latentbrush.protocol import Cancel, JobInput, Rect, Size, UpscaleParams, upscale_rect
from PIL import Image
from server_harness import TestClient, circle_mask, job, pattern, submit

pytest.importorskip("latentbrush.backend.engine", reason="the diffusion engine is not installed")

CANVAS = 160
CONTEXT = Rect(16, 16, 128, 128)
REGION = Rect(32, 40, 96, 80)  # inside CONTEXT
SMALL = Size(64, 64)  # processing size: the tiny UNet is cheap there
BLANK = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("engine-server")
    env = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    with live_server(tmp, "--device", "cpu", "--log-level", "INFO", env=env) as live:
        yield live


def decode(header, payload: bytes) -> np.ndarray:
    if header.format == "rgba8":
        return np.frombuffer(payload, np.uint8).reshape(header.height, header.width, 4)
    with Image.open(io.BytesIO(payload)) as im:
        return np.asarray(im.convert("RGBA")).copy()


async def run_jobs(server: LiveServer, requests, uploads=()) -> dict:
    """Upload ``uploads`` ((name, pixels, format)), run ``requests(blobs)`` and return their traces."""
    async with TestClient.connect(server.url, token=server.token) as client:
        blobs = {name: await client.upload_rgba(pixels, fmt) for name, pixels, fmt in uploads}
        jobs = requests(blobs)
        for request in jobs:
            await client.send(submit(request))
        return {request.id: await client.finish(request.id) for request in jobs}


def image_and_mask() -> tuple:
    mask = circle_mask(CONTEXT.width, CONTEXT.height)
    return (("image", pattern(CONTEXT.width, CONTEXT.height, seed=1), "png"), ("mask", mask, "gray8")), mask


def upscale_job(image: str):
    return job(
        "e2e-upscale",
        "upscale",
        size=CANVAS,
        context=CONTEXT,
        region=REGION,
        image=image,
        upscale=UpscaleParams(upscaler="lanczos", scale=2.0),
    )


def test_every_operation_end_to_end(server):
    uploads, _ = image_and_mask()
    common = {"size": CANVAS, "context": CONTEXT, "region": REGION, "steps": 3, "seed": 9, "resolution": SMALL}

    def requests(blobs):
        return [
            job("e2e-txt2img", "txt2img", **common),
            job("e2e-img2img", "img2img", image=blobs["image"], strength=0.7, **common),
            job("e2e-inpaint", "inpaint", image=blobs["image"], mask=blobs["mask"], model="tiny-inpaint", **common),
            job("e2e-inpaint4", "inpaint", image=blobs["image"], mask=blobs["mask"], model="tiny", **common),
            upscale_job(blobs["image"]),
        ]

    traces = asyncio.run(run_jobs(server, requests, uploads))
    for job_id, trace in traces.items():
        assert trace.kinds[-1] == "done", (job_id, trace.final)
        ((header, payload),) = trace.results
        expected = upscale_rect(upscale_job(BLANK)) if job_id == "e2e-upscale" else REGION
        assert header.rect == expected and (header.width, header.height) == (expected.width, expected.height)
        assert decode(header, payload).shape == (expected.height, expected.width, 4)
        assert trace.final.results == 1 and trace.final.info
    assert traces["e2e-txt2img"].final.seeds == (9,)


def test_same_seed_same_pixels_and_alpha_outside_mask_is_zero(server):
    uploads, mask = image_and_mask()

    def requests(blobs):
        base = {
            "size": CANVAS,
            "context": CONTEXT,
            "region": REGION,
            "steps": 3,
            "resolution": SMALL,
            "image": blobs["image"],
            "mask": blobs["mask"],
            "model": "tiny-inpaint",
            "result_format": "rgba8",
        }
        return [
            job("seed-a", "inpaint", seed=42, **base),
            job("seed-b", "inpaint", seed=42, **base),
            job("seed-c", "inpaint", seed=43, **base),
        ]

    traces = asyncio.run(run_jobs(server, requests, uploads))
    a, b, c = (decode(*traces[name].results[0]) for name in ("seed-a", "seed-b", "seed-c"))
    assert np.array_equal(a, b)  # same seed, same server: bit for bit
    assert not np.array_equal(a[..., :3], c[..., :3])
    region_mask = mask[REGION.y - CONTEXT.y :, REGION.x - CONTEXT.x :][: REGION.height, : REGION.width]
    assert (a[..., 3][region_mask == 0] == 0).all()  # outside the mask the canvas stays untouched
    assert (a[..., 3][region_mask == 255] == 255).all()


def test_preview_every_step(server):
    def requests(_):
        return [
            job(
                "prev",
                "txt2img",
                size=CANVAS,
                region=REGION,
                steps=5,
                seed=1,
                resolution=Size(128, 128),
                preview_format="jpeg",
                preview_max_side=64,
            )
        ]

    trace = asyncio.run(run_jobs(server, requests))["prev"]
    assert trace.kinds[-1] == "done"
    assert [h.step for h, _ in trace.previews] == [1, 2, 3, 4, 5]
    for header, payload in trace.previews:
        assert REGION.contains(header.rect) and max(header.width, header.height) <= 64
        with Image.open(io.BytesIO(payload)) as im:
            assert im.format == "JPEG" and im.size == (header.width, header.height)


def test_cancel_running_real_job(server):
    async def scenario():
        async with TestClient.connect(server.url, token=server.token) as client:
            await client.send(submit(job("long", size=CANVAS, region=REGION, steps=150, resolution=Size(128, 128))))
            await client.wait_for("long", "progress")
            await client.send(Cancel("long"))
            trace = await client.finish("long")
            assert trace.kinds[-1] == "cancelled" and trace.results == []
            steps = [m.step for m in trace.messages if type(m).TYPE == "progress"]
            assert steps[-1] < 150
            await client.send(submit(job("after-cancel", size=64, steps=2, resolution=SMALL)))
            assert (await client.finish("after-cancel")).kinds[-1] == "done"

    asyncio.run(scenario())


def test_cancel_mid_batch_keeps_the_items_already_done(server):
    """The real engine sends each batch item's result when it is done (SPEC.md 9.7), not at the batch's end."""
    async def scenario():
        async with TestClient.connect(server.url, token=server.token) as client:
            request = job("batch", size=64, steps=4, batch=3, seed=11, resolution=SMALL, preview_format="none")
            await client.send(submit(request))
            await client.wait_until(lambda: bool(client.traces.get("batch") and client.traces["batch"].results))
            steps_so_far = [m.step for m in client.seen("batch", "progress")]
            assert steps_so_far[-1] < 12  # item 0 came while items 1 and 2 were still to run
            await client.send(Cancel("batch"))
            trace = await client.finish("batch")
            indices = [h.index for h, _ in trace.results]
            assert indices[:1] == [0] and indices == sorted(set(indices))
            if trace.kinds[-1] == "cancelled":  # the cancel may come after the last item on a fast box
                assert len(indices) < 3
            else:
                assert trace.kinds[-1] == "done" and indices == [0, 1, 2]
            assert [h.seed for h, _ in trace.results] == [11 + i for i in indices]

    asyncio.run(scenario())


def test_a_two_region_job_through_the_socket(server):
    """Issue 15: ``region`` inputs (protocol 1.1) with their prompts steer their halves; the job info lists them."""
    left = np.zeros((CONTEXT.height, CONTEXT.width), np.uint8)
    left[:, : CONTEXT.width // 2] = 255
    uploads = (("left", left, "gray8"), ("right", 255 - left, "gray8"))
    common = {"size": CANVAS, "context": CONTEXT, "region": REGION, "steps": 3, "seed": 5, "resolution": SMALL,
              "cfg": 5.0, "result_format": "rgba8", "prompt": "a harbour at dusk"}

    def requests(blobs):
        regions = (JobInput("region", blobs["left"], prompt="a red boat"),
                   JobInput("region", blobs["right"], prompt="a lighthouse", weight=0.8))
        return [job("regions", "txt2img", inputs=regions, **common), job("plain", "txt2img", **common)]

    traces = asyncio.run(run_jobs(server, requests, uploads))
    regions, plain = traces["regions"], traces["plain"]
    assert regions.kinds[-1] == "done" and plain.kinds[-1] == "done", (regions.final, plain.final)
    assert [r["prompt"] for r in regions.final.info["regions"]] == ["a red boat", "a lighthouse"]
    assert not np.array_equal(decode(*regions.results[0]), decode(*plain.results[0]))
