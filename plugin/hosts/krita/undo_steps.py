"""Taking back the preview layer's own "Add Layer" undo step, so a job that produced nothing leaves none.

Krita's Python API records an undo step for every node it adds (``addChildNode``) or removes
(``Node.remove``) and has no call that adds or removes a top-level node outside the undo stack
(``setChildNodes`` removes only the first child and appends the rest on top: it reorders the
painter's layers). What it does have are the Undo and Redo actions. So when a job ends without a
result, the preview is emptied and hidden, and then Undo is triggered on its document: if that step
was the preview's "Add Layer" (the preview is gone afterwards) the undo history is as before the
job, with one redo step that would bring back an empty, hidden layer until the next edit clears it.
If the painter did something after the preview appeared, Undo took *that* back: Redo restores it at
once and the preview is removed the usual way (two steps), so no edit of the painter's is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class UndoSteps(Protocol):
    """Undo / redo the last step of a document; ``undo`` returns False when it cannot try."""

    def undo(self, document: Any) -> bool: ...

    def redo(self, document: Any) -> None: ...


class KritaUndoSteps:
    """Krita's Edit > Undo / Redo actions, only for the active document (that is what they act on)."""

    def __init__(self, app: Callable[[], Any] | None = None) -> None:
        self._app = app or _krita

    def _actions(self, document: Any) -> tuple[Any, Any] | None:
        app = self._app()
        action = getattr(app, "action", None)
        if action is None or document is None or app.activeDocument() != document:
            return None
        undo, redo = action("edit_undo"), action("edit_redo")
        return None if undo is None or redo is None else (undo, redo)

    def undo(self, document: Any) -> bool:
        actions = self._actions(document)
        if actions is None or not actions[0].isEnabled():
            return False
        actions[0].trigger()
        document.waitForDone()
        return True

    def redo(self, document: Any) -> None:
        actions = self._actions(document)
        if actions is not None:
            actions[1].trigger()
            document.waitForDone()


def take_back_added_node(steps: UndoSteps | None, document: Any, is_attached: Callable[[], bool]) -> bool:
    """Undo the step that added a node (True: ``is_attached()`` is now False); any other step is redone."""
    if steps is None or not steps.undo(document):
        return False
    if not is_attached():
        return True
    steps.redo(document)  # the last step was the painter's, not the preview's: put it back
    return False


def _krita() -> Any:
    from krita import Krita

    return Krita.instance()
