"""The transfer path: blobs decoded without copies, patch uploads (1.1, SPEC.md 8), raw result frames in one
buffer, and the plugin's client uploading (fragmented, patched, falling back) to the in-process server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from latentbrush.backend import server as server_module
from latentbrush.backend.images import apply_patch, decode_blob, encode_result, raw_frame, raw_hash
from latentbrush.backend.results import encode_result_frame
from latentbrush.plugin.core.client import Blob, Client
from latentbrush.protocol import (
    BlobHeader,
    Error,
    JobRequest,
    ProtocolError,
    QueryBlobs,
    Rect,
    ResultHeader,
    Size,
    blob_hash,
    encode_frame,
)
from latentbrush.protocol.server_connection import BlobStream
from server_harness import TOKEN, TestClient, blob_frame, pattern, running_server


def run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def wire(pixels: np.ndarray, fmt: str) -> bytes:
    return blob_frame(pixels, fmt)[1]


def header_for(pixels: np.ndarray, fmt: str, **fields) -> BlobHeader:
    height, width = pixels.shape[:2]
    return BlobHeader(hash=blob_hash(wire(pixels, fmt)), format=fmt, width=width, height=height, **fields)


# ----------------------------------------------------------------------------- decoding and hashing


@pytest.mark.parametrize("fmt", ["rgba8", "bgra8", "gray8"])
def test_a_writable_tight_payload_becomes_the_pixels_in_place(fmt):
    pixels = pattern(7, 5) if fmt != "gray8" else pattern(7, 5)[..., 0].copy()
    buffer = np.frombuffer(bytearray(wire(pixels, fmt)), dtype=np.uint8)
    decoded = decode_blob(header_for(pixels, fmt), memoryview(buffer))
    assert np.array_equal(decoded, pixels)
    assert np.shares_memory(decoded, buffer)  # no copy: the received buffer is the stored blob


@pytest.mark.parametrize("fmt", ["rgba8", "bgra8", "gray8"])
def test_read_only_or_padded_payloads_are_copied_and_still_exact(fmt):
    pixels = pattern(6, 4) if fmt != "gray8" else pattern(6, 4)[..., 1].copy()
    payload = wire(pixels, fmt)
    decoded = decode_blob(header_for(pixels, fmt), payload)
    assert np.array_equal(decoded, pixels) and decoded.flags.writeable
    bpp = 1 if fmt == "gray8" else 4
    row = 6 * bpp
    padded = b"".join(payload[y * row : (y + 1) * row] + b"\xee" * 3 for y in range(4))[:-3]
    header = BlobHeader(blob_hash(padded), fmt, 6, 4, stride=row + 3)  # type: ignore[arg-type]
    assert np.array_equal(decode_blob(header, bytearray(padded)), pixels)


@pytest.mark.parametrize("fmt", ["rgba8", "bgra8", "gray8"])
def test_raw_hash_is_the_address_of_the_wire_bytes(fmt):
    pixels = pattern(130, 70) if fmt != "gray8" else pattern(130, 70)[..., 2].copy()
    before = pixels.copy()
    assert raw_hash(pixels, fmt) == blob_hash(wire(pixels, fmt))
    assert np.array_equal(pixels, before)  # the bgra8 swap happens in a copy


# ----------------------------------------------------------------------------- patches


@pytest.mark.parametrize("fmt", ["rgba8", "bgra8", "gray8"])
def test_apply_patch_builds_the_new_image_and_leaves_the_base_alone(fmt):
    base = pattern(150, 90, seed=1) if fmt != "gray8" else pattern(150, 90, seed=1)[..., 0].copy()
    new = base.copy()
    box = Rect(17, 66, 40, 20)  # crosses a band boundary of the one-pass copy
    new[box.y : box.bottom, box.x : box.right] = 200
    saved = base.copy()
    patch = wire(new[box.y : box.bottom, box.x : box.right], fmt)
    header = header_for(new, fmt, base=blob_hash(wire(base, fmt)), rect=box)
    built = apply_patch(base, header, patch)
    assert isinstance(built, np.ndarray) and np.array_equal(built, new)
    assert np.array_equal(base, saved)


def test_apply_patch_refuses_a_wrong_hash_and_a_base_of_another_size_or_kind():
    base = pattern(20, 10)
    patch = wire(pattern(4, 4, seed=9), "rgba8")
    header = BlobHeader(blob_hash(b"not this image"), "rgba8", 20, 10, base=blob_hash(b"b"), rect=Rect(0, 0, 4, 4))
    err = apply_patch(base, header, patch)
    assert isinstance(err, ProtocolError) and (err.code.value, err.field) == ("hash_mismatch", "hash")
    wider = BlobHeader(header.hash, "rgba8", 21, 10, base=header.base, rect=Rect(0, 0, 4, 4))
    err = apply_patch(base, wider, patch)
    assert isinstance(err, ProtocolError) and (err.code.value, err.field) == ("size_mismatch", "base")
    gray = BlobHeader(header.hash, "gray8", 20, 10, base=header.base, rect=Rect(0, 0, 4, 4))
    err = apply_patch(base, gray, bytes(16))
    assert isinstance(err, ProtocolError) and (err.code.value, err.field) == ("size_mismatch", "base")


# ----------------------------------------------------------------------------- results


@pytest.mark.parametrize("fmt", ["rgba8", "bgra8", "gray8"])
def test_raw_result_frames_are_byte_identical_to_the_joined_encoding(fmt):
    image = pattern(150, 70, seed=3)
    job = JobRequest(id="j", op="txt2img", canvas=Size(150, 70), region=Rect(0, 0, 150, 70), prompt="p",
                     result_format=fmt)
    encoded = encode_result(image, fmt)
    header = ResultHeader(job_id="j", index=0, rect=Rect(0, 0, 150, 70), format=fmt, width=150, height=70,
                          seed=4, stride=encoded.stride)
    assert bytes(encode_result_frame(job, 0, image, 4)) == encode_frame(header, encoded.data)
    assert bytes(raw_frame(b"head", image, fmt)) == b"head" + encoded.data


# ----------------------------------------------------------------------------- over the socket


async def _patch_reply(client: TestClient, header: BlobHeader, payload: bytes):
    await client.ws.send(encode_frame(header, payload))
    return await client.next_other()


def test_patch_uploads_over_the_socket_store_the_whole_image_or_name_the_fault():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            base = pattern(64, 48)
            base_hash = await client.upload_rgba(base, "rgba8")
            new = base.copy()
            new[10:20, 30:40] = 7
            patch = wire(new[10:20, 30:40], "rgba8")
            header = header_for(new, "rgba8", base=base_hash, rect=Rect(30, 10, 10, 10))
            stored = await _patch_reply(client, header, patch)
            assert (stored.TYPE, stored.hash, stored.width, stored.height) == ("blob_stored", header.hash, 64, 48)
            assert np.array_equal(server._blobs.get(header.hash), new)

            unknown = header_for(new, "rgba8", base=blob_hash(b"never uploaded"), rect=Rect(30, 10, 10, 10))
            err = await _patch_reply(client, BlobHeader(**{**unknown.__dict__, "hash": blob_hash(b"x")}), patch)
            assert isinstance(err, Error) and (err.code, err.field) == ("unknown_blob", "base")

            wrong = BlobHeader(blob_hash(b"another image"), "rgba8", 64, 48, base=base_hash, rect=Rect(30, 10, 10, 10))
            err = await _patch_reply(client, wrong, patch)
            assert isinstance(err, Error) and (err.code, err.field) == ("hash_mismatch", "hash")
            assert wrong.hash in err.message

            await client.send(QueryBlobs((header.hash, wrong.hash)))
            answer = await client.next_other()
            assert answer.have == (header.hash,) and answer.missing == (wrong.hash,)

    run(scenario())


def test_fragmented_text_and_a_handler_failure_mid_blob_keep_the_connection(monkeypatch):
    def broken_feed(self, chunk):
        raise RuntimeError("bug in the blob path")

    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.ws.send(['{"type":"query_blobs",', '"hashes":[]}'])  # one text message, two fragments
            assert (await client.next_other()).TYPE == "blobs"
            with monkeypatch.context() as patched:
                patched.setattr(BlobStream, "feed", broken_feed)
                header, payload = blob_frame(pattern(8, 8), "rgba8")
                await client.ws.send([encode_frame(header, b""), payload[:100], payload[100:]])
                err = await client.next_other()
                assert isinstance(err, Error) and err.code == "internal"
            assert await client.upload_rgba(pattern(8, 8, seed=2), "rgba8")  # the socket still works

    run(scenario())


def test_a_large_unfragmented_blob_is_read_on_a_thread_and_stored(monkeypatch):
    monkeypatch.setattr(server_module, "THREAD_FEED_BYTES", 1024)
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            pixels = pattern(40, 30)
            digest = await client.upload_rgba(pixels, "bgra8")
            assert np.array_equal(server._blobs.get(digest), pixels)

    run(scenario())


# ----------------------------------------------------------------------------- the plugin's client


async def _client(url: str) -> Client:
    client = Client(url, token=TOKEN, client_name="transfer-test")
    await client.connect()
    return client


@pytest.mark.parametrize(("fmt", "threaded"), [("rgba8", False), ("bgra8", False), ("rgba8", True)])
def test_the_client_patches_a_small_change_and_uploads_a_large_one_whole(fmt, threaded, monkeypatch):
    from latentbrush.plugin.core import client as client_module

    if threaded:  # hashing and diffing as for a large canvas: on a thread, off the host's loop
        monkeypatch.setattr(client_module, "THREAD_BYTES", 0)

    async def scenario():
        async with running_server() as server:
            client = await _client(server.url)
            try:
                canvas = pattern(256, 192, seed=4)
                await client.upload([Blob(wire(canvas, fmt), fmt, 256, 192)])
                whole = client.stats.bytes_uploaded
                canvas[100:108, 50:60] = 9  # a stroke
                stroke = Blob(wire(canvas, fmt), fmt, 256, 192)
                await client.upload([stroke])
                assert client.stats.blobs_patched == 1
                assert client.stats.bytes_uploaded - whole < 1000  # the 10 x 8 box and a header
                assert np.array_equal(server._blobs.get(stroke.hash), canvas)
                canvas[:150] = 1  # most of it
                big = Blob(wire(canvas, fmt), fmt, 256, 192)
                await client.upload([big])
                assert client.stats.blobs_patched == 1 and np.array_equal(server._blobs.get(big.hash), canvas)
            finally:
                await client.close()

    run(scenario())


def test_the_client_uploads_whole_when_the_server_lost_the_base():
    async def scenario():
        async with running_server() as server:
            client = await _client(server.url)
            try:
                canvas = pattern(64, 64)
                first = Blob(wire(canvas, "rgba8"), "rgba8", 64, 64)
                await client.upload([first])
                whole = client.stats.bytes_uploaded
                server._blobs._items.pop(first.hash)  # evicted, say
                canvas[5:9, 5:9] = 3
                second = Blob(wire(canvas, "rgba8"), "rgba8", 64, 64)
                await client.upload([second])
                assert client.stats.blobs_patched == 0 and client.stats.blobs_uploaded == 2
                assert client.stats.bytes_uploaded > 2 * whole  # the refused patch, then the whole image
                assert np.array_equal(server._blobs.get(second.hash), canvas)
            finally:
                await client.close()

    run(scenario())


def test_the_client_sends_no_patch_to_a_1_0_connection(monkeypatch):
    from latentbrush.plugin.core import client as client_module

    monkeypatch.setattr(client_module, "PROTOCOL_MINOR", 0)  # the hello says 1.0: the connection is 1.0

    async def scenario():
        async with running_server() as server:
            client = await _client(server.url)
            try:
                assert client.minor == 0
                canvas = pattern(32, 32)
                await client.upload([Blob(wire(canvas, "rgba8"), "rgba8", 32, 32)])
                canvas[0, 0] = 0
                second = Blob(wire(canvas, "rgba8"), "rgba8", 32, 32)
                await client.upload([second])
                assert client.stats.blobs_patched == 0 and second.hash in server._blobs
            finally:
                await client.close()

    run(scenario())
