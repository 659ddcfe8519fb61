"""The single locked "[Preview]" paint layer that shows a running job's denoising steps.

Undo, as measured in Krita 5.1.5 (``tests/e2e/krita``): ``addChildNode`` records an "Add Layer"
command and ``Node.remove()`` a "Remove Layer" command; ``setPixelData``, ``setLocked``,
``setName`` and ``setVisible`` record nothing. The Python API has no way to add or remove a
node outside the undo stack (``setChildNodes`` on the root reorders layers and trips Krita's
asserts), so:

- a job with one result turns the preview layer *into* the result layer (``adopt``): renamed,
  unlocked, cleared and overwritten. The job is one "Add Layer" step; Ctrl+Z removes the result.
- a cancelled or failed job (and a batch or an upscale) takes the preview's own "Add Layer" step
  back with Undo (``undo_steps.py``): no undo entry is left. Only when the painter made a step of
  their own after the preview appeared is it removed instead ("Add Layer" + "Remove Layer"). The
  layer is emptied and hidden first, so undo or redo never brings back a stale picture.
"""

from __future__ import annotations

from typing import Any

from latentbrush.protocol.geometry import Rect, union

from .undo_steps import UndoSteps, take_back_added_node

PREVIEW_LAYER_NAME = "[Preview]"
LIVE_LAYER_NAME = "[Live]"  # live mode's layer (live_layer.py)
OWN_LAYER_NAMES = (PREVIEW_LAYER_NAME, LIVE_LAYER_NAME)  # layers the plugin made: never a control, never watched


def top_level_nodes(document: Any) -> list[Any]:
    return list(document.rootNode().childNodes())


def is_attached(document: Any, node: Any) -> bool:
    """Whether ``node`` is still a top-level node of ``document`` (undo may have removed it)."""
    uid = node.uniqueId()
    return any(n.uniqueId() == uid for n in top_level_nodes(document))


class PreviewLayer:
    """Owns at most one preview node in one document; every write is at canvas coordinates."""

    NAME = PREVIEW_LAYER_NAME  # the live layer (live_layer.py) is the same mechanics under another name

    def __init__(self, document: Any, *, to_document_depth: Any = None, undo_steps: UndoSteps | None = None) -> None:
        self._doc = document
        self._undo = undo_steps
        self._node: Any = None
        self._painted = Rect(0, 0, 0, 0)  # union of what the preview has drawn since it was made
        self._widen = to_document_depth or (lambda data: data)
        self.frames_shown = 0

    @property
    def node(self) -> Any:
        """The live preview node, or None (never made, removed, or undone away)."""
        if self._node is not None and not is_attached(self._doc, self._node):
            self._node, self._painted = None, Rect(0, 0, 0, 0)
        return self._node

    def show(self, bounds: Rect, bgra: bytes) -> None:
        """Draw 8-bit BGRA ``bgra`` covering ``bounds``; creates the layer on the first frame.

        setPixelData replaces pixels, alpha included: a masked job's frame (the composite alpha, SPEC 10.1)
        shows clipped to the selection with the result's soft edge, and the canvas shows where it is 0."""
        node = self.node or self._create()
        stale = self._painted
        if not stale.is_empty() and union(stale, bounds) != bounds:
            # the previous frame reached outside this one: clear it so no stale border remains
            node.setPixelData(self._widen(bytes(stale.width * stale.height * 4)), *stale.xywh())
        node.setPixelData(self._widen(bgra), *bounds.xywh())
        self._painted = bounds
        self.frames_shown += 1
        self._doc.refreshProjection()  # Krita does not recomposite after setPixelData by itself

    def remove(self) -> bool:
        """Remove the layer if it exists; returns whether there was one."""
        node = self.node
        if node is None:
            return False
        self._clear(node)
        node.setVisible(False)  # what an undo (or redo) past this point brings back: nothing to see
        self._node = None
        if not take_back_added_node(self._undo, self._doc, lambda: is_attached(self._doc, node)):
            node.remove()
        self._doc.refreshProjection()
        return True

    def adopt(self, name: str) -> Any:
        """Turn the preview into an empty, unlocked layer called ``name``; None if there is none."""
        node = self.node
        if node is None:
            return None
        self._clear(node)
        node.setLocked(False)
        node.setName(name)
        self._node = None
        return node

    def _clear(self, node: Any) -> None:
        stale = self._painted
        if not stale.is_empty():
            node.setPixelData(self._widen(bytes(stale.width * stale.height * 4)), *stale.xywh())
        self._painted = Rect(0, 0, 0, 0)

    def _create(self) -> Any:
        active = self._doc.activeNode()  # Krita 6 makes an added layer the active one: a locked one, ours
        node = self._doc.createNode(self.NAME, "paintlayer")
        node.setLocked(True)  # the painter cannot draw on it by mistake
        self._doc.rootNode().addChildNode(node, None)  # None = on top of the stack
        if active is not None:
            self._doc.setActiveNode(active)  # the painter's next stroke still lands on their layer
        self._node = node
        self._painted = Rect(0, 0, 0, 0)
        return node
