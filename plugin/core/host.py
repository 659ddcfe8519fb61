"""What any host (Krita, GIMP, the headless CLI host) must provide to the host-free core.

Pixels cross this seam as raw 8-bit bytes in a protocol raw format ("rgba8", "bgra8",
"gray8"), rows tightly packed, so the core never decodes images and hosts never see JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from latentbrush.protocol.geometry import Rect, Size


@dataclass(frozen=True)
class Pixels:
    """Raw pixels of ``bounds``: ``format`` is "rgba8", "bgra8" or "gray8", tightly packed rows.

    ``size`` is set only when ``data`` has another size than ``bounds`` and must be stretched
    over it (a preview decoded at a lower resolution than the box it shows).
    """

    bounds: Rect
    format: str
    data: bytes
    size: Size | None = None

    @property
    def data_extent(self) -> Size:
        """Width and height of ``data``."""
        return self.size or self.bounds.size


@dataclass(frozen=True)
class Selection:
    """The host's selection: coverage 0..255 (gray8) over ``bounds``; partial values = feathered."""

    bounds: Rect
    data: bytes


class Host(Protocol):
    """Host adapter interface. All methods are called on the host's UI thread."""

    pixel_format: str  # the raw format this host reads and writes natively ("bgra8" for Krita)

    def canvas_size(self) -> Size: ...

    def read_pixels(self, bounds: Rect) -> Pixels:
        """Visible (flattened) pixels of ``bounds``; areas past the canvas edge are transparent."""
        ...

    def selection(self) -> Selection | None:
        """The active selection clipped to the canvas, or None for no selection."""
        ...

    def read_control(self, source: object, bounds: Rect) -> Pixels:
        """The pixels of a control layer (``ControlSpec.source``) over ``bounds``, transparent past its edges."""
        ...

    def add_result_layer(self, name: str, pixels: Pixels) -> object:
        """Add a new layer holding ``pixels`` at ``pixels.bounds``; undoable; returns a handle."""
        ...

    def show_preview(self, pixels: Pixels) -> None:
        """Create or update the single locked "[Preview]" layer; ``pixels.bounds`` is where it goes.

        When ``pixels.size`` is set, stretch the ``pixels.size`` image over ``pixels.bounds``.
        """
        ...

    def remove_preview(self) -> None:
        """Remove the preview layer if there is one (finish, error, cancel)."""
        ...

    def report_status(self, text: str, progress: float | None = None) -> None:
        """Show a status line; ``progress`` in 0..1 or None for indeterminate."""
        ...

    def resize_canvas(self, extent: Size) -> None:
        """Scale the document (all layers) to ``extent``; called by upscale jobs before their result layer."""
        ...
