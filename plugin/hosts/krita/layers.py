"""Krita layers as control and reference sources: how a control row names a layer, and finding it again.

A row keeps a layer by its ``uniqueId`` (stable while the document is open, across renames and moves),
plus the name it had, so a layer deleted since can be named in the message. ``CURRENT_LAYER`` stands for
the document's current layer, resolved when the job reads it. (The visible canvas, what "make control image
from canvas" reads when the row has no layer of its own, is the core's ``ControlSpec.source`` None.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .preview import OWN_LAYER_NAMES

CURRENT_LAYER = "current-layer"
MASK_TYPES = ("selectionmask", "transparencymask", "filtermask", "transformmask", "colorizemask")


class ControlLayerMissing(LookupError):
    """A control or reference row names a layer that is not in the document (any more)."""


@dataclass(frozen=True)
class LayerSource:
    uid: str  # the node's uniqueId as text
    name: str  # its name when it was picked (for messages)


def node_id(node: Any) -> str:
    """A node's uniqueId as text: Krita hands out a QUuid, the test fake a uuid.UUID."""
    uid = node.uniqueId()
    return str(uid.toString()) if hasattr(uid, "toString") else str(uid)


def walk(root: Any, depth: int = 0) -> Iterator[tuple[Any, int]]:
    """Every layer under ``root`` with its depth, top of the stack first (as the Layers docker lists them);
    masks and our preview and live layers are left out."""
    for node in reversed(list(root.childNodes())):
        if str(node.type()) in MASK_TYPES or str(node.name()) in OWN_LAYER_NAMES:
            continue
        yield node, depth
        yield from walk(node, depth + 1)


def find_node(document: Any, uid: str) -> Any:
    """The layer with uniqueId ``uid`` in ``document``, or None."""
    return next((node for node, _ in walk(document.rootNode()) if node_id(node) == uid), None)


def layer_choices(document: Any) -> list[tuple[str, LayerSource]]:
    """(label, source) for each layer of ``document``, indented by group depth; none without a document."""
    if document is None:
        return []
    return [("  " * depth + str(node.name()), LayerSource(node_id(node), str(node.name())))
            for node, depth in walk(document.rootNode())]


def resolve(document: Any, source: object) -> Any:
    """The node a row's source means now: ``LayerSource`` (or a bare uid) or ``CURRENT_LAYER``.

    Raises ``ControlLayerMissing`` in words for the painter when there is none.
    """
    if source == CURRENT_LAYER:
        node = document.activeNode()
        if node is None or str(node.name()) in OWN_LAYER_NAMES:
            raise ControlLayerMissing("No layer is selected for the control: pick one in the Layers docker "
                                      "or choose a layer in the control list")
        return node
    if isinstance(source, LayerSource):
        uid, name = source.uid, source.name
    elif isinstance(source, str):
        uid, name = source, source
    else:
        raise TypeError(f"a Krita control source is a layer or {CURRENT_LAYER!r}, not {type(source).__name__}")
    node = find_node(document, uid)
    if node is None:
        raise ControlLayerMissing(f"The control layer '{name}' no longer exists: choose another layer "
                                  f"in the control list")
    return node
