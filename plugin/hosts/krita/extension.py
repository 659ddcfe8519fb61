"""Registration with Krita: the docker factory, the actions and the application-wide session.

``register()`` is called once by the bundle's ``latentbrush/__init__.py`` when Krita loads the
plugin. It builds the one ``KritaSession`` and hands it to the docker factory and the extension
(no module-level singleton: everything hangs off the objects Krita keeps alive).
"""

from __future__ import annotations

from typing import Any

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .actions import ACTIONS, MENU_LOCATION
from .docker import DOCKER_ID, LatentbrushDocker
from .session import KritaSession


class LatentbrushExtension(Extension):
    """Creates the actions in every window and shuts the session down when Krita closes."""

    def __init__(self, app: Any, session: KritaSession) -> None:
        super().__init__(app)
        self.app = app
        self.session = session

    def setup(self) -> None:
        self.app.notifier().applicationClosing.connect(self.session.shutdown)

    def createActions(self, window: Any) -> None:
        # Krita's Window wrapper is deleted after this call; its QMainWindow lives with the window.
        qwindow = window.qwindow()
        for spec in ACTIONS:
            action = window.createAction(spec.id, spec.text, MENU_LOCATION)
            action.triggered.connect(lambda _checked=False, w=qwindow, op=spec.operation: self.trigger(w, op))

    def trigger(self, qwindow: Any, operation: str) -> None:
        docker = find_docker(qwindow)
        if docker is None:
            self.session.status_changed.emit("Open the latentbrush docker (Settings > Dockers) first", None)
            return
        docker.trigger(operation)


def find_docker(window: Any) -> LatentbrushDocker | None:
    """The latentbrush docker of a Krita ``Window`` or its QMainWindow (every window has its own)."""
    qwindow = window.qwindow() if hasattr(window, "qwindow") else window
    if qwindow is None:
        return None
    found = qwindow.findChildren(LatentbrushDocker)
    return found[0] if found else None


def register(app: Any = None) -> LatentbrushExtension:
    """Register the docker and the extension with Krita; returns the extension (holds the session)."""
    app = app or Krita.instance()
    session = KritaSession(app)
    # Krita 6 (PyQt6) only knows the scoped name; Krita 5's sip module knows both.
    positions = getattr(DockWidgetFactoryBase, "DockPosition", DockWidgetFactoryBase)
    app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, positions.DockRight, lambda: LatentbrushDocker(session, app)))
    extension = LatentbrushExtension(app, session)
    app.addExtension(extension)
    return extension
