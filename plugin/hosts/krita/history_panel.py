"""The docker's progress bar (step count, cancel) and job history (thumbnails, search, apply, discard, delete)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.core.messages import op_label, state_label

from ...qt import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QIcon,
    QLabel,
    QLineEdit,
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
from .images import thumbnail

THUMB_SIDE = 64
JOB_ID_ROLE = Qt.ItemDataRole.UserRole
PROMPT_ROLE = int(Qt.ItemDataRole.UserRole) + 1  # what the search filter looks at


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
    """The active document's jobs (newest on top), filtered by prompt.

    Signals: ``apply_requested(job_id)``, ``discard_requested(job_id)`` (remove its layers and forget
    it), ``delete_requested(job_id)`` (forget it, keep its layers), ``budget_changed(megabytes)``.
    """

    apply_requested = pyqtSignal(str)
    discard_requested = pyqtSignal(str)
    delete_requested = pyqtSignal(str)
    budget_changed = pyqtSignal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit()
        self.filter.setObjectName("latentbrush_history_filter")
        self.filter.setPlaceholderText("Search prompts…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
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
        self.delete = QPushButton("Delete")
        self.delete.setObjectName("latentbrush_history_delete")
        self.delete.setToolTip("Forget the selected job (also in the saved document); its layers stay")
        self.apply.clicked.connect(lambda: self._emit_selected(self.apply_requested))
        self.discard.clicked.connect(lambda: self._emit_selected(self.discard_requested))
        self.delete.clicked.connect(lambda: self._emit_selected(self.delete_requested))
        self.budget = QDoubleSpinBox()
        self.budget.setObjectName("latentbrush_history_budget")
        self.budget.setRange(0.01, 10000.0)
        self.budget.setDecimals(2)
        self.budget.setSuffix(" MB")
        self.budget.setToolTip("Room for the history saved in each document; the oldest full results go first "
                               "(their thumbnails and parameters stay)")
        self.budget.editingFinished.connect(lambda: self.budget_changed.emit(self.budget.value()))
        self.note = QLabel()
        self.note.setObjectName("latentbrush_history_note")
        self.note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.apply)
        row.addWidget(self.discard)
        row.addWidget(self.delete)
        budget = QHBoxLayout()
        budget.addWidget(QLabel("Saved in the document, up to"))
        budget.addWidget(self.budget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("History"))
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        layout.addLayout(budget)
        layout.addWidget(self.note)

    def upsert(self, record: Any, icon: QIcon | None) -> None:
        """Add or refresh the row of ``record`` (a JobRecord)."""
        self._put(record.job_id, describe(record), record.error or record.settings.prompt or op_label(record.op),
                  record.settings.prompt, icon)

    def show_history(self, records: Sequence[Any], jobs: Sequence[ha.ArchivedJob],
                     thumbnail: Callable[[str], Pixels | None]) -> None:
        """Show exactly these: live ``records`` (JobRecords) and a document's saved ``jobs``, newest on top."""
        self.list.clear()
        rows = [(r.created, r, None) for r in records] + [(j.created, None, j) for j in jobs]
        for _, record, job in sorted(rows, key=lambda row: row[0]):
            if record is not None:
                self.upsert(record, icon(thumbnail(record.job_id)))
            elif job is not None:
                tip = job.prompt or op_label(job.op)
                if not job.complete:
                    tip += "\n(only the thumbnail and parameters were kept: the size budget dropped the result)"
                self._put(job.job_id, describe_saved(job), tip, job.prompt, icon(thumbnail(job.job_id)))

    def set_budget_mb(self, megabytes: float) -> None:
        self.budget.setValue(megabytes)

    def set_note(self, text: str) -> None:
        self.note.setText(text)

    def remove(self, job_id: str) -> None:
        item = self._find(job_id)
        if item is not None:
            self.list.takeItem(self.list.row(item))

    def job_ids(self) -> list[str]:
        return [self._job_id(self.list.item(i)) for i in range(self.list.count())]

    def visible_job_ids(self) -> list[str]:
        """The rows the search filter lets through."""
        return [self._job_id(self.list.item(i)) for i in range(self.list.count()) if not self.list.item(i).isHidden()]

    def _put(self, job_id: str, text: str, tooltip: str, prompt: str, icon: QIcon | None) -> None:
        item = self._find(job_id)
        if item is None:
            item = QListWidgetItem()
            item.setData(JOB_ID_ROLE, job_id)
            self.list.insertItem(0, item)
        item.setText(text)
        item.setToolTip(tooltip)
        item.setData(PROMPT_ROLE, prompt)
        if icon is not None:
            item.setIcon(icon)
        item.setHidden(not ha.matches(prompt, self.filter.text()))

    def _apply_filter(self, query: str) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(not ha.matches(str(item.data(PROMPT_ROLE) or ""), query))

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


def icon(pixels: Pixels | None) -> QIcon | None:
    if pixels is None:
        return None
    size = pixels.data_extent
    return QIcon(thumbnail(pixels.data, size.width, size.height, pixels.format, THUMB_SIDE))


def describe_saved(job: ha.ArchivedJob) -> str:
    """A saved job's row, like ``describe``: operation, prompt, seed(s), then its time or what was kept."""
    prompt = " ".join(job.prompt.split())
    if len(prompt) > 48:
        prompt = prompt[:47] + "…"
    seeds = ", ".join(str(s) for s in job.parameters.get("seeds", []))
    parts = [op_label(job.op), prompt or "(no prompt)"]
    if seeds:
        parts.append(f"seed {seeds}")
    seconds = None if job.finished is None else job.finished - job.created
    tail = f"{seconds:.1f} s" if seconds is not None else "done"
    return " · ".join(parts) + f"\n{tail}" + ("" if job.complete else " · thumbnail only")


def describe(record: Any) -> str:
    """One history row: operation, prompt, seed(s) and state or time."""
    prompt = " ".join(record.settings.prompt.split())
    if len(prompt) > 48:
        prompt = prompt[:47] + "…"
    seeds = ", ".join(str(s) for s in record.seeds) or (str(record.seed) if record.seed is not None else "")
    done = record.state == hs.DONE and record.seconds is not None
    tail = f"{record.seconds:.1f} s" if done else state_label(record.state)
    parts = [op_label(record.op), prompt or "(no prompt)"]
    if seeds:
        parts.append(f"seed {seeds}")
    return " · ".join(parts) + f"\n{tail}"
