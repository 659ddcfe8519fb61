"""Every kind of bad input gets an ``error`` naming its field, and the server keeps serving."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from latentbrush.protocol import (
    BlobHeader,
    Cancel,
    ClientHello,
    Error,
    QueryQueue,
    Rect,
    Size,
    UpscaleParams,
    blob_hash,
    encode_frame,
    encode_message,
    to_dict,
)
from latentbrush.protocol.transport import CLOSE_NO_HELLO
from PIL import Image
from server_harness import TOKEN, TestClient, blob_frame, circle_mask, job, pattern, running_server, submit
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

Case = Callable[[TestClient], Awaitable[None]]


def run(coro) -> None:
    asyncio.run(coro)


async def next_error(client: TestClient):
    while True:
        item = await client.recv()
        if not isinstance(item, tuple) and type(item).TYPE == "error":
            return item


def submit_json(**job_fields) -> str:
    """A submit message with raw JSON job fields (for values the typed classes cannot even hold)."""
    base = to_dict(job("raw"))
    base.update(job_fields)
    return json.dumps({"type": "submit", "job": base})


async def upload(client: TestClient, pixels: np.ndarray, fmt: str = "png") -> str:
    return await client.upload_rgba(pixels, fmt)


async def with_blobs(client: TestClient, image_size: tuple[int, int], mask_size: tuple[int, int], **fields) -> None:
    image = await upload(client, pattern(*image_size))
    mask = await upload(client, circle_mask(*mask_size), "gray8")
    await client.send(submit(job("blobjob", "inpaint", image=image, mask=mask, **fields)))


async def unknown_upscaler(client: TestClient) -> None:
    image = await upload(client, pattern(64, 64))
    await client.send(submit(job("u", "upscale", image=image, upscale=UpscaleParams(upscaler="nope"))))


def raw_frame(header: dict, payload: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack(">I", len(head)) + head + payload


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pattern(width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def blob_dict(payload: bytes, fmt: str, width: int, height: int, **extra) -> dict:
    return {"type": "blob", "hash": blob_hash(payload), "format": fmt, "width": width, "height": height, **extra}


CASES: dict[str, tuple[Case, str, str | None]] = {
    "bad JSON": (lambda c: c.ws.send("{not json"), "bad_json", None),
    "NaN in JSON": (lambda c: c.ws.send('{"type": "cancel", "job_id": NaN}'), "bad_json", None),
    "unknown message type": (lambda c: c.ws.send('{"type": "dance"}'), "unknown_type", "type"),
    "message without type": (lambda c: c.ws.send('{"job_id": "x"}'), "missing_field", "type"),
    "second hello": (lambda c: c.send(ClientHello(protocol=1, client="again", token=TOKEN)), "bad_field", "type"),
    "unknown field": (lambda c: c.ws.send(submit_json(colour="red")), "unknown_field", "job.colour"),
    "wrong field type": (lambda c: c.ws.send(submit_json(steps="many")), "bad_field", "job.steps"),
    "bad job id": (lambda c: c.ws.send(submit_json(id="has space")), "bad_field", "job.id"),
    "prompt too long": (lambda c: c.ws.send(submit_json(prompt="x" * 9000)), "bad_field", "job.prompt"),
    "zero-size region": (
        lambda c: c.ws.send(submit_json(region={"x": 0, "y": 0, "width": 0, "height": 8})),
        "bad_field",
        "job.region.width",
    ),
    "oversize region": (
        lambda c: c.send(submit(job("big", canvas=Size(4096, 4096), region=Rect(0, 0, 4096, 2048)))),
        "too_large",
        "job.context",
    ),
    "region outside canvas": (
        lambda c: c.send(submit(job("out", region=Rect(40, 40, 32, 32)))),
        "out_of_bounds",
        "job.region",
    ),
    "too many steps": (lambda c: c.send(submit(job("steps", steps=200))), "too_large", "job.steps"),
    "batch too large": (lambda c: c.send(submit(job("batch", batch=16))), "too_large", "job.batch"),
    "txt2img with strength": (lambda c: c.send(submit(job("str", strength=0.5))), "bad_field", "job.strength"),
    "unknown model": (lambda c: c.send(submit(job("m", model="no-such-model"))), "unknown_model", "job.model"),
    "bad sampler": (lambda c: c.send(submit(job("s", sampler="Warp drive"))), "unknown_sampler", "job.sampler"),
    "unknown upscaler": (unknown_upscaler, "unknown_upscaler", "job.upscale.upscaler"),
    "unpreviewable format": (
        lambda c: c.send(submit(job("pf", preview_format="gif"))),
        "not_supported",
        "job.preview_format",
    ),
    "inpaint without mask": (
        lambda c: c.send(submit(job("nm", "inpaint", image=blob_hash(b"x")))),
        "missing_field",
        "job.mask",
    ),
    "unknown blob": (
        lambda c: c.send(submit(job("ub", "img2img", image=blob_hash(b"never sent"), strength=0.5))),
        "unknown_blob",
        "job.image",
    ),
    "mask size mismatch": (lambda c: with_blobs(c, (64, 64), (32, 64)), "size_mismatch", "job.mask"),
    "image size mismatch": (lambda c: with_blobs(c, (64, 32), (64, 64)), "size_mismatch", "job.image"),
    "cancel of an unknown job": (lambda c: c.send(Cancel("ghost")), "unknown_job", "job_id"),
    "corrupt PNG": (
        lambda c: c.ws.send(raw_frame(blob_dict(png_bytes(8, 8)[:60], "png", 8, 8), png_bytes(8, 8)[:60])),
        "bad_image",
        "payload",
    ),
    "PNG announced as JPEG": (
        lambda c: c.ws.send(raw_frame(blob_dict(png_bytes(8, 8), "jpeg", 8, 8), png_bytes(8, 8))),
        "bad_image",
        "payload",
    ),
    "PNG of another size": (
        lambda c: c.ws.send(raw_frame(blob_dict(png_bytes(8, 8), "png", 9, 8), png_bytes(8, 8))),
        "bad_image",
        "payload",
    ),
    "raw payload of the wrong length": (
        lambda c: c.ws.send(raw_frame(blob_dict(b"\0" * 255, "rgba8", 8, 8), b"\0" * 255)),
        "bad_image",
        "payload",
    ),
    "stride shorter than a row": (
        lambda c: c.ws.send(raw_frame(blob_dict(b"\0" * 64, "rgba8", 8, 2, stride=16), b"\0" * 64)),
        "bad_field",
        "stride",
    ),
    "hash mismatch": (
        lambda c: c.ws.send(
            raw_frame({**blob_dict(b"\0" * 256, "rgba8", 8, 8), "hash": blob_hash(b"other")}, b"\0" * 256)
        ),
        "hash_mismatch",
        "hash",
    ),
    "frame shorter than its header length": (lambda c: c.ws.send(b"\0\0"), "bad_frame", None),
    "header length past the end": (lambda c: c.ws.send(struct.pack(">I", 500) + b"{}"), "bad_frame", None),
    "frame too large": (  # over max_frame_bytes (8 MiB here) but within the slack: answered, not cut
        lambda c: c.ws.send(raw_frame(blob_dict(b"\0" * 1024, "gray8", 32, 32), b"\0" * 1024) + b"\0" * (8 << 20)),
        "too_large",
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_named_and_the_connection_survives(name):
    send_bad, code, field = CASES[name]

    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await send_bad(client)
            error = await next_error(client)
            assert (error.code, error.field) == (code, field), error.message
            assert error.message
            # the same connection still serves a real job
            await client.send(submit(job("after", steps=1)))
            assert type((await client.finish("after")).final).TYPE == "done"

    run(scenario())


def test_job_errors_name_the_job():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("named", model="no-such-model")))
            error = await next_error(client)
            assert error.job_id == "named"
            await client.ws.send(submit_json(id="named2", steps=-1))
            error = await next_error(client)
            assert (error.code, error.field, error.job_id) == ("bad_field", "job.steps", "named2")

    run(scenario())


def test_blob_errors_name_the_blob():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            payload = png_bytes(8, 8)[:60]
            header = blob_dict(payload, "png", 8, 8)
            await client.ws.send(raw_frame(header, payload))
            error = await next_error(client)
            assert header["hash"] in error.message

    run(scenario())


# ----------------------------------------------------------------------------- before and at the handshake


def test_messages_before_hello_get_not_ready():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url, hello=False) as client:
            await client.send(QueryQueue())
            assert ((await client.recv()).code, "ok") == ("not_ready", "ok")
            header, payload = blob_frame(pattern(4, 4), "rgba8")
            await client.ws.send(encode_frame(header, payload))
            assert (await client.recv()).code == "not_ready"
            await client.ws.send("][")
            assert (await client.recv()).code == "not_ready"
            await client.ws.send('{"type": "submit", "job": {}}')
            assert (await client.recv()).code == "not_ready"
            await client.ws.send('{"type": "hello", "protocol": 1}')  # a broken hello hears what is wrong
            assert ((error := await client.recv()).code, error.field) == ("missing_field", "client")
            hello = await client.say_hello()
            assert type(hello).TYPE == "hello"

    run(scenario())


@pytest.mark.parametrize(
    ("hello", "code", "close_code"),
    [
        ({"protocol": 1, "client": "t", "token": "wrong"}, "unauthorized", 1008),
        ({"protocol": 1, "client": "t"}, "unauthorized", 1008),
        ({"protocol": 2, "client": "t", "token": TOKEN}, "version_mismatch", 1002),
        ({"protocol": 3, "client": "t", "token": TOKEN, "future_field": {"a": 1}}, "version_mismatch", 1002),
    ],
)
def test_bad_hello_gets_error_then_close(hello, code, close_code):
    async def scenario():
        async with running_server() as server:
            async with TestClient.connect(server.url, hello=False) as client:
                await client.ws.send(json.dumps({"type": "hello", **hello}))
                error = await client.recv()
                assert error.code == code
                with pytest.raises(ConnectionClosed) as closed:
                    await client.recv()
                assert closed.value.rcvd.code == close_code
            async with TestClient.connect(server.url) as good:  # the server lives on
                assert type(good.hello).TYPE == "hello"

    run(scenario())


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Mode": "websocket"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Authorization": "Bearer wrong"}, 401),
        ([("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer other")], 401),  # ambiguous, not a 500
    ],
)
def test_browser_handshakes_refused(headers, status):
    async def scenario():
        async with running_server() as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == status
            expected = "forbidden_origin:" if status == 403 else "unauthorized:"
            assert refused.value.response.body.decode().startswith(expected)
            async with TestClient.connect(server.url) as good:
                assert type(good.hello).TYPE == "hello"

    run(scenario())


def connect_as(server, host: str, **kwargs):
    """Connect to the server's socket while naming ``host`` in the URL (so in the Host header)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    return connect(f"ws://{host}:{server.port}", sock=sock, compression=None, **kwargs)


@pytest.mark.parametrize("host", ["evil.example", "10.1.2.3", "localhost.evil.example", "127.0.0.1.nip.io"])
def test_foreign_host_header_refused(host):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 still sends its own Host."""

    async def scenario():
        async with running_server() as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect_as(server, host):
                    pass
            assert refused.value.response.status_code == 403

    run(scenario())


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "LOCALHOST"])  # more in test_server_host_header.py
def test_loopback_host_headers_allowed(host):
    async def scenario():
        async with running_server() as server, connect_as(server, host) as ws:
            client = TestClient(ws)
            assert type(await client.say_hello()).TYPE == "hello"

    run(scenario())


@pytest.mark.parametrize("hello_token", ["", "a-wrong-token"])
def test_bearer_token_replaces_the_hello_token(hello_token):
    """SPEC.md 4: the header or the hello token, either is enough (a wrong hello token was refused)."""
    async def scenario():
        async with running_server() as server:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with TestClient.connect(server.url, token=hello_token, additional_headers=headers) as client:
                assert type(client.hello).TYPE == "hello"

    run(scenario())


@pytest.mark.parametrize("version", [2**31, 2**40, -1])
def test_a_protocol_number_out_of_range_is_a_bad_field_not_another_version(version):
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url, hello=False) as client:
            await client.ws.send(json.dumps({"type": "hello", "protocol": version, "client": "t", "token": TOKEN}))
            error = await client.recv()
            assert (error.code, error.field) == ("bad_field", "protocol")
            await client.say_hello()  # the connection stays open for a corrected hello
            assert type(client.hello).TYPE == "hello"

    run(scenario())


def test_silent_connection_closed_after_hello_timeout():
    """Close code 1008 means a refused token; a connection that never said hello hears why and gets 4001."""
    async def scenario():
        async with running_server(hello_timeout_s=0.2) as server, TestClient.connect(server.url, hello=False) as c:
            said = await c.recv()
            assert isinstance(said, Error) and (said.code, said.field) == ("not_ready", "type")
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == CLOSE_NO_HELLO

    run(scenario())


def test_frame_over_the_hard_limit_closes_only_that_connection():
    async def scenario():
        async with running_server() as server:
            ws = await connect(server.url, compression=None)
            client = TestClient(ws)
            await client.say_hello()
            header = BlobHeader(blob_hash(b""), "gray8", 1, 1)
            await ws.send(encode_frame(header, b"\0" * (12 << 20)))  # over 8 MiB limit + 1 MiB slack
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd.code == 1009  # message too big
            async with TestClient.connect(server.url) as good:
                await good.send(submit(job("still", steps=1)))
                assert type((await good.finish("still")).final).TYPE == "done"

    run(scenario())


def test_malformed_hello_fields_named():
    async def scenario():
        async with running_server() as server, TestClient.connect(server.url, hello=False) as client:
            hello = encode_message(ClientHello(protocol=1, client="t", token=TOKEN))
            await client.ws.send(hello[:-1] + ',"client_id":"a b"}')
            error = await client.recv()
            assert (error.code, error.field) == ("bad_field", "client_id")

    run(scenario())


def test_result_encoding_failure_ends_the_job_with_an_error(monkeypatch):
    """Any failure while encoding results (not only a bad engine output) must not leave the job hanging."""
    from latentbrush.backend import service

    def failing_encoder(job_request, output, skip):
        raise OSError("encoder failed")

    monkeypatch.setattr(service, "encode_results", failing_encoder)

    async def scenario():
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.send(submit(job("enc", steps=1)))
            trace = await client.finish("enc")
            assert type(trace.final).TYPE == "error" and trace.results == []
            assert trace.final.code == "internal" and "OSError: encoder failed" in trace.final.message
            monkeypatch.undo()
            await client.send(submit(job("next", steps=1)))  # the server serves on
            assert type((await client.finish("next")).final).TYPE == "done"

    run(scenario())
