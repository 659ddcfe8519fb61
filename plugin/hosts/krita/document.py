"""The Krita implementation of the core's ``Host`` interface, over one ``krita.Document``.

Facts it relies on (measured in Krita 5.1.5, see ``tests/e2e/krita``):

- ``Document.pixelData`` reads the projection; for "RGBA"/"U8" the bytes are B, G, R, A. The
  projection is only recomposited by ``refreshProjection()``, so reads refresh and wait first.
  Past the canvas edge it returns the background layer's default pixel (white), not
  transparency, so reads are clipped to the canvas and the rest is filled with zeros.
- ``Document.selection()`` is None without a selection and has size 0 after "deselect";
  its bounds are *not* clipped to the canvas and may even lie wholly outside it.
- ``Selection.pixelData`` gives one byte of coverage per pixel (feathered edges in between).
- Undo: see ``preview.py``. One result is one "Add Layer" step, a job without one none. ``addChildNode`` records a
  step per child even into a group that is not in the image yet, but ``setChildNodes`` on such
  a detached group records nothing; so a batch is built as a complete group and then added:
  one "Add Layer" step for the whole batch. ``scaleImage`` (upscale) is one "Scale Image" step.

Every method runs on the UI thread and never modifies an existing layer of the painter's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from latentbrush.plugin.core.buffers import paste, swap_red_blue
from latentbrush.plugin.core.host import Pixels, Selection
from latentbrush.protocol.geometry import Rect, Size, intersect, relative_to

from .colorspace import ColorSpace, check_supported, from_document_depth, to_document_depth
from .images import scale_pixels
from .layers import resolve
from .preview import PreviewLayer
from .undo_steps import KritaUndoSteps, UndoSteps

StatusSink = Callable[[str, "float | None"], None]


def _bgra8(pixels: Pixels) -> bytes:
    expected = pixels.bounds.width * pixels.bounds.height * 4
    if len(pixels.data) != expected:
        raise ValueError(f"pixels.data: {len(pixels.data)} bytes for {pixels.bounds}, expected {expected}")
    if pixels.format == "bgra8":
        return bytes(pixels.data)
    if pixels.format == "rgba8":
        return swap_red_blue(pixels.data)
    raise ValueError(f"pixels.format: the Krita host writes bgra8 or rgba8, got {pixels.format!r}")


def frame_bgra8(pixels: Pixels) -> bytes:
    """A preview frame as bgra8 covering ``pixels.bounds``: stretched when ``pixels.size`` differs."""
    size, target = pixels.data_extent, pixels.bounds
    if size == target.size:
        return _bgra8(pixels)
    if len(pixels.data) != size.width * size.height * 4:
        raise ValueError(f"pixels.data: {len(pixels.data)} bytes for a {size.width}x{size.height} frame")
    return scale_pixels(pixels.data, size.width, size.height, pixels.format, target.width, target.height)


class KritaHost:
    """``Host`` for one job on one Krita document.

    ``batch`` > 1 collects that many results and adds them as one group called ``group_name``
    (one undo step); results of a job that ends early are grouped when the preview is removed.
    ``status`` receives ``report_status`` calls (the docker's progress line); ``on_preview`` is
    called after each preview frame reached the layer (the docker measures latency with it).
    ``results`` keeps every result added, for the docker's history (re-apply, thumbnails).
    """

    pixel_format = "bgra8"

    def __init__(
        self,
        document: Any,
        *,
        batch: int = 1,
        group_name: str = "",
        status: StatusSink | None = None,
        on_preview: Callable[[], None] | None = None,
        undo_steps: UndoSteps | None = None,
    ) -> None:
        self._doc = document
        self._status = status
        self._on_preview = on_preview
        self.results: list[tuple[str, Pixels]] = []
        self._batch = max(1, batch)
        self.group_name = group_name or "[Generated] batch"
        self._pending: list[tuple[str, Pixels]] = []
        self.group: Any = None  # the batch group once it was added
        # a job that ends without a result takes the preview's "Add Layer" step back (preview.py)
        self.preview = PreviewLayer(document, to_document_depth=self._widen,
                                    undo_steps=undo_steps if undo_steps is not None else KritaUndoSteps())

    @property
    def document(self) -> Any:
        return self._doc

    # ----------------------------------------------------------------------------- reading

    def color_space(self) -> ColorSpace:
        return ColorSpace(str(self._doc.colorModel()), str(self._doc.colorDepth()))

    def check_document(self) -> None:
        """Raise ``UnsupportedDocument`` (with advice) for colour spaces we cannot handle yet."""
        check_supported(self.color_space())

    def canvas_size(self) -> Size:
        return Size(int(self._doc.width()), int(self._doc.height()))

    def read_pixels(self, bounds: Rect) -> Pixels:
        """The visible composite of ``bounds`` without our preview; transparent past the canvas."""
        self.check_document()
        out = bytearray(bounds.width * bounds.height * 4)
        inside = intersect(bounds, Rect.of(self.canvas_size()))
        if not inside.is_empty():
            raw = self._read_projection(inside)
            data = from_document_depth(raw, self.color_space())
            if inside == bounds:
                return Pixels(bounds, "bgra8", data)
            paste(out, bounds.size, 4, data, relative_to(inside, bounds))
        return Pixels(bounds, "bgra8", bytes(out))

    def read_control(self, source: object, bounds: Rect) -> Pixels:
        """A control or reference layer's own pixels over ``bounds`` (not the composite), transparent past the
        canvas; hidden layers too (painters hide their control layers). ``source``: a ``LayerSource`` or
        ``CURRENT_LAYER``; ``ControlLayerMissing`` when there is no such layer."""
        node = resolve(self._doc, source)
        space = ColorSpace(str(node.colorModel()), str(node.colorDepth()))
        check_supported(space)  # a layer may have its own colour space
        out = bytearray(bounds.width * bounds.height * 4)
        inside = intersect(bounds, Rect.of(self.canvas_size()))
        if not inside.is_empty():
            self._doc.waitForDone()  # strokes still being applied
            data = from_document_depth(bytes(node.pixelData(*inside.xywh())), space)
            if inside == bounds:
                return Pixels(bounds, "bgra8", data)
            paste(out, bounds.size, 4, data, relative_to(inside, bounds))
        return Pixels(bounds, "bgra8", bytes(out))

    def selection(self) -> Selection | None:
        """Selection coverage clipped to the canvas; None when nothing (or nothing on the canvas) is selected."""
        sel = self._doc.selection()
        if sel is None or sel.width() <= 0 or sel.height() <= 0:
            return None
        inside = intersect(Rect(sel.x(), sel.y(), sel.width(), sel.height()), Rect.of(self.canvas_size()))
        if inside.is_empty():
            return None
        data = bytes(sel.pixelData(*inside.xywh()))
        if not data.strip(b"\0"):
            return None
        return Selection(inside, data)

    # ----------------------------------------------------------------------------- writing

    def add_result_layer(self, name: str, pixels: Pixels) -> Any:
        """A new paint layer holding ``pixels`` at their offset, on top of the stack; one undo step.

        When a preview layer exists it is reused for the result (see ``preview.py``), so the
        job leaves exactly one "Add Layer" entry in the undo history. In a batch the result is
        held until the batch is complete; the call that completes it returns the group.
        """
        if self._batch > 1:
            _bgra8(pixels)  # a bad buffer fails now, not when the batch completes
            self.results.append((name, pixels))
            self._pending.append((name, pixels))
            return self._add_group() if len(self._pending) >= self._batch else None
        data = self._widen(_bgra8(pixels))
        self.results.append((name, pixels))
        node = self.preview.adopt(name)
        if node is None:
            node = self._doc.createNode(name, "paintlayer")
            node.setPixelData(data, *pixels.bounds.xywh())
            self._doc.rootNode().addChildNode(node, None)
        else:
            node.setPixelData(data, *pixels.bounds.xywh())
        self._doc.refreshProjection()
        return node

    def add_result_group(self, name: str, layers: Sequence[tuple[str, Pixels]]) -> Any:
        """A group called ``name`` holding one layer per result, first result at the bottom; one undo step."""
        self.preview.remove()
        children = []
        for layer_name, pixels in layers:
            node = self._doc.createNode(layer_name, "paintlayer")
            node.setPixelData(self._widen(_bgra8(pixels)), *pixels.bounds.xywh())
            children.append(node)
        group = self._doc.createGroupLayer(name)
        group.setChildNodes(children)  # detached: records no undo step (see module docstring)
        self._doc.rootNode().addChildNode(group, None)
        self._doc.refreshProjection()
        return group

    def show_preview(self, pixels: Pixels) -> None:
        """Show a frame over ``pixels.bounds``, stretched when ``pixels.size`` differs (previews come downscaled)."""
        self.preview.show(pixels.bounds, frame_bgra8(pixels))
        if self._on_preview is not None:
            self._on_preview()

    def remove_preview(self) -> None:
        """End of a job: drop the preview, and group any batch results that arrived."""
        self.preview.remove()
        if self._pending and self.group is None:
            self._add_group()

    def resize_canvas(self, extent: Size) -> None:
        """Scale the whole document (every layer) to ``extent``: one "Scale Image" undo step."""
        self.preview.remove()  # its frames are in the old coordinates
        self._doc.scaleImage(extent.width, extent.height, int(self._doc.xRes()), int(self._doc.yRes()), "Bicubic")
        self._doc.waitForDone()

    def report_status(self, text: str, progress: float | None = None) -> None:
        if self._status is not None:
            self._status(text, progress)

    # ----------------------------------------------------------------------------- internals

    def _add_group(self) -> Any:
        self.group = self.add_result_group(self.group_name, self._pending)
        self._pending = []
        return self.group

    def _widen(self, bgra8: bytes) -> bytes:
        return to_document_depth(bgra8, self.color_space())

    def _own_nodes(self) -> list[Any]:
        """Layers of ours that a read of the canvas must not see (the live host adds its layer)."""
        return [self.preview.node]

    def _read_projection(self, bounds: Rect) -> bytes:
        hidden = [node for node in self._own_nodes() if node is not None and node.visible()]
        active = self._doc.activeNode() if hidden else None
        for node in hidden:
            node.setVisible(False)
        try:
            self._doc.refreshProjection()
            self._doc.waitForDone()
            return bytes(self._doc.pixelData(*bounds.xywh()))
        finally:
            for node in hidden:
                node.setVisible(True)
            if hidden:
                self._doc.refreshProjection()
                if active is not None:  # Krita 5.1.5 makes a layer shown again after a refresh the active one
                    self._doc.setActiveNode(active)
