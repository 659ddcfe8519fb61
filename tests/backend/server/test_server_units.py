"""The server's pure parts: pixels in and out, the blob cache, the fair queue, token and header checks."""

from __future__ import annotations

import io
import os
import stat

import numpy as np
import pytest
from latentbrush.backend.auth import (
    allowed_host,
    authorization_refusal,
    bearer_token,
    load_or_create_token,
    parse_host_header,
    refusal_reason,
    token_matches,
)
from latentbrush.backend.blobs import BlobCache
from latentbrush.backend.config import ServerConfig, check_bind, is_loopback_host
from latentbrush.backend.images import as_mask, as_rgba, decode_blob, encode_preview, encode_result, fit_within
from latentbrush.backend.jobs import FairQueue, JobRecord
from latentbrush.protocol import BlobHeader, ProtocolError, blob_hash
from PIL import Image
from server_harness import job, pattern


def header(fmt: str, width: int, height: int, payload: bytes, stride: int | None = None) -> BlobHeader:
    return BlobHeader(blob_hash(payload), fmt, width, height, stride)


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt", ["rgba8", "bgra8"])
def test_raw_colour_with_row_padding(fmt):
    pixels = pattern(5, 3, seed=2)
    source = pixels[..., [2, 1, 0, 3]] if fmt == "bgra8" else pixels
    stride = 5 * 4 + 12  # padded rows, the last one without padding
    padded = np.zeros((3, stride), np.uint8)
    padded[:, : 5 * 4] = source.reshape(3, 20)
    payload = padded.tobytes()[: stride * 2 + 20]
    decoded = decode_blob(header(fmt, 5, 3, payload, stride), payload)
    assert np.array_equal(decoded, pixels)


def test_raw_gray_with_stride():
    payload = bytes(range(7)) + bytes(range(100, 104))  # 2 rows of 4, stride 7
    decoded = decode_blob(header("gray8", 4, 2, payload, 7), payload)
    assert decoded.tolist() == [[0, 1, 2, 3], [100, 101, 102, 103]]


@pytest.mark.parametrize(
    ("mode", "fmt", "channels"),
    [
        ("L", "png", 1),
        ("RGB", "png", 4),
        ("RGBA", "png", 4),
        ("P", "png", 4),
        ("RGB", "jpeg", 4),
        ("RGBA", "webp", 4),
    ],
)
def test_encoded_formats(mode, fmt, channels):
    picture = Image.fromarray(pattern(9, 7)).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, fmt.upper(), **({"lossless": True} if fmt == "webp" else {}))
    payload = buffer.getvalue()
    decoded = decode_blob(header(fmt, 9, 7, payload), payload)
    assert decoded.shape == ((7, 9) if channels == 1 else (7, 9, 4)) and decoded.dtype == np.uint8
    if fmt == "png" and mode in ("RGB", "RGBA"):
        assert np.array_equal(decoded[..., :3], np.asarray(picture.convert("RGB")))


def test_encoded_blob_refused_before_decoding_when_size_lies():
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 4000)).save(buffer, "PNG")
    payload = buffer.getvalue()
    error = decode_blob(header("png", 40, 40, payload), payload)
    assert isinstance(error, ProtocolError) and error.field == "payload" and "4000x4000" in error.message


def test_mask_of_a_colour_blob_is_its_luminance():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 255, 255, 0)  # alpha means nothing in 1.0
    rgba[1, 1] = (255, 0, 0, 255)
    assert as_mask(rgba).tolist() == [[255, 0], [0, 76]]  # ITU-R 601-2: 0.299 * 255
    gray = np.array([[0, 128]], np.uint8)
    assert as_mask(gray) is gray
    assert as_rgba(gray).tolist() == [[[0, 0, 0, 255], [128, 128, 128, 255]]]


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [
        ((100, 50), 512, (100, 50)),
        ((1024, 512), 512, (512, 256)),
        ((300, 1000), 100, (30, 100)),
        ((5000, 1), 64, (64, 1)),
    ],
)
def test_fit_within(size, limit, expected):
    assert fit_within(*size, limit) == expected


@pytest.mark.parametrize("fmt", ["png", "rgba8", "bgra8", "webp"])
def test_results_keep_every_bit(fmt):
    rgba = pattern(13, 11, seed=4)
    rgba[..., 3] = np.arange(13 * 11).reshape(11, 13) % 256
    encoded = encode_result(rgba, fmt)
    if fmt in ("rgba8", "bgra8"):
        back = np.frombuffer(encoded.data, np.uint8).reshape(11, 13, 4)
        back = back[..., [2, 1, 0, 3]] if fmt == "bgra8" else back
        assert encoded.stride == 13 * 4
    else:
        back = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("RGBA"))
        assert encoded.stride is None
    assert np.array_equal(back, rgba)


def test_preview_scaled_and_encoded():
    rgb = np.zeros((300, 600, 3), np.uint8)
    rgb[..., 0] = 200
    jpeg = encode_preview(rgb, "jpeg", 64)
    assert (jpeg.width, jpeg.height) == (64, 32)
    with Image.open(io.BytesIO(jpeg.data)) as im:
        assert im.format == "JPEG" and im.size == (64, 32) and abs(im.getpixel((5, 5))[0] - 200) < 8
    raw = encode_preview(rgb, "bgra8", 1000)
    assert (raw.width, raw.height) == (600, 300) and raw.data[:4] == bytes((0, 0, 200, 255))


# ----------------------------------------------------------------------------- blob cache


def test_blob_cache_drops_least_recently_used_within_budget():
    cache = BlobCache(budget_bytes=3000)
    blobs = {name: np.zeros(1000, np.uint8) for name in "abcd"}
    for name in "abc":
        cache.put(name, blobs[name])
    assert cache.get("a") is blobs["a"]  # a is now the most recently used
    cache.put("d", blobs["d"])
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.nbytes == 3000
    assert cache.partition(("d", "b", "a")) == (("d", "a"), ("b",))
    cache.pin("a")  # a queued job needs it
    huge = np.zeros(10_000, np.uint8)
    cache.put("huge", huge)  # over budget, yet kept: the client sent it to use it
    assert {k for k in ("a", "c", "d", "huge") if k in cache} == {"a", "huge"}
    cache.unpin("a")
    assert "a" not in cache and cache.get("huge") is huge


# ----------------------------------------------------------------------------- fair queue


def record(client: str, job_id: str) -> JobRecord:
    return JobRecord(job(job_id), client)


def test_fair_queue_serves_least_recently_served_client():
    queue = FairQueue()
    for name in ("a1", "a2", "a3"):
        queue.push(record("A", name))
    assert queue.pop_next().job_id == "a1"
    queue.push(record("B", "b1"))
    queue.push(record("C", "c1"))
    queue.push(record("B", "b2"))
    assert [r.job_id for r in queue.order()] == ["b1", "c1", "a2", "b2", "a3"]
    assert queue.positions() == {"b1": 0, "c1": 1, "a2": 2, "b2": 3, "a3": 4}
    assert queue.remove("C", "c1").job_id == "c1" and queue.remove("C", "c1") is None
    popped = [queue.pop_next().job_id for _ in range(len(queue))]
    assert popped == ["b1", "a2", "b2", "a3"] and queue.pop_next() is None


# ----------------------------------------------------------------------------- token, headers, bind


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_token_file_created_private_and_reused(tmp_path):
    path = tmp_path / "cfg" / "token"
    token = load_or_create_token(path)
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == token
    path.chmod(0o644)
    assert load_or_create_token(path) == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("\n")
    assert load_or_create_token(path) not in ("", token)  # an empty file gets a fresh token
    stale = path.with_name(f".token.{os.getpid()}.tmp")  # left by a crash between write and rename
    stale.write_text("old")
    stale.chmod(0o644)
    path.unlink()
    assert load_or_create_token(path) and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_comparison_and_bearer_header():
    assert token_matches("abc", "abc") and not token_matches("abc", "abd") and not token_matches("abc", "")
    assert token_matches("ünï", "ünï")
    assert bearer_token("Bearer s3cret") == "s3cret" and bearer_token("bearer  s3cret ") == "s3cret"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None and bearer_token(None) is None
    assert authorization_refusal(None, "abc") is None and authorization_refusal("Bearer abc", "abc") is None
    assert authorization_refusal("Bearer ", "abc") == "empty bearer token"
    assert authorization_refusal("Bearer abd", "abc") == "wrong token"
    assert authorization_refusal("Basic abc", "abc") is None  # not our scheme: the hello decides


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("localhost:7860", ("localhost", 7860)),
        ("LocalHost:7860", ("localhost", 7860)),
        ("[::1]:7860", ("::1", 7860)),
        ("[::1]", ("::1", 80)),
        ("127.0.0.1", ("127.0.0.1", 80)),
        ("127.0.0.1:", ("127.0.0.1", 80)),
        ("::1", None),  # IPv6 literals need brackets
        ("[::1", None),
        ("[::1]x", None),
        ("localhost:78a", None),
        ("localhost:99999", None),
        (":7860", None),
    ],
)
def test_parse_host_header(value, parsed):
    assert parse_host_header(value) == parsed


def test_host_rules():
    assert allowed_host("localhost:7860", "127.0.0.1", 7860, False)
    assert allowed_host("127.0.0.1:7860", "127.0.0.1", 7860, False)
    assert not allowed_host("localhost:1", "127.0.0.1", 7860, False)  # the port must be the server's
    assert not allowed_host("localhost", "127.0.0.1", 7860, False)  # no port is port 80
    assert allowed_host("localhost", "127.0.0.1", 80, False)
    assert not allowed_host("[::1]:7860", "127.0.0.1", 7860, False)  # not an address it listens on
    assert not allowed_host("127.0.0.2:7860", "127.0.0.1", 7860, False)
    assert not allowed_host("localhost.:7860", "127.0.0.1", 7860, False)
    assert allowed_host("[::1]:7860", "localhost", 7860, False)  # bound to the name: both loopback addresses
    assert allowed_host("127.0.0.1:7860", "localhost", 7860, False)
    assert allowed_host("127.0.0.2:7860", "0.0.0.0", 7860, False)  # bound to all: any loopback address
    assert not allowed_host("evil.example:7860", "0.0.0.0", 7860, False)
    assert not allowed_host("evil.example", "127.0.0.1", 80, False) and not allowed_host(None, "127.0.0.1", 80, False)
    assert not allowed_host("192.168.1.5:7860", "192.168.1.5", 7860, False)
    assert allowed_host("192.168.1.5:7860", "192.168.1.5", 7860, True)  # remote allowed: the bound address
    assert not allowed_host("192.168.1.5:7861", "192.168.1.5", 7860, True)
    assert not allowed_host("localhost:7860", "192.168.1.5", 7860, True)  # loopback does not reach that bind
    assert not allowed_host("evil.example", "192.168.1.5", 7860, True)
    assert allowed_host("my-gpu-box", "0.0.0.0", 7860, True)  # wildcard: the token guards
    assert refusal_reason([("Origin", "x")], "localhost:7860", "127.0.0.1", 7860, False)
    assert refusal_reason([("sec-fetch-dest", "empty")], "localhost:7860", "127.0.0.1", 7860, False)
    assert refusal_reason([("User-Agent", "krita")], "localhost:7860", "127.0.0.1", 7860, False) is None


def test_bind_rules():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("example.com")
    assert check_bind(ServerConfig(host="127.0.0.1"), True) is None
    assert "--allow-remote" in check_bind(ServerConfig(host="0.0.0.0"), True)
    assert check_bind(ServerConfig(host="0.0.0.0", allow_remote=True), True) is None
    assert "token" in check_bind(ServerConfig(host="0.0.0.0", allow_remote=True), False)
