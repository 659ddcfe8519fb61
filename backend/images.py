"""Pixels in and out: uploaded blobs -> numpy, previews and results -> wire bytes.

Decoded blobs are either H x W x 4 RGBA uint8 (colour) or H x W uint8 (single channel); the
engine gets RGBA images and H x W masks. Everything here is pure and thread-safe, so the server
runs it off the event loop.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, NamedTuple

import numpy as np
from latentbrush.protocol import BlobHeader, ErrorCode, ProtocolError
from latentbrush.protocol.codec import payload_box
from latentbrush.protocol.messages import RAW_FORMATS
from PIL import Image

# Pillow's names for the encoded formats of the protocol
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# Preview formats that carry a masked job's composite alpha (SPEC.md 10.1); jpeg previews stay opaque.
PREVIEW_ALPHA_FORMATS = frozenset({"png", "webp", "rgba8", "bgra8"})
SINGLE_CHANNEL_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "F"})
JPEG_QUALITY = 85
WEBP_QUALITY = 80
PNG_COMPRESS_LEVEL = 1  # results and previews are encoded on the interactive path: speed over size
BLOCK_ROWS = 64  # channel swaps go a band of rows at a time: the band stays in cache, temporaries stay small


class Encoded(NamedTuple):
    data: bytes
    width: int
    height: int
    stride: int | None  # raw formats only


# ----------------------------------------------------------------------------- decoding uploads


def decode_blob(header: BlobHeader, payload: bytes | bytearray | memoryview) -> np.ndarray | ProtocolError:
    """Decode an upload whose frame the codec already checked (hash, raw length, pixel limit).

    A *writable* raw payload of tight rows is taken over: the pixels are the payload's own memory (bgra8
    swapped to RGBA in place), no copy. A read-only one (``bytes``) is copied once.
    """
    if header.format in RAW_FORMATS:
        return _decode_raw(header, payload)
    return _decode_encoded(header, payload)


def _decode_raw(header: BlobHeader, payload: bytes | bytearray | memoryview) -> np.ndarray:
    bpp = RAW_FORMATS[header.format]
    box = payload_box(header)
    stride = header.stride or box.width * bpp
    # A strided view straight over the payload; a copy only to drop row padding or to own read-only bytes.
    view = np.ndarray((box.height, box.width, bpp), dtype=np.uint8, buffer=payload, strides=(stride, bpp, 1))
    if stride != box.width * bpp or not view.flags.writeable:
        view = view.copy()
    if header.format == "gray8":
        return view[:, :, 0]  # bpp 1: the same memory, C-contiguous
    if header.format == "bgra8":
        swap_red_blue(view)
    return view


def swap_red_blue(pixels: np.ndarray) -> None:
    """BGRA <-> RGBA of an H x W x 4 array, in place (a fancy-indexed copy of the whole image is ~10x slower)."""
    for top in range(0, pixels.shape[0], BLOCK_ROWS):
        band = pixels[top : top + BLOCK_ROWS]
        red = band[..., 0].copy()
        band[..., 0] = band[..., 2]
        band[..., 2] = red


def raw_hash(pixels: np.ndarray, fmt: str) -> str:
    """The address of ``pixels`` (as decoded: RGBA or one channel) sent as a tight raw ``fmt`` image."""
    digest = hashlib.sha256()
    for top in range(0, pixels.shape[0], BLOCK_ROWS):
        _hash_band(digest, pixels[top : top + BLOCK_ROWS], fmt)
    return "sha256:" + digest.hexdigest()


def _hash_band(digest: Any, band: np.ndarray, fmt: str) -> None:
    if fmt == "bgra8":
        band = band.copy()  # swapped in a copy: the pixels stay RGBA
        swap_red_blue(band)
    digest.update(memoryview(np.ascontiguousarray(band)).cast("B"))


def apply_patch(
    base: np.ndarray, header: BlobHeader, payload: bytes | bytearray | memoryview
) -> np.ndarray | ProtocolError:
    """A patch upload (SPEC.md 8): ``base`` with ``header.rect`` replaced by the payload, checked against
    ``header.hash`` (the address of the whole image). ``base`` is a stored blob: it is never written."""
    if (base.ndim == 2) != (header.format == "gray8") or blob_size(base) != (header.width, header.height):
        kind = "single-channel" if base.ndim == 2 else "colour"
        return ProtocolError(ErrorCode.SIZE_MISMATCH, f"base is a {base.shape[1]}x{base.shape[0]} {kind} blob, "
                             f"the patch is for a {header.width}x{header.height} {header.format} image", "base")
    rect = payload_box(header)
    patch = _decode_raw(header, payload)
    image = np.empty(base.shape, dtype=np.uint8)
    digest = hashlib.sha256()
    # One pass, a band of rows at a time: copy, paste and hash while the band is in cache.
    for top in range(0, image.shape[0], BLOCK_ROWS):
        band = image[top : top + BLOCK_ROWS]
        band[...] = base[top : top + BLOCK_ROWS]
        first, last = max(rect.y, top), min(rect.bottom, top + len(band))
        if first < last:
            band[first - top : last - top, rect.x : rect.right] = patch[first - rect.y : last - rect.y]
        _hash_band(digest, band, header.format)
    if "sha256:" + digest.hexdigest() != header.hash:
        return ProtocolError(ErrorCode.HASH_MISMATCH, "the patched image does not hash to the announced id", "hash")
    return image


def _decode_encoded(header: BlobHeader, payload: bytes | memoryview) -> np.ndarray | ProtocolError:
    expected = PILLOW_FORMATS[header.format]
    try:
        with Image.open(io.BytesIO(payload), formats=[expected]) as im:
            # The size is known before any pixel is decoded: refuse lies (and bombs) cheaply.
            if im.size != (header.width, header.height):
                return ProtocolError(
                    ErrorCode.BAD_IMAGE,
                    f"payload is {im.size[0]}x{im.size[1]}, header says {header.width}x{header.height}",
                    "payload",
                )
            im.load()
            if im.mode in SINGLE_CHANNEL_MODES:
                return np.asarray(im.convert("L")).copy()
            return np.asarray(im.convert("RGBA")).copy()
    except Image.UnidentifiedImageError:
        return ProtocolError(ErrorCode.BAD_IMAGE, f"payload is not a {header.format.upper()} image", "payload")
    except Exception as exc:  # hostile bytes can make a decoder raise anything
        return ProtocolError(ErrorCode.BAD_IMAGE, f"cannot decode {header.format}: {str(exc)[:160]}", "payload")


def as_rgba(pixels: np.ndarray) -> np.ndarray:
    """Any decoded blob -> H x W x 4 RGBA (a single channel becomes opaque grey)."""
    if pixels.ndim == 2:
        out = np.empty((*pixels.shape, 4), dtype=np.uint8)
        out[..., :3] = pixels[..., None]
        out[..., 3] = 255
        return out
    return pixels


def as_mask(pixels: np.ndarray) -> np.ndarray:
    """Any decoded blob -> H x W mask (255 = repaint).

    Single channel is the mask itself; a colour image gives its luminance, ITU-R 601-2 as
    Pillow's "L" conversion computes it (SPEC.md 8: alpha has no meaning in 1.0).
    """
    if pixels.ndim == 2:
        return pixels
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB").convert("L"))


def blob_size(pixels: np.ndarray) -> tuple[int, int]:
    """(width, height) of a decoded blob."""
    return int(pixels.shape[1]), int(pixels.shape[0])


# ----------------------------------------------------------------------------- encoding downloads


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale (width, height) down so the longer side is at most ``max_side``; never up."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_preview(picture: np.ndarray, fmt: str, max_side: int) -> Encoded:
    """An engine preview (h x w x 3, or h x w x 4 for a clipped one) -> wire bytes, shrunk so its longer side
    fits ``max_side``. Alpha is kept in the formats that hold it (PREVIEW_ALPHA_FORMATS), else dropped."""
    height, width = picture.shape[:2]
    size = fit_within(width, height, max_side)
    keep_alpha = picture.shape[2] == 4 and fmt in PREVIEW_ALPHA_FORMATS
    image = Image.fromarray(np.ascontiguousarray(picture[..., :4] if keep_alpha else picture[..., :3]))
    if size != (width, height):
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if fmt in RAW_FORMATS:
        return _encode_raw(np.asarray(image.convert("RGBA")), fmt)
    return _encode_pillow(image, fmt)


def encode_result(rgba: np.ndarray, fmt: str) -> Encoded:
    """A finished H x W x 4 RGBA image -> wire bytes (alpha kept bit for bit in every format)."""
    if fmt in RAW_FORMATS:
        return _encode_raw(rgba, fmt)
    return _encode_pillow(Image.fromarray(np.ascontiguousarray(rgba), "RGBA"), fmt)


def _encode_raw(rgba: np.ndarray, fmt: str) -> Encoded:
    height, width = rgba.shape[:2]
    if fmt == "bgra8":
        rgba = rgba[..., [2, 1, 0, 3]]
    elif fmt == "gray8":
        rgba = rgba[..., :1]
    data = np.ascontiguousarray(rgba).tobytes()
    return Encoded(data, width, height, width * RAW_FORMATS[fmt])


def raw_frame(head: bytes, rgba: np.ndarray, fmt: str) -> memoryview:
    """A whole frame in one buffer: ``head`` (length prefix and header), then ``rgba`` as tight raw ``fmt``
    rows, converted straight into place a band at a time: no intermediate image, no joining copy."""
    height, width = rgba.shape[:2]
    bpp = RAW_FORMATS[fmt]
    frame = np.empty(len(head) + height * width * bpp, dtype=np.uint8)  # numpy memory: no zeroing pass
    frame[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    pixels = frame[len(head) :].reshape(height, width, bpp)
    for top in range(0, height, BLOCK_ROWS):
        band = pixels[top : top + BLOCK_ROWS]
        band[...] = rgba[top : top + BLOCK_ROWS, :, :bpp]  # gray8 keeps the first channel, as _encode_raw
        if fmt == "bgra8":
            swap_red_blue(band)
    return memoryview(frame).cast("B")


def _encode_pillow(image: Image.Image, fmt: str) -> Encoded:
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    elif fmt == "webp":
        lossless = image.mode == "RGBA"  # results must keep their alpha exactly
        # exact: keep the colour under transparent pixels (libwebp zeroes it otherwise)
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, lossless=lossless, method=0 if not lossless else 1, exact=True)
    elif fmt == "png":
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        raise ValueError(f"unknown image format {fmt!r}")  # the server validated formats at submit
    return Encoded(buffer.getvalue(), image.width, image.height, None)
