"""Raw pixel buffers <-> QImage: scaling previews and making thumbnails (Qt does the pixel work).

A QImage in ``Format_ARGB32`` stores each pixel as a little-endian uint32 0xAARRGGBB, i.e. the
bytes B, G, R, A: exactly Krita's RGBA/U8 layout, so "bgra8" buffers map onto it without copying
channels. "rgba8" maps onto ``Format_RGBA8888``. Both are straight (not premultiplied) alpha.
"""

from __future__ import annotations

from ...qt import QImage, QPixmap, Qt, image_bits

_FORMATS = {"bgra8": QImage.Format.Format_ARGB32, "rgba8": QImage.Format.Format_RGBA8888}


def to_qimage(data: bytes, width: int, height: int, fmt: str) -> QImage:
    """A QImage that owns a copy of ``data`` (tightly packed rows of ``fmt``)."""
    qfmt = _FORMATS.get(fmt)
    if qfmt is None:
        raise ValueError(f"cannot show pixel format {fmt!r}; expected one of {sorted(_FORMATS)}")
    if len(data) != width * height * 4:
        raise ValueError(f"{fmt} buffer is {len(data)} bytes, expected {width * height * 4} for {width}x{height}")
    # QImage does not copy the buffer it wraps; copy() detaches it from the Python bytes.
    return QImage(data, width, height, width * 4, qfmt).copy()


def to_bgra(image: QImage) -> bytes:
    """Tightly packed bgra8 bytes of any QImage."""
    argb = image.convertToFormat(QImage.Format.Format_ARGB32)
    bits = image_bits(argb)
    row = argb.width() * 4
    stride = argb.bytesPerLine()
    if stride == row:
        return bits[: row * argb.height()]
    return b"".join(bits[y * stride : y * stride + row] for y in range(argb.height()))


def scale_pixels(data: bytes, width: int, height: int, fmt: str, target_w: int, target_h: int) -> bytes:
    """Stretch a buffer to ``target_w`` x ``target_h`` (smooth filtering); returns bgra8 bytes."""
    image = to_qimage(data, width, height, fmt)
    if (width, height) != (target_w, target_h):
        image = image.scaled(
            target_w, target_h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    return to_bgra(image)


def thumbnail(data: bytes, width: int, height: int, fmt: str, side: int) -> QPixmap:
    """A pixmap at most ``side`` pixels on its longer side, aspect kept, for history lists."""
    image = to_qimage(data, width, height, fmt)
    image = image.scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    return QPixmap.fromImage(image)
