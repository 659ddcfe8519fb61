"""A client written only from protocol/SPEC.md (json, struct, hashlib and websockets; no latentbrush code)
runs an inpaint on the real backend with the tiny model: the contract is enough to be a client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct

import pytest
from helpers.live_server import live_server
from websockets.asyncio.client import connect

W, H = 96, 80  # context = canvas here; the mask is a 32 x 24 box inside it
MASK_BOX = (40, 30, 32, 24)
STEPS = 3


def blob_frame(fmt: str, width: int, height: int, payload: bytes) -> tuple[str, bytes]:
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()  # SPEC 8: sha256 of the payload as sent
    header = json.dumps({"type": "blob", "hash": digest, "format": fmt, "width": width, "height": height}).encode()
    return digest, struct.pack(">I", len(header)) + header + payload  # SPEC 3.2: u32 BE length | JSON | payload


def split_frame(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack_from(">I", data)
    return json.loads(data[4 : 4 + length]), data[4 + length :]


async def run_inpaint(url: str, token: str) -> dict:
    image = bytes((x * 2 % 256, y * 3 % 256, 128, 255)[c] for y in range(H) for x in range(W) for c in range(4))
    mx, my, mw, mh = MASK_BOX
    mask = bytes(255 if mx <= x < mx + mw and my <= y < my + mh else 0 for y in range(H) for x in range(W))
    seen: dict = {"previews": [], "events": []}
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "protocol": 1, "client": "spec-only-test", "token": token}))
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["protocol"] == 1, hello
        image_id, image_frame = blob_frame("rgba8", W, H, image)
        mask_id, mask_frame = blob_frame("gray8", W, H, mask)
        await ws.send(image_frame)
        await ws.send(mask_frame)
        await ws.send(json.dumps({"type": "submit", "job": {
            "id": "spec-1", "op": "inpaint", "canvas": {"width": W, "height": H},
            "region": {"x": 0, "y": 0, "width": W, "height": H},
            "image": image_id, "mask": mask_id, "prompt": "a cat", "steps": STEPS, "seed": 7,
            "model": "tiny-inpaint", "result_format": "rgba8", "preview_format": "jpeg",
        }}))
        while True:
            frame = await asyncio.wait_for(ws.recv(), timeout=120)
            if isinstance(frame, bytes):
                header, payload = split_frame(frame)
                if header["type"] == "preview":
                    seen["previews"].append(header["step"])
                elif header["type"] == "result":
                    seen["result"] = (header, payload)
                continue
            message = json.loads(frame)
            seen["events"].append(message["type"])
            if message["type"] in ("done", "error", "cancelled"):
                seen["final"] = message
                return {**seen, "image": image}


@pytest.mark.slow
def test_spec_only_client_runs_an_inpaint(tmp_path):
    with live_server(tmp_path, "--device", "cpu") as server:
        seen = asyncio.run(run_inpaint(server.url, server.token))
    assert seen["final"]["type"] == "done", seen["final"]
    assert seen["events"][:2] == ["blob_stored", "blob_stored"] and "queued" in seen["events"]
    assert seen["previews"] == list(range(1, STEPS + 1))
    header, payload = seen["result"]
    assert (header["width"], header["height"], header["format"]) == (W, H, "rgba8") and len(payload) == W * H * 4
    alpha = payload[3::4]
    mx, my, mw, mh = MASK_BOX
    outside = [i for i in range(W * H) if not (mx <= i % W < mx + mw and my <= i // W < my + mh)]
    assert all(alpha[i] == 0 for i in outside)  # SPEC 10.2: alpha exactly 0 outside the mask
    assert alpha[(my + mh // 2) * W + mx + mw // 2] == 255
