"""Patch uploads (protocol 1.1, SPEC.md 8): send only the changed box of an image the server already has.

The client remembers the last raw image it uploaded of each size and format on a connection. When the
next one differs from it in a small box, the upload is a patch: that box's pixels over the remembered
blob (``BlobHeader.base`` and ``rect``), addressed by the hash of the whole new image as always. A stroke
on a 4096² canvas then sends kilobytes instead of 64 MiB. The server refuses a patch whose base it no
longer holds; the client then sends the whole image (``client.Client.upload``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from latentbrush.protocol import BlobHeader
from latentbrush.protocol.geometry import Size
from latentbrush.protocol.messages import RAW_FORMATS

from .buffers import changed_box, crop

MAX_PATCH_FRACTION = 0.5  # a box over half the image goes whole: the patch saves little and costs a crop
MAX_REMEMBERED = 4  # images kept as bases (one reference each to the host's buffer, no copy)

Payload = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Patch:
    header: BlobHeader
    payload: bytes


class PatchBases:
    """The last raw upload of each (format, width, height) on one connection, as the base of the next."""

    def __init__(self, max_items: int = MAX_REMEMBERED) -> None:
        self._max = max_items
        self._last: OrderedDict[tuple[str, int, int], tuple[str, Payload]] = OrderedDict()

    def remember(self, payload: Payload, fmt: str, width: int, height: int, digest: str) -> None:
        """The server stored ``digest`` (these bytes, tight rows): the next image of its size may patch it."""
        if fmt not in RAW_FORMATS:
            return
        key = (fmt, width, height)
        self._last.pop(key, None)
        self._last[key] = (digest, payload)
        while len(self._last) > self._max:
            self._last.popitem(last=False)

    def forget(self, fmt: str, width: int, height: int) -> None:
        self._last.pop((fmt, width, height), None)

    def clear(self) -> None:
        self._last.clear()

    def patch(self, payload: Payload, fmt: str, width: int, height: int, digest: str) -> Patch | None:
        """The patch that turns the remembered image into ``payload``, or None to send it whole."""
        known = self._last.get((fmt, width, height))
        bpp = RAW_FORMATS.get(fmt)
        if known is None or bpp is None or known[0] == digest:
            return None
        base, old = known
        extent = Size(width, height)
        if len(old) != len(payload) or len(payload) != width * height * bpp:
            return None
        box = changed_box(old, payload, extent, bpp)
        if box is None or box.width * box.height > MAX_PATCH_FRACTION * width * height:
            return None
        header = BlobHeader(hash=digest, format=fmt, width=width, height=height, base=base, rect=box)  # type: ignore[arg-type]
        return Patch(header, crop(payload, extent, bpp, box))
