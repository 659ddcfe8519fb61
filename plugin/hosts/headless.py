"""A ``Host`` on Pillow/numpy images, for the CLI and tests: no painting app needed.

The canvas is an RGBA image; the selection is an optional gray mask image or rectangle.
Result layers are collected (not merged) and can be composited onto the canvas afterwards;
previews are counted and handed to an optional sink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from latentbrush.plugin.core.host import Pixels, Selection
from latentbrush.protocol.geometry import Rect, Size, clamp, round_half_up
from PIL import Image


@dataclass
class ResultLayer:
    name: str
    bounds: Rect
    image: Image.Image  # RGBA, the size of bounds


@dataclass
class StatusLine:
    text: str
    progress: float | None


def pixels_to_image(pixels: Pixels) -> Image.Image:
    """Raw Pixels -> RGBA (or L for gray8) Pillow image at the data's own size."""
    size = (pixels.data_extent.width, pixels.data_extent.height)
    if pixels.format == "gray8":
        return Image.frombytes("L", size, pixels.data)
    mode = {"rgba8": "RGBA", "bgra8": "BGRA"}.get(pixels.format)
    if mode is None:
        raise ValueError(f"unsupported pixel format {pixels.format!r}")
    return Image.frombuffer("RGBA", size, pixels.data, "raw", mode, 0, 1).copy()


def composite_over(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Porter-Duff "over" of two H x W x 4 uint8 RGBA arrays.

    Where the source is fully transparent the destination is returned bit for bit, and where it
    is opaque the source is; only partly covered pixels are blended.
    """
    a_s = src[..., 3:4].astype(np.float64) / 255.0
    a_d = dst[..., 3:4].astype(np.float64) / 255.0
    out_a = a_s + a_d * (1.0 - a_s)
    safe = np.where(out_a > 0, out_a, 1.0)
    rgb = (src[..., :3] * a_s + dst[..., :3] * a_d * (1.0 - a_s)) / safe
    blended = np.concatenate([rgb, out_a * 255.0], axis=-1)
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    alpha = src[..., 3]
    out[alpha == 0] = dst[alpha == 0]
    out[alpha == 255] = src[alpha == 255]
    return out


@dataclass
class HeadlessHost:
    """``Host`` implementation on an in-memory RGBA canvas (see module docstring)."""

    canvas: Image.Image
    mask: Image.Image | None = None  # "L", canvas-sized; 0 = keep, 255 = repaint
    rect: Rect | None = None  # a rectangular selection instead of a mask image
    preview_sink: Callable[[int, Image.Image, Rect], None] | None = None
    status_sink: Callable[[str, float | None], None] | None = None
    pixel_format: str = "rgba8"
    layers: list[ResultLayer] = field(default_factory=list)
    statuses: list[StatusLine] = field(default_factory=list)
    preview_count: int = 0
    preview_visible: bool = False
    last_preview: tuple[Rect, Image.Image] | None = None

    def __post_init__(self) -> None:
        self.canvas = self.canvas.convert("RGBA")
        if self.mask is not None:
            self.mask = self.mask.convert("L")
            if self.mask.size != self.canvas.size:
                raise ValueError(f"mask is {self.mask.size}, canvas is {self.canvas.size}: they must match")
        if self.mask is not None and self.rect is not None:
            raise ValueError("give a mask image or a rectangle, not both")

    # ----------------------------------------------------------------------------- Host

    def canvas_size(self) -> Size:
        return Size(*self.canvas.size)

    def read_pixels(self, bounds: Rect) -> Pixels:
        # Pillow fills the part of a crop box past the image edge with zeros (transparent).
        box = (bounds.x, bounds.y, bounds.right, bounds.bottom)
        return Pixels(bounds, "rgba8", self.canvas.crop(box).tobytes())

    def read_control(self, source: object, bounds: Rect) -> Pixels:
        """``source``: a canvas-sized image (a control layer as the CLI reads it from a file)."""
        if not isinstance(source, Image.Image) or source.size != self.canvas.size:
            raise ValueError(f"a control image must be an image of the canvas size {self.canvas.size}")
        box = (bounds.x, bounds.y, bounds.right, bounds.bottom)
        return Pixels(bounds, "rgba8", source.convert("RGBA").crop(box).tobytes())

    def selection(self) -> Selection | None:
        canvas = Rect.of(self.canvas_size())
        if self.mask is not None:
            return Selection(canvas, self.mask.tobytes())
        if self.rect is not None:
            box = clamp(self.rect, self.canvas_size())
            if box.is_empty():
                return None
            return Selection(box, b"\xff" * (box.width * box.height))
        return None

    def add_result_layer(self, name: str, pixels: Pixels) -> ResultLayer:
        layer = ResultLayer(name, pixels.bounds, pixels_to_image(pixels))
        self.layers.append(layer)
        return layer

    def show_preview(self, pixels: Pixels) -> None:
        image = pixels_to_image(pixels)
        self.preview_count += 1
        self.preview_visible = True
        self.last_preview = (pixels.bounds, image)
        if self.preview_sink is not None:
            self.preview_sink(self.preview_count, image, pixels.bounds)

    def remove_preview(self) -> None:
        self.preview_visible = False

    def report_status(self, text: str, progress: float | None = None) -> None:
        self.statuses.append(StatusLine(text, progress))
        if self.status_sink is not None:
            self.status_sink(text, progress)

    def resize_canvas(self, extent: Size) -> None:
        sx, sy = extent.width / self.canvas.width, extent.height / self.canvas.height
        self.canvas = self.canvas.resize((extent.width, extent.height), Image.Resampling.LANCZOS)
        if self.mask is not None:
            self.mask = self.mask.resize((extent.width, extent.height), Image.Resampling.NEAREST)
        if self.rect is not None:
            r = self.rect
            self.rect = Rect(round_half_up(r.x * sx), round_half_up(r.y * sy), round_half_up(r.width * sx),
                             round_half_up(r.height * sy))
        for layer in self.layers:
            b = layer.bounds
            layer.bounds = Rect(round_half_up(b.x * sx), round_half_up(b.y * sy), round_half_up(b.width * sx),
                                round_half_up(b.height * sy))
            layer.image = layer.image.resize((layer.bounds.width, layer.bounds.height), Image.Resampling.LANCZOS)

    # ----------------------------------------------------------------------------- results

    def layer_on_canvas(self, layer: ResultLayer) -> Image.Image:
        """The layer as a transparent canvas-sized RGBA image (what a layer in a document looks like)."""
        full = Image.new("RGBA", self.canvas.size, (0, 0, 0, 0))
        full.paste(layer.image, (layer.bounds.x, layer.bounds.y))
        return full

    def composite(self, layers: list[ResultLayer] | None = None) -> Image.Image:
        """The canvas with ``layers`` (default: all result layers) composited on top, in order."""
        out = np.array(self.canvas, dtype=np.uint8)
        for layer in self.layers if layers is None else layers:
            box = clamp(layer.bounds, self.canvas_size())
            if box.is_empty():
                continue
            src = np.array(layer.image, dtype=np.uint8)
            sx, sy = box.x - layer.bounds.x, box.y - layer.bounds.y
            src = src[sy : sy + box.height, sx : sx + box.width]
            region = out[box.y : box.bottom, box.x : box.right]
            out[box.y : box.bottom, box.x : box.right] = composite_over(region, src)
        return Image.fromarray(out, "RGBA")
