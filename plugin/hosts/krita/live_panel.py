"""The docker's Live tab: the live toggle, what live runs (operation, steps, seed), Apply and the live status."""

from __future__ import annotations

from latentbrush.protocol import JobRequest, Limits, field_range

from ...qt import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .generation_panel import MAX_SPIN_INT, _make_primary
from .live import LIVE_STEPS

# what live re-runs, and the controller's operation for it (Refine first: strokes in, picture out)
LIVE_OPERATIONS = (("Refine", "img2img"), ("Inpaint", "inpaint"), ("From noise", "txt2img"))
LIVE_SEED = 1  # fixed by default: strokes, not noise, change the picture


class LivePanel(QWidget):
    """Emits ``toggled(on)`` when the painter turns live on or off, ``apply_requested`` for Apply."""

    toggled = pyqtSignal(bool)
    apply_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QPushButton("Live")
        self.toggle.setObjectName("latentbrush_live")
        self.toggle.setCheckable(True)
        self.toggle.setToolTip("While on, every change of the canvas re-runs the operation below into the "
                               "[Live] layer")
        self.toggle.toggled.connect(self._toggled)
        _make_primary(self.toggle)

        self.operation = QComboBox()
        self.operation.setObjectName("latentbrush_live_operation")
        for text, op in LIVE_OPERATIONS:
            self.operation.addItem(text, op)
        self.steps = QSpinBox()
        self.steps.setObjectName("latentbrush_live_steps")
        self.steps.setRange(*field_range(JobRequest, "steps"))
        self.steps.setValue(LIVE_STEPS)
        self.steps.setToolTip("Steps of a live job; a model with a few-step preset (LCM, Turbo, Lightning) "
                              "uses its own sampler, steps and CFG instead")
        self.seed = QSpinBox()
        self.seed.setObjectName("latentbrush_live_seed")
        low, high = field_range(JobRequest, "seed")
        self.seed.setRange(low, min(high, MAX_SPIN_INT))
        self.seed.setValue(LIVE_SEED)
        self.random_seed = QCheckBox("Random")
        self.random_seed.setToolTip("A new seed for every live job (the picture then changes without a stroke)")
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))

        self.apply = QPushButton("Apply")
        self.apply.setObjectName("latentbrush_live_apply")
        self.apply.setToolTip("Copy the live picture into a new layer (one undo step)")
        self.apply.setEnabled(False)
        self.apply.clicked.connect(lambda _checked=False: self.apply_requested.emit())

        self.status = QLabel("Live is off")
        self.status.setObjectName("latentbrush_live_status")
        self.status.setWordWrap(True)
        note = QLabel("Uses the Generate tab's model, prompts, sampler, CFG, controls and the Refine strength.")
        note.setWordWrap(True)

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        form = QFormLayout()
        form.addRow("Operation", self.operation)
        form.addRow("Steps", self.steps)
        form.addRow("Seed", seed_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.toggle)
        layout.addLayout(form)
        layout.addWidget(self.apply)
        layout.addWidget(self.status)
        layout.addWidget(note)
        layout.addStretch(1)

    def apply_limits(self, limits: Limits | None) -> None:
        """The steps range capped by a connected server's limits (None: the protocol's)."""
        self.steps.setRange(*field_range(JobRequest, "steps", limits))

    def current_operation(self) -> str:
        return str(self.operation.currentData())

    def live_seed(self) -> int | None:
        return None if self.random_seed.isChecked() else self.seed.value()

    def set_on(self, on: bool) -> None:
        """Show live as on or off without asking for it again (live mode decided)."""
        self.toggle.blockSignals(True)
        self.toggle.setChecked(on)
        self.toggle.blockSignals(False)
        self.toggle.setText("Live: on" if on else "Live")
        if not on:
            self.apply.setEnabled(False)

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def _toggled(self, on: bool) -> None:
        self.toggle.setText("Live: on" if on else "Live")
        self.toggled.emit(on)
