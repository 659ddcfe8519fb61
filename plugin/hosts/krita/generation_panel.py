"""The docker's Generate tab (model, prompts, the primary action, operations, settings) and its Upscale tab."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentbrush.plugin.core.requests import GenerationSettings, is_refiner, refiners_for
from latentbrush.plugin.core.styles import Style, apply_style
from latentbrush.protocol import JobRequest, Limits, UpscaleParams, field_range

from ...qt import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .control_panel import ControlList
from .settings import DockerSettings
from .style_picker import StylePicker

DEFAULT_SAMPLERS = ("Euler a", "Euler", "DPM++ 2M Karras", "DDIM", "UniPC")
MAX_SPIN_INT = 2**31 - 1  # QSpinBox holds a signed 32-bit int; the protocol's seed goes to 2^32-1
MIN_STRENGTH_PERCENT = 1  # a refine at 0% would change nothing
# docker buttons -> the controller's operation names (None: chosen from the selection)
OPERATIONS = {"generate": "txt2img", "inpaint": "inpaint", "refine": "img2img", "upscale": "upscale"}


def _prompt_box(placeholder: str, lines: int) -> QPlainTextEdit:
    box = QPlainTextEdit()
    box.setPlaceholderText(placeholder)
    box.setTabChangesFocus(True)
    box.setFixedHeight(box.fontMetrics().lineSpacing() * lines + 12)
    return box


def _make_primary(button: QPushButton) -> None:
    """A tab's main action: twice a normal button's height, bold and a little larger."""
    normal = button.sizeHint().height()
    font = button.font()
    font.setBold(True)
    if font.pointSizeF() > 0:
        font.setPointSizeF(font.pointSizeF() * 1.2)
    button.setFont(font)
    button.setMinimumHeight(2 * normal)
    button.setDefault(True)


def _row(first: QWidget, *rest: QWidget) -> QHBoxLayout:
    """Widgets side by side on one form line, the first taking the spare width."""
    row = QHBoxLayout()
    row.addWidget(first, 1)
    for widget in rest:
        row.addWidget(widget)
    return row


class GenerationPanel(QWidget):
    """Emits ``operation_requested(name)`` with a key of ``OPERATIONS``."""

    operation_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.style_picker = StylePicker()  # the style's template, negative prompt and LoRAs go into each job
        self.style_picker.chosen.connect(self.use_style)
        self._hello: Any = None
        self.model = QComboBox()
        self.model.setObjectName("latentbrush_model")
        self.model.setToolTip("Models the server offers")
        self.prompt = _prompt_box("Prompt: what to paint", 3)
        self.prompt.setObjectName("latentbrush_prompt")
        self.negative = _prompt_box("Negative prompt", 2)
        self.negative.setObjectName("latentbrush_negative")

        # the primary action: what Ctrl+Shift+Enter does (inpaint the selection, else generate the canvas)
        self.run = QPushButton("Generate")
        self.run.setObjectName("latentbrush_run")
        self.run.setToolTip("Inpaint the selection, or paint the whole canvas when nothing is selected "
                            "(Ctrl+Shift+Enter)")
        self.run.clicked.connect(lambda _checked=False: self.operation_requested.emit("auto"))
        _make_primary(self.run)

        self.buttons: dict[str, QPushButton] = {}
        for name, text, tip in (
            ("generate", "From noise", "Paint the selection (or the canvas) from noise, ignoring what is there"),
            ("inpaint", "Inpaint", "Repaint the selection, guided by its surroundings"),
            ("refine", "Refine", "Rework the selection (or the canvas) keeping its composition"),
            ("upscale", "Upscale", "Upscale the whole image"),
        ):
            button = QPushButton(text)
            button.setObjectName(f"latentbrush_{name}")
            button.setToolTip(tip)
            button.clicked.connect(lambda _checked=False, n=name: self.operation_requested.emit(n))
            self.buttons[name] = button

        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setObjectName("latentbrush_strength")
        self.strength_label = QLabel()
        self.strength.valueChanged.connect(lambda v: self.strength_label.setText(f"{v}%"))
        self.upscale_factor = QDoubleSpinBox()
        self.upscale_factor.setSingleStep(0.5)
        self.upscale_factor.setSuffix("×")
        self.upscaler = QComboBox()
        self.upscaler.setToolTip("Upscaler model; Lanczos needs none")
        self.upscale_refine = QCheckBox("Refine after upscaling")
        self.upscale_refine.setObjectName("latentbrush_upscale_refine")
        self.upscale_refine.setToolTip("Repaint the upscaled image in tiles with the prompt, adding detail")
        self.refine_strength = QSpinBox()
        self.refine_strength.setSuffix("%")
        self.unblur = QDoubleSpinBox()
        self.unblur.setObjectName("latentbrush_unblur")
        self.unblur.setSingleStep(0.1)
        self.unblur.setSpecialValueText("off")
        self.unblur.setToolTip("Keep each refined tile to the upscaled picture (the server's tile ControlNet at this "
                               "strength): a higher refine strength then adds detail without changing the picture")
        self.upscale_refine.toggled.connect(self.refine_strength.setEnabled)
        self.upscale_refine.toggled.connect(self.unblur.setEnabled)

        self.steps = QSpinBox()
        self.cfg = QDoubleSpinBox()
        self.cfg.setSingleStep(0.5)
        self.sampler = QComboBox()
        self.sampler.addItems(DEFAULT_SAMPLERS)
        self.random_seed = QCheckBox("Random")
        self.seed = QSpinBox()
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        self.batch = QSpinBox()
        self.blend_outward = QSpinBox()
        self.blend_outward.setObjectName("latentbrush_blend_outward")
        self.blend_outward.setSuffix(" px")
        self.blend_outward.setSpecialValueText("off: stay inside the selection")
        self.blend_outward.setToolTip("0: no pixel outside the selection changes (a feathered selection's soft "
                                      "edge is kept as it is). N: the result's soft edge may reach N px past it.")
        # an SDXL refiner (SPEC.md 9.13): the hello's refiners that fit the chosen model, and where it takes over
        self.refiner = QComboBox()
        self.refiner.setObjectName("latentbrush_refiner")
        self.refiner.setToolTip("An SDXL refiner that does the last part of the denoising (fine detail); "
                                "the server's refiners for the chosen model")
        self.refiner_at = QDoubleSpinBox()
        self.refiner_at.setObjectName("latentbrush_refiner_at")
        self.refiner_at.setSingleStep(0.05)
        self.refiner_at.setToolTip("The fraction of the denoising after which the refiner takes over "
                                   "(0.8: the model does 80%, the refiner the last 20%)")
        self.refiner.currentIndexChanged.connect(self._refiner_picked)
        self._wanted_refiner = ""  # the painter's pick, kept while the chosen model has no refiners

        grid = QGridLayout()
        grid.addWidget(self.buttons["inpaint"], 0, 0)
        grid.addWidget(self.buttons["generate"], 0, 1)
        grid.addWidget(self.buttons["refine"], 1, 0)
        grid.addLayout(_row(self.strength, self.strength_label), 1, 1)

        # rows that belong together share a line, so the tab fits a 1000 px window without scrolling (the e2e
        # measures it in Krita 5 and Krita 6, whose Qt 6 rows are taller)
        form = QFormLayout()
        form.addRow("Steps", _row(self.steps, QLabel("CFG"), self.cfg, QLabel("Batch"), self.batch))
        form.addRow("Sampler", self.sampler)
        form.addRow("Seed", _row(self.seed, self.random_seed))
        form.addRow("Blend outward", self.blend_outward)
        # shown only when the server has a refiner for the chosen model (SDXL): no row that does nothing
        self.refiner_row = QWidget()
        self.refiner_row.setObjectName("latentbrush_refiner_row")
        refiner_line = _row(self.refiner, QLabel("from"), self.refiner_at)
        refiner_line.setContentsMargins(0, 0, 0, 0)
        self.refiner_row.setLayout(refiner_line)
        self.refiner_label = QLabel("Refiner")
        form.addRow(self.refiner_label, self.refiner_row)

        layout = QVBoxLayout(self)
        layout.addWidget(self.style_picker)
        layout.addWidget(self.model)
        layout.addWidget(self.prompt)
        layout.addWidget(self.negative)
        layout.addWidget(self.run)
        layout.addLayout(grid)
        self.controls = ControlList()  # control layers and references, for Generate, Inpaint and Refine
        self.model.currentIndexChanged.connect(lambda *_: self.controls.set_model(str(self.model.currentData() or "")))
        self.model.currentIndexChanged.connect(lambda *_: self._fill_refiners())
        layout.addWidget(self.controls)
        layout.addLayout(form)
        layout.addStretch(1)
        self.upscale_page = self._upscale_page()
        self.apply_limits(None)
        self.load(DockerSettings())

    def _upscale_page(self) -> QWidget:
        """The Upscale tab: factor, upscaler and its own big button (the prompt and settings still apply)."""
        page = QWidget()
        page.setObjectName("latentbrush_upscale_page")
        form = QFormLayout()
        form.addRow("Factor", self.upscale_factor)
        form.addRow("Upscaler", self.upscaler)
        form.addRow(self.upscale_refine)
        form.addRow("Refine strength", self.refine_strength)
        form.addRow("Unblur", self.unblur)
        _make_primary(self.buttons["upscale"])
        layout = QVBoxLayout(page)
        layout.addLayout(form)
        layout.addWidget(self.buttons["upscale"])
        note = QLabel("Upscales the whole image; the refine pass takes the prompt, model and steps of the Generate "
                      "tab.")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addStretch(1)
        return page

    def apply_limits(self, limits: Limits | None) -> None:
        """Widget ranges from the protocol's field limits, capped by a connected server's ``limits``."""
        low, high = field_range(JobRequest, "strength")
        self.strength.setRange(max(MIN_STRENGTH_PERCENT, round(low * 100)), round(high * 100))
        self.upscale_factor.setRange(*field_range(UpscaleParams, "scale"))
        low, high = field_range(UpscaleParams, "refine_strength")
        self.refine_strength.setRange(round(low * 100), round(high * 100))
        self.unblur.setRange(*field_range(UpscaleParams, "unblur"))
        self.steps.setRange(*field_range(JobRequest, "steps", limits))
        self.cfg.setRange(*field_range(JobRequest, "cfg"))
        low, high = field_range(JobRequest, "seed")
        self.seed.setRange(low, min(high, MAX_SPIN_INT))
        self.batch.setRange(*field_range(JobRequest, "batch", limits))
        self.blend_outward.setRange(*field_range(JobRequest, "mask_outward"))
        self.refiner_at.setRange(*field_range(JobRequest, "refiner_at"))

    # ----------------------------------------------------------------------------- values

    def generation_settings(self, op: str | None) -> GenerationSettings:
        """The request settings for ``op`` (a controller operation name, or None)."""
        strength = self.strength.value() / 100 if op == "img2img" else 1.0
        return GenerationSettings(
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.toPlainText().strip(),
            model=str(self.model.currentData() or ""),
            sampler=self.sampler.currentText(),
            steps=self.steps.value(),
            cfg=self.cfg.value(),
            seed=None if self.random_seed.isChecked() else self.seed.value(),
            strength=strength,
            blend_outward=self.blend_outward.value(),
            batch=self.batch.value() if op != "upscale" else 1,
            upscaler=str(self.upscaler.currentData() or ""),
            scale=self.upscale_factor.value(),
            refine=self.upscale_refine.isChecked(),
            refine_strength=self.refine_strength.value() / 100,
            unblur=self.unblur.value(),
            controls=self.controls.controls() if op != "upscale" else (),
            references=self.controls.references() if op != "upscale" else (),
            regions=self.controls.regions() if op != "upscale" else (),
            refiner=str(self.refiner.currentData() or "") if op != "upscale" else "",
            refiner_at=self.refiner_at.value() if self.refiner.currentData() else None,
        )

    def load(self, s: DockerSettings) -> None:
        self.prompt.setPlainText(s.prompt)
        self.negative.setPlainText(s.negative_prompt)
        self.steps.setValue(s.steps)
        self.cfg.setValue(s.cfg)
        self._select_text(self.sampler, s.sampler)
        self.seed.setValue(min(max(s.seed, 0), self.seed.maximum()))
        self.random_seed.setChecked(s.random_seed)
        self.seed.setEnabled(not s.random_seed)
        self.batch.setValue(s.batch)
        self.strength.setValue(round(s.strength * 100))
        self.strength_label.setText(f"{self.strength.value()}%")
        self.blend_outward.setValue(s.blend_outward)
        self.upscale_factor.setValue(s.upscale_factor)
        self.upscale_refine.setChecked(s.upscale_refine)
        self.refine_strength.setValue(round(s.upscale_refine_strength * 100))
        self.unblur.setValue(s.upscale_unblur)
        self.refine_strength.setEnabled(s.upscale_refine)
        self.unblur.setEnabled(s.upscale_refine)
        self._wanted_model, self._wanted_upscaler = s.model, s.upscaler
        self._wanted_refiner = s.refiner
        self.refiner_at.setValue(s.refiner_at)
        self._fill_refiners()
        self.style_picker.select(s.style)

    def store(self, s: DockerSettings) -> DockerSettings:
        """``s`` with this panel's values."""
        return replace(
            s,
            prompt=self.prompt.toPlainText(),
            negative_prompt=self.negative.toPlainText(),
            model=str(self.model.currentData() or self._wanted_model),
            sampler=self.sampler.currentText(),
            steps=self.steps.value(),
            cfg=self.cfg.value(),
            seed=self.seed.value(),
            random_seed=self.random_seed.isChecked(),
            batch=self.batch.value(),
            strength=self.strength.value() / 100,
            blend_outward=self.blend_outward.value(),
            upscale_factor=self.upscale_factor.value(),
            upscaler=str(self.upscaler.currentData() or self._wanted_upscaler),
            upscale_refine=self.upscale_refine.isChecked(),
            upscale_refine_strength=self.refine_strength.value() / 100,
            upscale_unblur=self.unblur.value(),
            refiner=self._wanted_refiner,
            refiner_at=self.refiner_at.value(),
            style=self.style_picker.current_name() or s.style,
        )

    def set_server_info(self, hello: Any) -> None:
        """Fill the model, sampler and upscaler lists from a ServerHello (None clears them)."""
        self._hello = hello
        self.style_picker.set_server_info(hello)
        self.model.clear()
        self.upscaler.clear()
        self.apply_limits(None if hello is None else hello.limits)  # a spin box clamps its value into range
        self.controls.set_server_info(hello)
        if hello is None:
            return
        for info in hello.models:
            if is_refiner(info):  # continues another model's denoising: offered in the Refiner list only
                continue
            kind = " (inpaint)" if info.inpaint else ""
            self.model.addItem(f"{info.name} — {info.base}{kind}", info.name)
        wanted = self._wanted_model or hello.default_model
        self.model.setCurrentIndex(max(0, self.model.findData(wanted)))
        self.upscaler.addItem("Best installed", "")
        for name in hello.upscalers:
            self.upscaler.addItem(name, name)
        if "lanczos" not in hello.upscalers:
            self.upscaler.addItem("Lanczos (no model)", "lanczos")
        self.upscaler.setCurrentIndex(max(0, self.upscaler.findData(self._wanted_upscaler)))
        if hello.samplers:
            current = self.sampler.currentText()
            self.sampler.clear()
            self.sampler.addItems(list(hello.samplers))
            self._select_text(self.sampler, current)

    def _refiner_picked(self, *_: Any) -> None:
        self._wanted_refiner = str(self.refiner.currentData() or "")
        self.refiner_at.setEnabled(bool(self._wanted_refiner))

    def _fill_refiners(self) -> None:
        """The Refiner list: None, then the hello's refiners that fit the chosen model (SDXL: sdxl-refiner);
        filling it is no pick of the painter's (signals blocked)."""
        self.refiner.blockSignals(True)
        self.refiner.clear()
        self.refiner.addItem("None", "")
        for name in refiners_for(self._hello, str(self.model.currentData() or "")):
            self.refiner.addItem(name, name)
        self.refiner.setCurrentIndex(max(0, self.refiner.findData(self._wanted_refiner)))
        self.refiner.blockSignals(False)
        self.refiner.setEnabled(self.refiner.count() > 1)
        for widget in (self.refiner_label, self.refiner_row):
            widget.setVisible(self.refiner.count() > 1)
        self.refiner_at.setEnabled(bool(self.refiner.currentData()))

    def use_style(self, style: Style) -> None:
        """Show a picked style's model, sampler, steps and CFG in the widgets, where the painter may change them."""
        names = [str(self.model.itemData(i)) for i in range(self.model.count())]
        for wanted in style.models:  # the first one this server has
            index = next((i for i, n in enumerate(names) if n.casefold() == wanted.casefold()), -1)
            if index >= 0:
                self.model.setCurrentIndex(index)
                break
        else:
            if style.models and names:  # connected, and the server has none of them: say so, keep the choice
                self.style_picker.show_notes((f"The server has none of the models of {style.name} "
                                              f"({', '.join(style.models)}): keeping {self.model.currentText()}",))
        if style.sampler:
            self._select_text(self.sampler, style.sampler)
        if style.steps is not None:
            self.steps.setValue(style.steps)
        if style.cfg is not None:
            self.cfg.setValue(style.cfg)

    def styled_settings(self, op: str | None, *, live: bool = False) -> GenerationSettings:
        """``generation_settings(op)`` with the chosen style's prompt template, negative prompt and LoRAs (those
        the server offers). The widgets' model, sampler, steps and CFG stand (picking the style filled them); a
        live job takes the style's live sampler and CFG (the Live tab has its own steps)."""
        settings = self.generation_settings(op)
        style = self.style_picker.current()
        if style is None:
            return settings
        keep = ("model", "steps") if live else ("model", "sampler", "steps", "cfg")
        settings, notes = apply_style(style, settings, self._hello, keep=keep, live=live)
        self.style_picker.show_notes(notes)
        return settings

    def set_running(self, running: bool) -> None:
        for button in (self.run, *self.buttons.values()):
            button.setEnabled(not running)
        self.controls.set_running(running)

    @staticmethod
    def _select_text(combo: QComboBox, text: str) -> None:
        index = combo.findText(text)
        if index >= 0:
            combo.setCurrentIndex(index)
