"""Helpers to write conformance cases by hand: JSON text, binary frames, hashes, defaults.

Standard library only, and independent of the decoder under test: every expected value in the
cases is written out by hand from SPEC.md, never computed by latentbrush.protocol.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

C2S = "client_to_server"
S2C = "server_to_client"

# Limits a runner uses unless a case names others (SPEC.md section 5, "Limits").
DEFAULT_LIMITS = {
    "max_frame_bytes": 1048576,
    "max_pixels": 16777216,
    "max_queue": 32,
    "max_batch": 8,
    "max_steps": 150,
}

# JobRequest defaults from SPEC.md section 5; absent fields are left out.
JOB_DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "model": "",
    "sampler": "Euler a",
    "steps": 20,
    "cfg": 7.0,
    "strength": 1.0,
    "batch": 1,
    "mask_grow": 0,
    "mask_feather": 0,
    "mask_blend": 0,
    "prefill": "auto",
    "preview_format": "jpeg",
    "preview_max_side": 512,
    "result_format": "png",
}
UPSCALE_DEFAULTS: dict[str, Any] = {
    "upscaler": "",
    "scale": 2.0,
    "tile": 512,
    "overlap": 32,
    "refine": False,
    "refine_strength": 0.3,
    "refine_tile": 512,
    "refine_padding": 32,
    "refine_mask_blur": 8,
    "seam_fix": "none",
}
HELLO_FORMAT_DEFAULTS: dict[str, Any] = {
    "blob_formats": ["rgba8", "bgra8", "gray8", "png", "jpeg", "webp"],
    "preview_formats": ["jpeg", "png", "webp", "rgba8", "bgra8"],
    "result_formats": ["png", "rgba8", "bgra8", "webp"],
    "controls": [],  # 1.1
    "preprocessors": [],  # 1.1
    "references": [],  # 1.1
    "reference_modes": [],  # 1.1
    "presets": {},  # 1.1
    "loras": [],  # 1.1
    "embeddings": [],  # 1.1
}

# A real 2x2 JPEG and a real 2x2 lossless WebP (made once with Pillow; kept as bytes so this
# file needs nothing outside the standard library).
JPEG_2X2 = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a18161618"
    "3123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffdb00"
    "43011112121815182f1a1a2f63423842636363636363636363636363636363636363636363636363636363636363"
    "6363636363636363636363636363636363636363ffc00011080002000203012200021101031101ffc4001f000001"
    "0501010101010100000000000000000102030405060708090a0bffc400b510000201030302040305050404000001"
    "7d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25"
    "262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a8384"
    "85868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5"
    "d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000"
    "000102030405060708090a0bffc400b5110002010204040304070504040001027700010203110405213106124151"
    "0761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a43"
    "4445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a929394959697"
    "98999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8"
    "e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f00c7a28a2b84fa83ffd9"
)
WEBP_2X2 = bytes.fromhex("524946461e000000574542505650384c110000002f0140000007508f22d7a3ff8188e87f0000")


def text(obj: Any) -> str:
    """Compact JSON, the way a peer would send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sha(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def frame(header: dict[str, Any] | bytes, payload: bytes = b"", head_len: int | None = None) -> bytes:
    """``u32 big-endian header length | header | payload``; ``head_len`` overrides the prefix."""
    head = header if isinstance(header, bytes) else text(header).encode()
    return struct.pack(">I", len(head) if head_len is None else head_len) + head + payload


def png(width: int, height: int, rgba: bytes) -> bytes:
    """A minimal 8-bit RGBA PNG (colour type 6, no filtering)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + rgba[y * width * 4 : (y + 1) * width * 4] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def rect(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "width": w, "height": h}


def size(w: int, h: int) -> dict[str, int]:
    return {"width": w, "height": h}


HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64


def job(op: str = "inpaint", **fields: Any) -> dict[str, Any]:
    """A minimal job as a client sends it: 512x512 canvas, region (64,64,128,128)."""
    base: dict[str, Any] = {"id": "j1", "op": op, "canvas": size(512, 512), "region": rect(64, 64, 128, 128)}
    if op in ("img2img", "inpaint", "upscale"):
        base["image"] = HASH_A
    if op == "inpaint":
        base["mask"] = HASH_B
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def decoded_job(sent: dict[str, Any]) -> dict[str, Any]:
    """The job as a decoder returns it: SPEC defaults filled in, absent fields left out."""
    out = {**JOB_DEFAULTS, **{k: v for k, v in sent.items() if v is not None}}
    if "upscale" in out:
        out["upscale"] = {**UPSCALE_DEFAULTS, **out["upscale"]}
    return out


def case(
    name: str,
    direction: str,
    frame_kind: str,
    data: str | bytes | list[Any],
    expect: dict[str, Any],
    *,
    check: str = "decode",
    limits: dict[str, int] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One vector. ``data``: text (str), bytes, or a list of parts (str, or {"repeat", "count"})."""
    out: dict[str, Any] = {"name": name, "direction": direction, "frame": frame_kind}
    if isinstance(data, bytes):
        out["input"] = {"hex": data.hex()}
    elif isinstance(data, str):
        out["input"] = {"text": data}
    else:
        out["input"] = {("hex_parts" if frame_kind == "binary" else "text_parts"): data}
    if check != "decode":
        out["check"] = check
    if limits:
        out["limits"] = limits
    out["expect"] = expect
    if note:
        out["note"] = note
    return out


def error(code: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "field": field}}
