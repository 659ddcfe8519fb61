"""One row of the docker's control list: a control (ControlNet), a reference (IP-Adapter) or a region (a prompt
of its own where a layer is opaque) and its settings.

A row is an on/off box, a mode, a layer ("Current layer" or one of the document's), a strength slider and,
for a control, the range of steps it steers and "make control image from canvas". It only holds what the
painter chose; ``spec()`` turns that into the core's ``ControlSpec`` / ``ReferenceSpec``.
"""

from __future__ import annotations

from typing import Any

from latentbrush.plugin.core.requests import ControlSpec, ReferenceSpec, RegionSpec

from ...qt import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    Qt,
    QToolButton,
    pyqtSignal,
)
from .control_modes import MODE_HINTS, REFERENCE_MODES, ModeChoice, control_modes
from .layers import CURRENT_LAYER, LayerSource

STRENGTH_STEPS = 100  # slider units per 1.0 of strength (weight 0..2)
RANGE_STEPS = 100  # slider units over the whole denoising run
MISSING = " (deleted)"


class LayerCombo(QComboBox):
    """"Current layer" and the document's layers; asks for a fresh list each time it opens."""

    opening = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("latentbrush_control_layer")
        self.setToolTip("The layer this row reads: its own pixels, also while it is hidden")
        self.addItem("Current layer", CURRENT_LAYER)

    def showPopup(self) -> None:
        self.opening.emit()
        super().showPopup()

    def source(self) -> object:
        return self.itemData(self.currentIndex()) if self.currentIndex() >= 0 else CURRENT_LAYER

    def set_layers(self, choices: list[tuple[str, LayerSource]]) -> None:
        """Offer ``choices``; the chosen layer stays chosen, marked as deleted when it is gone."""
        chosen = self.source()
        items: list[tuple[str, object]] = [("Current layer", CURRENT_LAYER), *choices]
        if isinstance(chosen, LayerSource) and all(source.uid != chosen.uid for _, source in choices):
            items.append((chosen.name + MISSING, chosen))
        self.blockSignals(True)
        self.clear()
        for label, source in items:
            self.addItem(label, source)
        self.blockSignals(False)
        self.set_source(chosen, emit=False)

    def set_source(self, source: object, emit: bool = True) -> None:
        index = next((i for i in range(self.count()) if _same(self.itemData(i), source)), -1)
        if index < 0 and isinstance(source, LayerSource):  # not listed yet: the list is refreshed soon
            self.addItem(source.name, source)
            index = self.count() - 1
        self.blockSignals(not emit)
        self.setCurrentIndex(max(0, index))
        self.blockSignals(False)


def _narrow(combo: QComboBox, characters: int) -> QComboBox:
    """A combo as wide as ``characters``, not as its longest item: the docker is narrow, layer names long."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


def _same(a: object, b: object) -> bool:
    if isinstance(a, LayerSource) and isinstance(b, LayerSource):
        return a.uid == b.uid
    return a == b


def _slider(maximum: int, value: int, name: str, tip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, maximum)
    slider.setValue(value)
    slider.setObjectName(name)
    slider.setToolTip(tip)
    return slider


class SourceRow(QFrame):
    """What control and reference rows share. ``changed`` fires on any edit; ``remove_requested(row)``."""

    changed = pyqtSignal()
    remove_requested = pyqtSignal(object)

    kind = ""

    def __init__(self) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"latentbrush_{self.kind}_row")
        self.enabled = QCheckBox()
        self.enabled.setChecked(True)
        self.enabled.setObjectName(f"latentbrush_{self.kind}_enabled")
        self.enabled.setToolTip("On: the next jobs use this row; off: they ignore it")
        self.mode = _narrow(QComboBox(), 8)
        self.mode.setObjectName(f"latentbrush_{self.kind}_mode")
        self.layer = LayerCombo()
        _narrow(self.layer, 8)
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setObjectName(f"latentbrush_{self.kind}_remove")
        self.remove.setToolTip("Remove this row (the layer stays)")
        self.strength = _slider(2 * STRENGTH_STEPS, STRENGTH_STEPS, f"latentbrush_{self.kind}_strength",
                                "How strongly it steers: 0 = not at all, 1 = as trained, up to 2")
        self.strength_label = QLabel()
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(4, 2, 4, 2)
        self.grid.setVerticalSpacing(2)
        self.grid.addWidget(self.enabled, 0, 0)
        self.grid.addWidget(self.mode, 0, 1)
        self.grid.addWidget(self.layer, 0, 2)
        self.grid.addWidget(self.remove, 0, 3)
        self.grid.addWidget(QLabel("Strength"), 1, 1)
        self.grid.addWidget(self.strength, 1, 2)
        self.grid.addWidget(self.strength_label, 1, 3)
        self.grid.setColumnStretch(2, 1)
        self.strength.valueChanged.connect(self._show_strength)
        self.remove.clicked.connect(lambda _checked=False: self.remove_requested.emit(self))
        for signal in (self.enabled.toggled, self.mode.currentIndexChanged, self.layer.currentIndexChanged,
                       self.strength.valueChanged):
            signal.connect(lambda *_: self.changed.emit())
        self.enabled.toggled.connect(self._dim)
        self._show_strength(self.strength.value())

    @property
    def weight(self) -> float:
        return self.strength.value() / STRENGTH_STEPS

    def set_weight(self, weight: float) -> None:
        self.strength.setValue(round(weight * STRENGTH_STEPS))

    def current_mode(self) -> str:
        return str(self.mode.currentData() or "")

    def select_mode(self, mode: str) -> None:
        index = self.mode.findData(mode)
        if index >= 0:
            self.mode.setCurrentIndex(index)

    def _show_strength(self, value: int) -> None:
        self.strength_label.setText(f"{value / STRENGTH_STEPS:.2f}")

    def _dim(self, on: bool) -> None:
        for widget in (self.mode, self.layer, self.strength, self.strength_label):
            widget.setEnabled(on)


class ControlRow(SourceRow):
    """A ControlNet control. ``make_image_requested(row)``: run the mode's preprocessor into a new layer."""

    kind = "control"
    make_image_requested = pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__()
        self._preprocessors: dict[str, str] = {}
        self.ready: LayerSource | None = None  # a layer "make control image" made: already a control image
        self._busy = False  # a job runs: "make control image" waits
        self.start = _slider(RANGE_STEPS, 0, "latentbrush_control_start", "The first step it steers")
        self.end = _slider(RANGE_STEPS, RANGE_STEPS, "latentbrush_control_end", "The last step it steers")
        self.range_label = QLabel()
        self.make_image = QPushButton("Make control image from canvas")
        self.make_image.setObjectName("latentbrush_control_make_image")
        self.grid.addWidget(QLabel("Steps"), 2, 1)
        steps = QGridLayout()
        steps.setContentsMargins(0, 0, 0, 0)
        steps.addWidget(self.start, 0, 0)
        steps.addWidget(self.end, 0, 1)
        self.grid.addLayout(steps, 2, 2)
        self.grid.addWidget(self.range_label, 2, 3)
        self.grid.addWidget(self.make_image, 3, 1, 1, 3)
        self.start.valueChanged.connect(lambda v: self.end.setValue(max(v, self.end.value())))
        self.end.valueChanged.connect(lambda v: self.start.setValue(min(v, self.start.value())))
        for signal in (self.start.valueChanged, self.end.valueChanged):
            signal.connect(self._show_range)
            signal.connect(lambda *_: self.changed.emit())
        self.mode.currentIndexChanged.connect(lambda *_: self._update_make_image())
        self.layer.currentIndexChanged.connect(lambda *_: self._update_make_image())
        self.make_image.clicked.connect(lambda _checked=False: self.make_image_requested.emit(self))
        self._show_range()
        self.set_modes(control_modes(None))

    def set_modes(self, choices: tuple[ModeChoice, ...]) -> None:
        """Offer ``choices`` (control_modes order); the chosen mode stays chosen."""
        current = self.current_mode()
        self._preprocessors = {c.mode: c.preprocessor for c in choices}
        self.mode.blockSignals(True)
        self.mode.clear()
        for choice in choices:
            self.mode.addItem(choice.label, choice.mode)
            self.mode.setItemData(self.mode.count() - 1, MODE_HINTS.get(choice.mode, choice.mode),
                                  Qt.ItemDataRole.ToolTipRole)
        self.mode.blockSignals(False)
        self.select_mode(current)
        self._update_make_image()

    def preprocessor(self) -> str:
        """The server's preprocessor for this row's mode ("" = none, or the layer is already a control image)."""
        source = self.layer.source()
        if self.ready is not None and isinstance(source, LayerSource) and source.uid == self.ready.uid:
            return ""
        return self._preprocessors.get(self.current_mode(), "")

    def spec(self) -> ControlSpec | None:
        """The control for a job, None while the row is off."""
        if not self.enabled.isChecked() or not self.current_mode():
            return None
        return ControlSpec(self.layer.source(), mode=self.current_mode(), preprocessor=self.preprocessor(),
                           weight=self.weight, start=self.start.value() / RANGE_STEPS,
                           end=self.end.value() / RANGE_STEPS)

    def make_image_spec(self) -> ControlSpec | None:
        """The one control a "preprocess" job reads: this row's layer, or (None) the visible canvas when it has none;
        None when the server has no preprocessor for the mode."""
        preprocessor = self._preprocessors.get(self.current_mode(), "")
        if not preprocessor:
            return None
        source = self.layer.source()
        return ControlSpec(source if isinstance(source, LayerSource) else None, mode=self.current_mode(),
                           preprocessor=preprocessor)

    def use_control_image(self, layer: LayerSource) -> None:
        """The row reads ``layer`` (made by "make control image"), as it is: no preprocessor runs on it again."""
        self.ready = layer
        self.layer.set_source(layer)
        self._update_make_image()

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_make_image()

    def _show_range(self, *_: Any) -> None:
        self.range_label.setText(f"{self.start.value()}–{self.end.value()}%")

    def _update_make_image(self) -> None:
        mode, preprocessor = self.current_mode(), self._preprocessors.get(self.current_mode(), "")
        self.make_image.setEnabled(bool(preprocessor) and self.enabled.isChecked() and not self._busy)
        where = "this row's layer" if isinstance(self.layer.source(), LayerSource) else "the visible canvas"
        self.make_image.setToolTip(
            f"Run the {mode} preprocessor on {where} and add the control image as a new layer you can edit"
            if preprocessor else f"The server has no preprocessor for {mode or 'this mode'}: paint the control "
                                 "image yourself")

    def _dim(self, on: bool) -> None:
        super()._dim(on)
        for widget in (self.start, self.end, self.range_label):
            widget.setEnabled(on)
        self._update_make_image()


class ReferenceRow(SourceRow):
    """An IP-Adapter reference image: the whole layer, whatever part of the canvas the job paints."""

    kind = "reference"

    def __init__(self) -> None:
        super().__init__()
        for mode in REFERENCE_MODES:
            self.mode.addItem(mode, mode)
            self.mode.setItemData(self.mode.count() - 1, MODE_HINTS[mode], Qt.ItemDataRole.ToolTipRole)
        self.strength.setToolTip("How much the result takes from the reference: 0 = nothing, up to 2")

    def spec(self) -> ReferenceSpec | None:
        if not self.enabled.isChecked():
            return None
        return ReferenceSpec(self.layer.source(), mode=self.current_mode(), weight=self.weight)


class RegionRow(SourceRow):
    """A region: its own prompt where its layer is opaque (the layer's opacity is the mask; paint it, or fill a
    selection on an empty layer). The Generate tab's prompt paints the rest and is added to each region's."""

    kind = "region"

    def __init__(self) -> None:
        super().__init__()
        self.mode.setVisible(False)  # a region has no mode: the prompt says what goes there
        self.prompt = QLineEdit()
        self.prompt.setObjectName("latentbrush_region_prompt")
        self.prompt.setPlaceholderText("What to paint where this layer is opaque")
        self.grid.addWidget(QLabel("Prompt"), 2, 1)
        self.grid.addWidget(self.prompt, 2, 2, 1, 2)
        self.strength.setToolTip("How much the region's prompt rules there: 0 = not at all, 1 = fully, up to 2")
        self.layer.setToolTip("The layer whose opacity is the region: its own pixels, also while it is hidden")
        self.prompt.textChanged.connect(lambda *_: self.changed.emit())

    def spec(self) -> RegionSpec | None:
        """The region for a job; None while the row is off or has no prompt yet."""
        prompt = self.prompt.text().strip()
        if not self.enabled.isChecked() or not prompt:
            return None
        return RegionSpec(self.layer.source(), prompt, weight=self.weight)

    def _dim(self, on: bool) -> None:
        super()._dim(on)
        self.prompt.setEnabled(on)
