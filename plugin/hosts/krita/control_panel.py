"""The docker's control-layer list (Generate tab): controls, references and regions, each a row (``control_row.py``).

The list knows the server's modes (hello) and the active document's layers; it hands the enabled rows to
the Generate tab as ``ControlSpec``s / ``ReferenceSpec``s. Layers are listed afresh when a layer list
opens, when the docker shows a document, and once a second while the docker is visible (Krita's Python
API has no "layers changed" signal), only rebuilding the lists when the layer stack really changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latentbrush.plugin.core.requests import ControlSpec, ReferenceSpec, RegionSpec

from ...qt import QHBoxLayout, QLabel, QTimer, QToolButton, QVBoxLayout, QWidget, pyqtSignal
from .control_modes import control_modes
from .control_row import ControlRow, ReferenceRow, RegionRow, SourceRow
from .layers import LayerSource, layer_choices

LAYER_POLL_MS = 1000


class ControlList(QWidget):
    """``make_image_requested(row)``: the painter pressed "make control image from canvas" on a control row."""

    make_image_requested = pyqtSignal(object)
    changed = pyqtSignal()

    def __init__(self, document: Callable[[], Any] = lambda: None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("latentbrush_controls")
        self._document = document
        self._hello: Any = None
        self._model = ""
        self._running = False
        self._layers: list[tuple[str, LayerSource]] = []
        self.rows: list[SourceRow] = []

        self.add_control = QToolButton()
        self.add_control.setText("+ Control")
        self.add_control.setObjectName("latentbrush_add_control")
        self.add_control.setToolTip("Steer the picture with a layer: a scribble, line art, edges, a depth map…")
        self.add_reference = QToolButton()
        self.add_reference.setText("+ Reference")
        self.add_reference.setObjectName("latentbrush_add_reference")
        self.add_reference.setToolTip("Make the picture resemble a layer, or take its style or layout")
        self.add_region = QToolButton()
        self.add_region.setText("+ Region")
        self.add_region.setObjectName("latentbrush_add_region")
        self.add_region.setToolTip("Give part of the picture a prompt of its own: where a layer is opaque")
        self.add_control.clicked.connect(lambda _checked=False: self.add_control_row())
        self.add_region.clicked.connect(lambda _checked=False: self.add_region_row())
        self.add_reference.clicked.connect(lambda _checked=False: self.add_reference_row())

        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Controls</b>"), 1)
        header.addWidget(self.add_control)
        header.addWidget(self.add_reference)
        header.addWidget(self.add_region)
        self._rows = QVBoxLayout()
        self._rows.setContentsMargins(0, 0, 0, 0)
        self._rows.setSpacing(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addLayout(self._rows)

        self._poll = QTimer(self)
        self._poll.setInterval(LAYER_POLL_MS)
        self._poll.timeout.connect(self.refresh_layers)

    # ----------------------------------------------------------------------------- rows

    def add_control_row(self, mode: str = "", source: object = None) -> ControlRow:
        """A new control row (first mode that steers the model, the current layer, unless given)."""
        row = ControlRow()
        row.set_modes(control_modes(self._hello, self._model))
        if mode:
            row.select_mode(mode)
        row.make_image_requested.connect(self.make_image_requested.emit)
        row.set_busy(self._running)
        return self._add(row, source)

    def add_reference_row(self, mode: str = "", source: object = None) -> ReferenceRow:
        row = ReferenceRow()
        if mode:
            row.select_mode(mode)
        return self._add(row, source)

    def add_region_row(self, prompt: str = "", source: object = None) -> RegionRow:
        row = RegionRow()
        row.prompt.setText(prompt)
        return self._add(row, source)

    def _add(self, row: Any, source: object) -> Any:
        row.layer.set_layers(self._layers)
        if source is not None:
            row.layer.set_source(source)
        row.layer.opening.connect(self.refresh_layers)
        row.remove_requested.connect(self.remove_row)
        row.changed.connect(self.changed.emit)
        self.rows.append(row)
        self._rows.addWidget(row)
        self.changed.emit()
        return row

    def remove_row(self, row: SourceRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
            self._rows.removeWidget(row)
            row.setParent(None)
            row.deleteLater()
            self.changed.emit()

    # ----------------------------------------------------------------------------- values

    def controls(self) -> tuple[ControlSpec, ...]:
        """The enabled control rows, top to bottom."""
        return tuple(s for r in self.rows if isinstance(r, ControlRow) and (s := r.spec()) is not None)

    def references(self) -> tuple[ReferenceSpec, ...]:
        return tuple(s for r in self.rows if isinstance(r, ReferenceRow) and (s := r.spec()) is not None)

    def regions(self) -> tuple[RegionSpec, ...]:
        return tuple(s for r in self.rows if isinstance(r, RegionRow) and (s := r.spec()) is not None)

    # ----------------------------------------------------------------------------- server and document

    def set_server_info(self, hello: Any) -> None:
        """The modes a connected server offers (None: disconnected, the known modes stay offered)."""
        self._hello = hello
        self._update_modes()

    def set_model(self, model: str) -> None:
        """The model the painter picked: the modes that steer it move to the top."""
        self._model = model
        self._update_modes()

    def _update_modes(self) -> None:
        choices = control_modes(self._hello, self._model)
        for row in self.rows:
            if isinstance(row, ControlRow):
                row.set_modes(choices)

    def set_document_source(self, document: Callable[[], Any]) -> None:
        """Where the layers come from: the docker's active document."""
        self._document = document
        self.refresh_layers()

    def refresh_layers(self) -> None:
        """List the active document's layers in every row, when they changed since the last look."""
        choices = layer_choices(self._document())
        if [(label, s.uid) for label, s in choices] == [(label, s.uid) for label, s in self._layers]:
            return
        self._layers = choices
        for row in self.rows:
            row.layer.set_layers(choices)

    def set_running(self, running: bool) -> None:
        """One job at a time: "make control image" waits for the running job as Generate does."""
        self._running = running
        for row in self.rows:
            if isinstance(row, ControlRow):
                row.set_busy(running)

    def showEvent(self, event: Any) -> None:  # Qt calls it when the docker shows
        self.refresh_layers()
        self._poll.start()
        super().showEvent(event)

    def hideEvent(self, event: Any) -> None:
        self._poll.stop()
        super().hideEvent(event)
