"""Live mode's change detection: has anything a live job would read changed since the last job?

Krita's Python API has no "document changed" signal (its ``Notifier`` only reports documents and windows
opening, saving and closing), and the projection includes the live layer itself (opaque over the
selection, so the painter's strokes under it would not show there). So live mode polls, and each check
looks only at what the painter changes, at a bounded cost:

- the canvas size, the selection's bounds, and the layer stack (every layer's id, visibility, opacity
  and blending mode; ours left out): metadata calls, no pixels;
- the *active* layer's own pixels over the live job's context box (strokes land on the active layer),
  hashed with CRC-32: the whole box when it has at most ``READ_BUDGET`` pixels, else ``READ_BUDGET``
  pixels of evenly spaced full-width rows of it. No check reads a large canvas at full resolution: on a
  1024x768 canvas without a selection a check reads 64 of its 768 rows of the active layer.

The other layers' hashes are taken once (``baseline``, when live is turned on or after Apply) and kept;
a layer changes only while it is the active one. A stroke that crosses none of the sampled rows (a thin
horizontal line on a large context) is missed until the next change; the cost per check is measured in
real Krita by ``tests/e2e/krita/scripts/live_e2e.py``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from latentbrush.protocol.geometry import Rect, intersect

from .layers import node_id, walk

READ_BUDGET = 64 * 1024  # pixels of the active layer one check reads at most (256 KiB of 8-bit BGRA)
PIXEL_TYPES = ("paintlayer",)  # layers whose own pixels the painter paints; the others change by properties


@dataclass(frozen=True)
class Signature:
    """What a check saw; two equal signatures mean nothing a live job reads has changed."""

    canvas: tuple[int, int]
    selection: tuple[int, int, int, int] | None
    layers: tuple[tuple[str, bool, float, str], ...]  # (uid, visible, opacity, blending) top of the stack first
    pixels: tuple[tuple[str, int], ...]  # (uid, sampled hash) of each paint layer, in the same order


def describe_change(before: tuple[Any, ...], after: tuple[Any, ...]) -> str:
    """Which parts of two checks' views differ ("pixels", "selection", "settings", ...), for the log."""
    names = [f.name for f in fields(Signature)]
    parts = [name for name in names if getattr(before[0], name) != getattr(after[0], name)]
    if tuple(before[1:]) != tuple(after[1:]):
        parts.append("settings")
    return ", ".join(parts) or "nothing"


def sample_rows(box: Rect, budget: int = READ_BUDGET) -> list[int]:
    """The rows of ``box`` a check reads: all of them, or evenly spaced ones holding at most ``budget`` pixels."""
    if box.is_empty():
        return []
    count = max(1, min(box.height, budget // max(1, box.width)))
    if count >= box.height:
        return list(range(box.y, box.bottom))
    step = box.height / count
    return [box.y + int(i * step + step / 2) for i in range(count)]


def pixel_hash(node: Any, box: Rect, budget: int = READ_BUDGET) -> int:
    """CRC-32 of ``node``'s own pixels in ``box`` (sampled rows when the box is larger than ``budget``)."""
    rows = sample_rows(box, budget)
    if len(rows) == box.height:
        return zlib.crc32(bytes(node.pixelData(*box.xywh())))
    crc = 0
    for y in rows:
        crc = zlib.crc32(bytes(node.pixelData(box.x, y, box.width, 1)), crc)
    return crc


class CanvasWatch:
    """Checks one document; ``box_for(selection_bounds)`` is the live job's context box for that selection
    (called on every check: it should be cached, as the plan behind it reads the selection's pixels)."""

    def __init__(self, document: Any, box_for: Callable[[Rect | None], Rect], budget: int = READ_BUDGET) -> None:
        self._doc = document
        self._box_for = box_for
        self._budget = budget
        self._hashes: dict[str, int] = {}
        self._box: Rect | None = None
        self._painting = ""  # the painter's active layer: the last active one that is not ours

    def selection_bounds(self) -> Rect | None:
        sel = self._doc.selection()
        if sel is None or sel.width() <= 0 or sel.height() <= 0:
            return None
        return Rect(int(sel.x()), int(sel.y()), int(sel.width()), int(sel.height()))

    def baseline(self) -> Signature:
        """A signature that hashes every paint layer again (turning live on, after Apply): not for every check."""
        self._hashes.clear()
        return self._signature(everything=True)

    def signature(self) -> Signature:
        """One check: metadata of every layer, the pixels of the active one only."""
        return self._signature(everything=False)

    def _signature(self, *, everything: bool) -> Signature:
        canvas = (int(self._doc.width()), int(self._doc.height()))
        selection = self.selection_bounds()
        box = self._context(canvas, selection)
        nodes = [node for node, _ in walk(self._doc.rootNode())]
        active = self._doc.activeNode()
        ids = {node_id(node) for node in nodes}
        if active is not None and node_id(active) in ids:
            self._painting = node_id(active)  # else the active layer is ours (or none): the painter's stays
        layers, pixels = [], []
        for node in nodes:
            uid = node_id(node)
            layers.append((uid, bool(node.visible()), float(node.opacity()), str(node.blendingMode())))
            if str(node.type()) not in PIXEL_TYPES:
                continue
            if everything or uid == self._painting or uid not in self._hashes:
                self._hashes[uid] = pixel_hash(node, box, self._budget)
            pixels.append((uid, self._hashes[uid]))
        return Signature(canvas, None if selection is None else selection.xywh(), tuple(layers), tuple(pixels))

    def _context(self, canvas: tuple[int, int], selection: Rect | None) -> Rect:
        box = intersect(self._box_for(selection), Rect(0, 0, *canvas))  # the caller caches its plans
        if box != self._box:
            self._box = box
            self._hashes.clear()  # hashes of another box: every layer is hashed again, once
        return box
