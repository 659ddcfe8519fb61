"""Live mode's one "[Live]" layer, the ``Host`` a live job writes through, and Apply.

The live layer is the preview layer's mechanics (``preview.py``) under another name, kept after each
job: every streamed step and every result of a live job is written into it (``setPixelData`` records
no undo step), so while live runs the undo history holds only its one "Add Layer". Turning live off
removes it the way a preview is removed (its own step taken back when nothing came after it). If the
painter undoes that "Add Layer" the layer is gone and stays gone: ``gone`` tells live mode to stop
rather than make a new layer (which would throw away the painter's redo steps).

Jobs superseded by a newer one are marked ``stale``: their late frames and results are dropped, so the
layer only ever shows the newest job's picture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latentbrush.plugin.core.host import Pixels

from .colorspace import ColorSpace, to_document_depth
from .document import KritaHost, StatusSink, _bgra8, frame_bgra8
from .preview import LIVE_LAYER_NAME, PreviewLayer, top_level_nodes
from .undo_steps import UndoSteps


class LiveLayer(PreviewLayer):
    """The "[Live]" layer of one document and the picture it shows now (bgra8, full size)."""

    NAME = LIVE_LAYER_NAME

    def __init__(self, document: Any, *, undo_steps: UndoSteps | None = None) -> None:
        super().__init__(document, to_document_depth=self._to_depth, undo_steps=undo_steps)
        self.picture: Pixels | None = None
        self.final = False  # the picture is a finished job's result, not a step
        self._made = False

    @property
    def gone(self) -> bool:
        """The layer was made and is no longer in the document (the painter undid or deleted it)."""
        return self._made and self.node is None

    def show_picture(self, pixels: Pixels, *, final: bool) -> bool:
        """Show bgra8 ``pixels`` (full size over their bounds); False when the layer is gone."""
        if self.gone:
            return False
        self.show(pixels.bounds, pixels.data)
        self._made = True
        self.picture, self.final = pixels, final
        return True

    def remove(self) -> bool:
        removed = super().remove()
        self.picture, self.final, self._made = None, False, False
        return removed

    def _to_depth(self, bgra8: bytes) -> bytes:
        return to_document_depth(bgra8, ColorSpace(str(self._doc.colorModel()), str(self._doc.colorDepth())))


class LiveHost(KritaHost):
    """``Host`` for one live job: previews and the result go into the shared live layer, nothing else is added.

    ``on_frame(final)`` is called after each picture reached the layer (live mode times them)."""

    def __init__(self, document: Any, layer: LiveLayer, *, status: StatusSink | None = None,
                 on_frame: Callable[[bool], None] | None = None) -> None:
        super().__init__(document, batch=1, status=status)
        self.layer = layer
        self.stale = False  # superseded by a newer live job: drop whatever still arrives
        self._on_frame = on_frame

    def show_preview(self, pixels: Pixels) -> None:
        if not self.stale:
            self._put(Pixels(pixels.bounds, "bgra8", frame_bgra8(pixels)), final=False)

    def add_result_layer(self, name: str, pixels: Pixels) -> Any:
        if self.stale:
            return None
        self.results.append((name, pixels))
        self._put(Pixels(pixels.bounds, "bgra8", _bgra8(pixels)), final=True)
        return self.layer.node

    def remove_preview(self) -> None:
        """A live job's end leaves the live picture where it is (the layer goes when live is turned off)."""

    def report_status(self, text: str, progress: float | None = None) -> None:
        if not self.stale:
            super().report_status(text, progress)

    def _own_nodes(self) -> list[Any]:
        return [self.preview.node, self.layer.node]  # a live job must not read the last live picture back

    def _put(self, pixels: Pixels, *, final: bool) -> None:
        if self.layer.show_picture(pixels, final=final) and self._on_frame is not None:
            self._on_frame(final)


def apply_picture(document: Any, layer: LiveLayer, name: str) -> Any:
    """The live layer's current picture as a new, normal paint layer right under it: one "Add Layer" step.

    Returns the new node, or None when there is no picture yet."""
    picture = layer.picture
    live = layer.node
    if picture is None or live is None:
        return None
    active = document.activeNode()  # the painter's layer: their next stroke goes there, not onto the copy
    node = document.createNode(name, "paintlayer")
    node.setPixelData(layer._to_depth(picture.data), *picture.bounds.xywh())
    nodes = top_level_nodes(document)
    uid = live.uniqueId()
    index = next(i for i, n in enumerate(nodes) if n.uniqueId() == uid)
    # addChildNode(child, above) puts child above ``above``: the node under the live layer keeps it on top
    document.rootNode().addChildNode(node, nodes[index - 1] if index > 0 else None)
    document.refreshProjection()
    document.waitForDone()  # Krita 6 lands the new layer's pixels asynchronously: a check must see them done
    if active is not None and active.uniqueId() != node.uniqueId():
        document.setActiveNode(active)
    return node
