"""Blob frames in pieces: ``ClientFrameReader`` answers exactly as ``decode_client_frame``; ``frame_parts``
is ``encode_frame`` uncopied; 1.1 patch headers (SPEC.md 8) are checked by both."""

from __future__ import annotations

import random

import pytest
from latentbrush.protocol import BlobHeader, ErrorCode, ProtocolError, Rect, blob_hash, encode_frame
from latentbrush.protocol.codec import ClientFrameReader, decode_client_frame, frame_parts
from latentbrush.protocol.server_connection import BlobReceived, BlobStream, Send, ServerConnection
from protocol_vector_runner import INVALID, VALID, materialize

BIG = 1 << 24
PIXELS_4X3 = bytes(range(48))


def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        step = rng.choice([1, 2, 3, 4, 5, 7, 64, len(data)])
        out.append(data[i : i + step])
        i += step
    return out


def _read(data: bytes, pieces: list[bytes], max_bytes: int = BIG, max_pixels: int | None = BIG, **kw):
    reader = ClientFrameReader(max_bytes, max_pixels, **kw)
    for piece in pieces:
        reader.feed(piece)
    return reader.result()


def _same(got, want) -> None:
    if isinstance(want, ProtocolError):
        assert got == want
    else:
        assert not isinstance(got, ProtocolError), got
        assert got[0] == want[0] and bytes(got[1]) == bytes(want[1])


BLOB_VECTORS = [c for doc in (VALID, INVALID) for c in doc["cases"]
                if c["frame"] == "binary" and c["direction"] == "client_to_server"]


@pytest.mark.parametrize("case", BLOB_VECTORS, ids=[c["name"] for c in BLOB_VECTORS])
def test_every_blob_vector_reads_the_same_in_any_pieces(case):
    limits = {**VALID["default_limits"], **case.get("limits", {})}
    data = materialize(case["input"])
    want = decode_client_frame(data, limits["max_frame_bytes"], limits["max_pixels"])
    rng = random.Random(case["name"])
    for _ in range(12):
        _same(_read(data, _pieces(data, rng), limits["max_frame_bytes"], limits["max_pixels"]), want)
    _same(_read(data, [data], limits["max_frame_bytes"], limits["max_pixels"]), want)


def test_damaged_frames_read_the_same_in_any_pieces():
    rng = random.Random(7)
    header = BlobHeader(blob_hash(PIXELS_4X3), "rgba8", 4, 3)
    good = encode_frame(header, PIXELS_4X3)
    for _ in range(400):
        data = bytearray(good)
        what = rng.randrange(4)
        if what == 0:
            data = data[: rng.randrange(len(data))]
        elif what == 1:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif what == 2:
            data += bytes(rng.randrange(1, 9))
        else:
            del data[rng.randrange(len(data))]
        frame = bytes(data)
        limit = rng.choice([BIG, len(good) - 1, len(good)])
        _same(_read(frame, _pieces(frame, rng), limit), decode_client_frame(frame, limit, BIG))


def test_the_payload_lands_in_one_allocated_buffer_hashed_as_it_comes():
    header = BlobHeader(blob_hash(PIXELS_4X3), "rgba8", 4, 3)
    buffers: list[bytearray] = []

    def allocate(size: int) -> bytearray:
        buffers.append(bytearray(size))
        return buffers[-1]

    got = _read(b"", frame_parts(header, PIXELS_4X3, fragment=5), allocate=allocate)
    assert not isinstance(got, ProtocolError)
    assert len(buffers) == 1 and bytes(buffers[0]) == PIXELS_4X3
    assert got[1].obj is buffers[0]  # the decoded payload is that buffer, not a copy of it


def test_a_frame_over_the_limit_is_too_large_and_stops_being_stored():
    header = BlobHeader(blob_hash(PIXELS_4X3), "rgba8", 4, 3)
    frame = encode_frame(header, PIXELS_4X3)
    reader = ClientFrameReader(len(frame) - 1)
    for piece in _pieces(frame, random.Random(1)):
        reader.feed(piece)
    assert not reader.head
    err = reader.result()
    assert isinstance(err, ProtocolError) and err.code is ErrorCode.TOO_LARGE


def test_frame_parts_join_to_encode_frame_and_share_the_payload():
    payload = bytes(range(256)) * 9
    header = BlobHeader(blob_hash(payload), "gray8", 48, 48)
    parts = frame_parts(header, payload, fragment=1000)
    assert b"".join(parts) == encode_frame(header, payload)
    assert [len(p) for p in parts[1:]] == [1000, 1000, 304]
    assert all(isinstance(p, memoryview) and p.obj is payload for p in parts[1:])


# ----------------------------------------------------------------------------- patches (1.1)


def _patch(**fields) -> BlobHeader:
    base = {"hash": blob_hash(b"whole image"), "format": "rgba8", "width": 4, "height": 3,
            "base": blob_hash(b"base image"), "rect": Rect(1, 1, 2, 2)}
    base.update(fields)
    return BlobHeader(**base)


def test_a_patch_decodes_to_its_box_and_leaves_the_hash_to_the_server():
    patch = bytes(range(16))  # 2 x 2 rgba8
    header = _patch()
    for decoded in (decode_client_frame(encode_frame(header, patch), BIG, BIG),
                    _read(b"", frame_parts(header, patch, fragment=3))):
        assert not isinstance(decoded, ProtocolError), decoded
        assert decoded[0] == header and bytes(decoded[1]) == patch


@pytest.mark.parametrize(("header", "payload", "code", "field"), [
    (_patch(rect=None), bytes(48), ErrorCode.MISSING_FIELD, "rect"),
    (_patch(base=None), bytes(16), ErrorCode.MISSING_FIELD, "base"),
    (_patch(format="png"), b"\x89PNG", ErrorCode.BAD_FIELD, "base"),
    (_patch(rect=Rect(3, 1, 2, 2)), bytes(16), ErrorCode.OUT_OF_BOUNDS, "rect"),
    (_patch(rect=Rect(-1, 0, 2, 2)), bytes(16), ErrorCode.OUT_OF_BOUNDS, "rect"),
    (_patch(), bytes(48), ErrorCode.BAD_IMAGE, "payload"),  # the whole image's size, not the box's
    (_patch(stride=7), bytes(15), ErrorCode.BAD_FIELD, "stride"),  # shorter than the box's row
])
def test_patch_faults_name_their_field(header, payload, code, field):
    frame = encode_frame(header, payload)
    for decoded in (decode_client_frame(frame, BIG, BIG), _read(frame, _pieces(frame, random.Random(3)))):
        assert isinstance(decoded, ProtocolError) and (decoded.code, decoded.field) == (code, field)


def test_a_patch_with_padded_rows_counts_the_box_rows():
    payload = bytes(range(20))  # 2 x 2 rgba8, stride 12: a padded first row, the last one tight
    header = _patch(stride=12)
    decoded = decode_client_frame(encode_frame(header, payload), BIG, BIG)
    assert not isinstance(decoded, ProtocolError) and len(decoded[1]) == 20


# ----------------------------------------------------------------------------- the server connection


def _open_connection() -> ServerConnection:
    from latentbrush.protocol import ServerHello
    from latentbrush.protocol.messages import Limits

    conn = ServerConnection(token_ok=lambda token: token == "t", max_frame_bytes=BIG, max_pixels=BIG)
    conn.receive_text('{"type":"hello","protocol":1,"minor":1,"client":"test","token":"t"}')
    limits = Limits(max_frame_bytes=BIG, max_pixels=BIG, max_queue=4, max_batch=1, max_steps=50)
    conn.accept(ServerHello(protocol=1, minor=1, server="s", client_id="c1", resumed=False, device="cpu",
                            dtype="float32", models=(), upscalers=(), samplers=(), limits=limits))
    return conn


def test_a_stream_gives_the_events_of_the_joined_frame():
    conn = _open_connection()
    header = BlobHeader(blob_hash(PIXELS_4X3), "rgba8", 4, 3)
    stream = conn.receive_blob_stream()
    for piece in frame_parts(header, PIXELS_4X3, fragment=7):
        stream.feed(piece)
    event = stream.finish()
    assert isinstance(event, BlobReceived) and event.header == header and bytes(event.payload) == PIXELS_4X3

    bad = BlobHeader(blob_hash(b"other"), "rgba8", 4, 3)
    stream = conn.receive_blob_stream()
    for piece in frame_parts(bad, PIXELS_4X3, fragment=7):
        stream.feed(piece)
    refused = stream.finish()
    joined = conn.receive_blob(encode_frame(bad, PIXELS_4X3))
    assert isinstance(refused, Send) and refused == joined
    assert "hash_mismatch" in refused.text and bad.hash in refused.text  # names the blob it refuses


def test_a_stream_before_the_hello_is_not_ready():
    conn = ServerConnection(token_ok=lambda token: True, max_frame_bytes=BIG)
    stream = conn.receive_blob_stream()
    assert isinstance(stream, BlobStream)
    stream.feed(encode_frame(BlobHeader(blob_hash(PIXELS_4X3), "rgba8", 4, 3), PIXELS_4X3))
    event = stream.finish()
    assert isinstance(event, Send) and '"not_ready"' in event.text


def test_hash_of_pieces_is_the_hash_of_the_whole():
    payload = random.Random(5).randbytes(10_000)
    header = BlobHeader(blob_hash(payload), "gray8", 100, 100)
    decoded = _read(b"", frame_parts(header, payload, fragment=333))
    assert not isinstance(decoded, ProtocolError) and decoded[0].hash == header.hash
