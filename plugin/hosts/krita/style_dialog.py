"""The style editor: one small dialog over a ``Style`` that saves into the painter's style folder.

Editing a built-in saves a user copy of the same name, which then replaces the built-in (``core/styles.py``);
the plugin's own folder is never written. Models and LoRAs are text: names separated by commas, a LoRA as
``name:weight``.
"""

from __future__ import annotations

from pathlib import Path

from latentbrush.plugin.core.styles import LiveStyle, Style, StyleError, save_style, style_from_dict, style_to_dict
from latentbrush.protocol import JobRequest, LoraRef, field_range

from ...qt import QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QSpinBox, QtWidgets

QDialog = QtWidgets.QDialog
QDialogButtonBox = QtWidgets.QDialogButtonBox
KEEP = "keep"  # what an unset sampler, steps or CFG shows: the docker's own value is kept


def parse_models(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_loras(text: str) -> tuple[LoraRef, ...]:
    """``name:weight, name`` (weight 1 when left out); StyleError naming ``loras`` for a bad weight."""
    low, high = field_range(LoraRef, "weight")
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, colon, weight = item.rpartition(":")
        if not colon:
            name, weight = item, "1"
        try:
            value = float(weight)
        except ValueError:
            raise StyleError(f"{item!r}: the weight after ':' must be a number", "loras") from None
        if not name.strip() or not low <= value <= high:
            raise StyleError(f"{item!r}: expected name:weight with a weight in {low}..{high}", "loras")
        out.append(LoraRef(name.strip(), value))
    return tuple(out)


def format_loras(loras: tuple[LoraRef, ...]) -> str:
    return ", ".join(f"{lora.name}:{lora.weight:g}" for lora in loras)


def _text_box(text: str, lines: int) -> QPlainTextEdit:
    box = QPlainTextEdit(text)
    box.setTabChangesFocus(True)
    box.setFixedHeight(box.fontMetrics().lineSpacing() * lines + 12)
    return box


def _sampler_box(samplers: tuple[str, ...], current: str) -> QComboBox:
    box = QComboBox()
    box.setEditable(True)  # a sampler another server has may be typed in
    box.addItem(KEEP, "")
    for name in dict.fromkeys((*samplers, current)):
        if name:
            box.addItem(name, name)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box


def _steps_box(value: int | None) -> QSpinBox:
    """Steps, with one below the protocol's minimum meaning "keep"."""
    box = QSpinBox()
    low, high = field_range(JobRequest, "steps")
    box.setRange(low - 1, high)
    box.setSpecialValueText(KEEP)
    box.setValue(low - 1 if value is None else value)
    return box


def _cfg_box(value: float | None) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    low, high = field_range(JobRequest, "cfg")
    box.setSingleStep(0.5)
    box.setRange(low - 0.5, high)  # the protocol allows CFG 0, so "keep" sits below it
    box.setSpecialValueText(KEEP)
    box.setValue(low - 0.5 if value is None else value)
    return box


def _sampler_of(box: QComboBox) -> str:
    text = box.currentText().strip()
    return "" if text == KEEP else text


def _steps_of(box: QSpinBox) -> int | None:
    return None if box.value() == box.minimum() else box.value()


def _cfg_of(box: QDoubleSpinBox) -> float | None:
    return None if box.value() == box.minimum() else round(box.value(), 2)


class StyleDialog(QDialog):
    """Edit ``style`` (a new one: ``Style("New style")``); OK saves to ``user_dir`` and keeps the result in
    ``saved``. A style that would not load again (empty name, bad LoRA text) is refused with the reason."""

    def __init__(self, style: Style, user_dir: Path, samplers: tuple[str, ...] = (), parent: object = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("latentbrush: edit style")
        self.setObjectName("latentbrush_style_dialog")
        self.user_dir = user_dir
        self.original = style
        self.saved: Style | None = None
        self.name = QLineEdit(style.name)
        self.description = QLineEdit(style.description)
        self.template = _text_box(style.prompt, 3)
        self.template.setToolTip("{prompt} is replaced by your prompt; without it your prompt comes first, then "
                                 "this after a comma")
        self.negative = _text_box(style.negative_prompt, 2)
        self.sampler = _sampler_box(samplers, style.sampler)
        self.steps = _steps_box(style.steps)
        self.cfg = _cfg_box(style.cfg)
        self.live_sampler = _sampler_box(samplers, style.live.sampler)
        self.live_steps = _steps_box(style.live.steps)
        self.live_cfg = _cfg_box(style.live.cfg)
        self.models = QLineEdit(", ".join(style.models))
        self.models.setPlaceholderText("model names, the first the server has is used (empty: the chosen model)")
        self.loras = QLineEdit(format_loras(style.loras))
        self.loras.setPlaceholderText("name:weight, ... (only those the server offers are used)")
        self.error = QLabel()
        self.error.setObjectName("latentbrush_style_error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c33")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        form = QFormLayout(self)
        for label, widget in (("Name", self.name), ("Description", self.description), ("Prompt template",
                              self.template), ("Negative prompt", self.negative), ("Sampler", self.sampler),
                              ("Steps", self.steps), ("CFG", self.cfg), ("Live sampler", self.live_sampler),
                              ("Live steps", self.live_steps), ("Live CFG", self.live_cfg),
                              ("Models", self.models), ("LoRAs", self.loras)):
            form.addRow(label, widget)
        form.addRow(self.error)
        form.addRow(buttons)

    def style(self) -> Style:
        """The style as edited; StyleError naming the field when it would not load."""
        edited = Style(
            name=self.name.text().strip(), description=self.description.text().strip(),
            models=parse_models(self.models.text()), loras=parse_loras(self.loras.text()),
            prompt=self.template.toPlainText().strip(), negative_prompt=self.negative.toPlainText().strip(),
            sampler=_sampler_of(self.sampler), steps=_steps_of(self.steps), cfg=_cfg_of(self.cfg),
            live=LiveStyle(_sampler_of(self.live_sampler), _steps_of(self.live_steps), _cfg_of(self.live_cfg)),
        )
        return style_from_dict(style_to_dict(edited))  # the checks a file gets

    def accept(self) -> None:
        try:
            self.saved = save_style(self.style(), self.user_dir)
        except (StyleError, OSError) as exc:
            self.error.setText(f"Not saved: {exc}")
            return
        super().accept()
