"""The docker's progress bar (step count, cancel) and job history (thumbnails, apply, discard)."""

from __future__ import annotations

from typing import Any

from latentbrush.plugin.core import history as hs

from ...qt import (
    QAbstractItemView,
    QHBoxLayout,
    QIcon,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSize,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)

THUMB_SIDE = 64
JOB_ID_ROLE = Qt.ItemDataRole.UserRole


class ProgressPanel(QWidget):
    """Status line, progress bar with "step n / total", and Cancel (``cancel_requested``)."""

    cancel_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setObjectName("latentbrush_progress")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("idle")
        self.cancel = QPushButton("Cancel")
        self.cancel.setObjectName("latentbrush_cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.cancel_requested.emit)
        self.status = QLabel()
        self.status.setObjectName("latentbrush_status")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def set_running(self, running: bool) -> None:
        """Cancel is enabled while a job runs; the bar keeps showing how the last job ended."""
        self.cancel.setEnabled(running)

    def show_record(self, record: Any) -> None:
        """Follow a JobRecord: queued, step n of total, done / cancelled / error."""
        if record.state in (hs.PREPARING, hs.SUBMITTED):
            self.bar.setRange(0, 0)  # busy indicator while uploading
            return
        if record.state == hs.QUEUED:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.bar.setFormat(f"queued ({record.queue_position or 0} ahead)")
            return
        total = max(1, record.total)
        self.bar.setRange(0, total)
        if record.state == hs.STARTED:
            self.bar.setValue(min(record.step, total))
            self.bar.setFormat(f"step {record.step} / {total}")
        elif record.state == hs.DONE:
            self.bar.setValue(total)
            self.bar.setFormat("done")
        else:
            self.bar.setValue(0)
            self.bar.setFormat(record.state)


class HistoryPanel(QWidget):
    """One row per job (newest on top); ``apply_requested(job_id)``, ``discard_requested(job_id)``."""

    apply_requested = pyqtSignal(str)
    discard_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("latentbrush_history")
        self.list.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(True)
        self.list.itemDoubleClicked.connect(lambda item: self.apply_requested.emit(self._job_id(item)))
        self.apply = QPushButton("Apply")
        self.apply.setToolTip("Add the selected result as a new layer again")
        self.discard = QPushButton("Discard")
        self.discard.setToolTip("Remove the selected result's layer and forget it")
        self.apply.clicked.connect(lambda: self._emit_selected(self.apply_requested))
        self.discard.clicked.connect(lambda: self._emit_selected(self.discard_requested))
        row = QHBoxLayout()
        row.addWidget(self.apply)
        row.addWidget(self.discard)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("History"))
        layout.addWidget(self.list, 1)
        layout.addLayout(row)

    def upsert(self, record: Any, icon: QIcon | None) -> None:
        """Add or refresh the row of ``record`` (a JobRecord)."""
        item = self._find(record.job_id)
        if item is None:
            item = QListWidgetItem()
            item.setData(JOB_ID_ROLE, record.job_id)
            self.list.insertItem(0, item)
        item.setText(describe(record))
        item.setToolTip(record.error or record.settings.prompt or record.op)
        if icon is not None:
            item.setIcon(icon)

    def remove(self, job_id: str) -> None:
        item = self._find(job_id)
        if item is not None:
            self.list.takeItem(self.list.row(item))

    def job_ids(self) -> list[str]:
        return [self._job_id(self.list.item(i)) for i in range(self.list.count())]

    def _find(self, job_id: str) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if self._job_id(item) == job_id:
                return item
        return None

    @staticmethod
    def _job_id(item: QListWidgetItem) -> str:
        return str(item.data(JOB_ID_ROLE))

    def _emit_selected(self, signal: Any) -> None:
        item = self.list.currentItem()
        if item is not None:
            signal.emit(self._job_id(item))


def describe(record: Any) -> str:
    """One history row: operation, prompt, seed(s) and state or time."""
    prompt = " ".join(record.settings.prompt.split())
    if len(prompt) > 48:
        prompt = prompt[:47] + "…"
    seeds = ", ".join(str(s) for s in record.seeds) or (str(record.seed) if record.seed is not None else "")
    tail = f"{record.seconds:.1f} s" if record.state == hs.DONE and record.seconds is not None else record.state
    parts = [record.op, prompt or "(no prompt)"]
    if seeds:
        parts.append(f"seed {seeds}")
    return " · ".join(parts) + f"\n{tail}"
