"""Download models for the managed server from the docker: pick a recommended set, see its size, watch it come.

The server's own command does the work: ``<python> -m latentbrush.backend models list --json`` says which
sets there are, ``models download SET --yes --progress json --models DIR`` fetches one and prints one JSON
object a line (``plan``, ``progress``, ``done``, ``error``). Both run as QProcess, so Krita stays usable.
A server the docker did not install gets the commands to run on its computer instead.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...qt import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QObject,
    QPlainTextEdit,
    QProcess,
    QProgressBar,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
    qbytes,
)
from .child_process import child_process

MODULE = ("-m", "latentbrush.backend")
SERVER_PROGRAM = "latentbrush-server"
TAIL_LINES = 20


@dataclass(frozen=True)
class ModelSet:
    name: str  # what ``models download`` takes
    title: str  # what the painter reads
    total_bytes: int
    recommended: bool = False
    state: str = ""  # "installed" | "partial" | "missing" in the models folder; "" unknown
    gated: bool = False  # needs an accepted licence on the Hub and HF_TOKEN

    def label(self) -> str:
        notes = {"installed": "  (already there)", "partial": "  (partly there: the rest downloads)"}
        gated = "  (gated: needs HF_TOKEN)" if self.gated else ""
        return f"{self.title} — {format_size(self.total_bytes)}{notes.get(self.state, '')}{gated}"


@dataclass(frozen=True)
class DownloadEvent:
    kind: str  # "plan" | "progress" | "done" | "error"
    file: str = ""
    done_bytes: int = 0  # overall for "progress" (all files), the total for "plan"
    total_bytes: int = 0
    message: str = ""


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def parse_sets(text: str) -> tuple[ModelSet, ...]:
    """``models list --json``: an object holding the sets under "sets" (or a bare list), in the server's order
    (recommended ones first when it marks them).

    Raises ValueError when the text is not such JSON."""
    data = json.loads(text)
    items = data.get("sets") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("the model list holds no sets")
    sets = []
    for item in items:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        size = next((item[k] for k in ("total_bytes", "size_bytes", "bytes") if k in item), 0)
        title = next((str(item[k]) for k in ("title", "description", "label") if item.get(k)), str(item["name"]))
        sets.append(ModelSet(str(item["name"]), title, _int(size), bool(item.get("recommended", False)),
                             str(item.get("state") or ""), bool(item.get("gated", False))))
    return tuple(sorted(sets, key=lambda s: not s.recommended))


def parse_event(line: str) -> DownloadEvent | None:
    """One line of ``--progress json``; None for anything else (a warning the tool printed)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("event") or data.get("type") or "")
    if kind == "plan":
        return DownloadEvent("plan", total_bytes=_int(data.get("total_bytes")))
    if kind == "progress":
        return DownloadEvent("progress", str(data.get("file", "")), _int(data.get("overall_done")),
                             _int(data.get("overall_total")))
    if kind == "done":
        return DownloadEvent("done")
    if kind == "error":
        return DownloadEvent("error", message=str(data.get("message") or "the download failed"))
    return None


def format_size(size: int) -> str:
    if size >= 10**9:
        return f"{size / 10**9:.1f} GB"
    if size >= 10**6:
        return f"{size / 10**6:.0f} MB"
    return f"{size / 10**3:.0f} kB"


def list_command(python: Path, models_dir: Path | None = None) -> list[str]:
    """``models list --json``; with the models folder each set says whether it is already there."""
    return [str(python), *MODULE, "models", "list", "--json", *(("--models", str(models_dir)) if models_dir else ())]


def download_command(python: Path, name: str, models_dir: Path) -> list[str]:
    return [str(python), *MODULE, "models", "download", name, "--yes", "--progress", "json",
            "--models", str(models_dir)]


def remote_instructions(name: str = "SET") -> str:
    return (f"This server was not installed from here. On the server's computer run:\n\n"
            f"  {SERVER_PROGRAM} models list\n"
            f"  {SERVER_PROGRAM} models download {name} --models <the server's models folder>\n\n"
            "then restart the server and connect again.")


class LineProcess(QObject):
    """Runs a command, emits ``line(text)`` for each line it prints and ``ended(code, tail)`` at the end
    (code -1 when it could not start or was killed)."""

    line = pyqtSignal(str)
    ended = pyqtSignal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._buffer = ""
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, argv: list[str]) -> None:
        self._buffer = ""
        self._tail.clear()
        process = child_process(self, on_output=self._read, on_error=self._error, on_finished=self._finished)
        self._process = process
        process.start(argv[0], argv[1:])

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()

    def _read(self) -> None:
        if self._process is None:
            return
        self._buffer += qbytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._emit(line.rstrip("\r"))

    def _emit(self, line: str) -> None:
        self._tail.append(line)
        self.line.emit(line)

    def _error(self, error: object) -> None:
        process = self._process
        if error == QProcess.ProcessError.FailedToStart and process is not None:
            self._process = None
            self.ended.emit(-1, f"cannot start {process.program()}: {process.errorString()}")

    def _finished(self, code: int, status: object = None) -> None:
        if self._process is None:
            return
        self._read()
        if self._buffer.strip():
            self._emit(self._buffer)
        self._process = None
        crashed = status == QProcess.ExitStatus.CrashExit
        self.ended.emit(-1 if crashed else int(code), "\n".join(self._tail))


class DownloadDialog(QDialog):
    """Lists the sets (``list_argv``), then downloads the chosen one (``download_argv(name)``); emits
    ``downloaded`` once it is done. With ``list_argv=None`` it only shows what to run on the server."""

    downloaded = pyqtSignal()

    def __init__(self, list_argv: list[str] | None, download_argv: Callable[[str], list[str]] | None,
                 models_dir: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download models")
        self.setObjectName("latentbrush_download_models")
        self._download_argv = download_argv
        self._sets: tuple[ModelSet, ...] = ()
        self._list_output: list[str] = []
        self._total = 0
        self._finished_ok = False
        self._error = ""
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.sets = QListWidget()
        self.sets.currentRowChanged.connect(self._chosen)
        self.total = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setVisible(False)
        self.status = QLabel()
        self.status.setObjectName("latentbrush_download_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.commands = QPlainTextEdit()
        self.commands.setReadOnly(True)
        self.download = QPushButton("Download")
        self.download.setEnabled(False)
        self.download.clicked.connect(self.start_download)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self._close_or_cancel)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.download)
        row.addWidget(self.close_button)
        box = QVBoxLayout(self)
        for widget in (self.intro, self.sets, self.total, self.bar, self.status, self.commands):
            box.addWidget(widget)
        box.addLayout(row)
        self.process = LineProcess(self)
        self.process.line.connect(self._line)
        self.process.ended.connect(self._ended)
        self._mode = "list"
        if list_argv is None or download_argv is None:
            self._mode = "remote"
            self.intro.setText("Only the built-in test model is installed on this server: it paints noise.")
            self.commands.setPlainText(remote_instructions())
            for widget in (self.sets, self.total, self.download):
                widget.setVisible(False)
            return
        self.commands.setVisible(False)
        where = f" into {models_dir}" if models_dir else ""
        self.intro.setText(f"Choose the models to download{where}:")
        self.status.setText("Asking the server which models it recommends…")
        self.process.start(list_argv)

    # ----------------------------------------------------------------------------- list

    def _chosen(self, row: int) -> None:
        chosen = self._sets[row] if 0 <= row < len(self._sets) else None
        self.download.setEnabled(chosen is not None and self._mode == "list")
        self.total.setText("" if chosen is None else f"Total: {format_size(chosen.total_bytes)}")

    def chosen(self) -> ModelSet | None:
        row = self.sets.currentRow()
        return self._sets[row] if 0 <= row < len(self._sets) else None

    def _line(self, line: str) -> None:
        if self._mode == "list":
            self._list_output.append(line)
        elif self._mode == "download":
            self._event(line)

    def _listed(self, code: int, tail: str) -> None:
        try:
            if code != 0:
                raise ValueError(f"exit code {code}")
            self._sets = parse_sets("\n".join(self._list_output))
        except ValueError as exc:
            last = tail.strip().splitlines()[-1:] or [str(exc)]
            self.status.setText(f"The server could not list its models ({exc}): {last[0]}")
            return
        for model_set in self._sets:
            item = QListWidgetItem(model_set.label() + ("  (recommended)" if model_set.recommended else ""))
            item.setData(Qt.ItemDataRole.UserRole, model_set.name)
            self.sets.addItem(item)
        self.status.setText("" if self._sets else "The server recommends no model sets.")
        if self._sets:
            self.sets.setCurrentRow(0)

    # ----------------------------------------------------------------------------- download

    def start_download(self) -> bool:
        chosen = self.chosen()
        if chosen is None or self._download_argv is None or self.process.running:
            return False
        self._mode = "download"
        self._total, self._error = chosen.total_bytes, ""
        self.sets.setEnabled(False)
        self.download.setEnabled(False)
        self.close_button.setText("Cancel")
        self.bar.setValue(0)
        self.bar.setVisible(True)
        self.status.setText(f"Downloading {chosen.title}…")
        self.process.start(self._download_argv(chosen.name))
        return True

    def _event(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            return
        if event.kind == "plan" and event.total_bytes:
            self._total = event.total_bytes
        elif event.kind == "progress":
            total = event.total_bytes or self._total
            if total:
                self.bar.setValue(min(1000, round(event.done_bytes * 1000 / total)))
            self.status.setText(f"{event.file} — {format_size(event.done_bytes)} of {format_size(total)}")
        elif event.kind == "done":
            self._finished_ok = True
        elif event.kind == "error":
            self._error = event.message

    def _ended(self, code: int, tail: str) -> None:
        mode, self._mode = self._mode, "ended"
        if mode == "list":
            self._mode = "list"
            self._listed(code, tail)
            return
        self.close_button.setText("Close")
        if self._finished_ok and code == 0:
            self.bar.setValue(1000)
            self.status.setText("Done: the models are installed. The server restarts to offer them.")
            self.downloaded.emit()
            return
        self.sets.setEnabled(True)
        self._mode = "list"
        self._chosen(self.sets.currentRow())
        if mode == "cancelled":
            self.status.setText("Cancelled; what was downloaded so far is kept and the next download goes on from it.")
        elif self._error:
            self.status.setText(f"The download failed: {self._error}")
        else:
            last = tail.strip().splitlines()[-1:] or [""]
            self.status.setText(f"The download stopped (exit code {code}). {last[0]}".strip())

    def _close_or_cancel(self) -> None:
        if self.process.running:
            self._mode = "cancelled"
            self.process.kill()
        else:
            self.reject()

    def done(self, result: int) -> None:  # closing the window must not leave a download running
        if self.process.running:
            self._mode = "cancelled"
            self.process.kill()
        super().done(result)
