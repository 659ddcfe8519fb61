"""Krita colour spaces latentbrush can read and write, and 8 <-> 16 bit conversion (pure, no Qt).

Krita hands out pixels in its own channel order: for "RGBA" documents that is B, G, R, A, with
one byte per channel for "U8" and one little-endian uint16 per channel for "U16". The backend
works on 8-bit pixels, so 16-bit documents are read as 8-bit and results written back widened.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnsupportedDocument(ValueError):
    """The document's colour model or depth is one latentbrush cannot handle yet."""


@dataclass(frozen=True)
class ColorSpace:
    model: str  # Krita's colorModel(): "RGBA", "GRAYA", "CMYKA", "LABA", ...
    depth: str  # Krita's colorDepth(): "U8", "U16", "F16", "F32"

    @property
    def bytes_per_channel(self) -> int:
        return 2 if self.depth == "U16" else 1


SUPPORTED_DEPTHS = ("U8", "U16")


def check_supported(space: ColorSpace) -> None:
    """Raise ``UnsupportedDocument`` with a message that tells the painter what to do."""
    if space.model == "RGBA" and space.depth in SUPPORTED_DEPTHS:
        return
    raise UnsupportedDocument(
        f"latentbrush works on RGB/Alpha documents with 8- or 16-bit integer channels; this one is "
        f"{space.model}/{space.depth}. Convert it with Image > Convert Image Color Space "
        f"(RGB/Alpha, 8-bit integer) or work on a copy."
    )


def u16_to_u8(data: bytes | bytearray | memoryview) -> bytes:
    """Little-endian uint16 channels -> uint8 by keeping the high byte (truncates; error < 1/255)."""
    if len(data) % 2:
        raise ValueError(f"16-bit pixel buffer must have an even length, got {len(data)} bytes")
    return bytes(memoryview(data)[1::2])


def u8_to_u16(data: bytes | bytearray | memoryview) -> bytes:
    """uint8 channels -> little-endian uint16: v * 257 is the byte v repeated, so 255 -> 65535."""
    out = bytearray(2 * len(data))
    out[0::2] = data
    out[1::2] = data
    return bytes(out)


def to_document_depth(data: bytes, space: ColorSpace) -> bytes:
    """8-bit BGRA bytes -> what ``setPixelData`` of a node in ``space`` expects."""
    return u8_to_u16(data) if space.bytes_per_channel == 2 else data


def from_document_depth(data: bytes, space: ColorSpace) -> bytes:
    """``pixelData`` bytes of a node in ``space`` -> 8-bit BGRA bytes."""
    return u16_to_u8(data) if space.bytes_per_channel == 2 else bytes(data)
