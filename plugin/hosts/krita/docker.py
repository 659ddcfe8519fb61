"""The "latentbrush" docker: connection, prompts and parameters, progress, history.

One docker per Krita window, all showing the one ``KritaSession``. The docker turns clicks and
actions into session calls and session signals into widget updates; it holds no job state.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from krita import DockWidget

from ...qt import QFrame, QIcon, QScrollArea, QVBoxLayout, QWidget
from .connection_panel import ConnectionPanel
from .generation_panel import OPERATIONS, GenerationPanel
from .history_panel import THUMB_SIDE, HistoryPanel, ProgressPanel
from .images import thumbnail
from .session import KritaSession
from .settings import LOCAL, load, save

DOCKER_ID = "latentbrush"
DOCKER_TITLE = "latentbrush"


class LatentbrushDocker(DockWidget):
    def __init__(self, session: KritaSession, app: Any) -> None:
        super().__init__()
        self.setWindowTitle(DOCKER_TITLE)
        self.setObjectName(DOCKER_ID)
        self.session = session
        self._app = app
        self.settings = load(app.readSetting)

        self.connection = ConnectionPanel()
        self.generation = GenerationPanel()
        self.progress = ProgressPanel()
        self.history = HistoryPanel()

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.connection)
        layout.addWidget(_line())
        layout.addWidget(self.generation)
        layout.addWidget(self.progress)
        layout.addWidget(self.history, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        self.setWidget(scroll)

        self.connection.set_mode(self.settings.server_mode)
        self.connection.command.setText(self.settings.server_command)
        self.connection.url.setText(self.settings.url)
        self.generation.load(self.settings)

        self.connection.connect_requested.connect(self._connect)
        self.connection.disconnect_requested.connect(session.disconnect)
        self.generation.operation_requested.connect(self.run_operation)
        self.progress.cancel_requested.connect(session.cancel)
        self.history.apply_requested.connect(session.apply)
        self.history.discard_requested.connect(session.discard)
        session.connection_changed.connect(self.connection.set_state)
        session.server_info_changed.connect(self._server_info)
        session.status_changed.connect(self._status)
        session.job_changed.connect(self._job_changed)
        session.job_removed.connect(self.history.remove)
        session.busy_changed.connect(self._busy)

        self.connection.set_state(session.state, "")
        if session.client is not None and session.client.hello is not None:
            self._server_info(session.client.hello)
        for record in session.history.records:
            self._job_changed(record)
        self._busy(session.running_jobs > 0)

    def canvasChanged(self, canvas: Any) -> None:
        """Krita calls this when the window's active view changes; jobs read the active document at start."""

    # ----------------------------------------------------------------------------- actions

    def run_operation(self, name: str) -> bool:
        """Start a job: ``name`` is "generate", "inpaint", "refine", "upscale", or "auto"
        (inpaint when something is selected, generate otherwise). False when it cannot start."""
        if self.session.running_jobs:
            self._status("A job is already running: cancel it or wait", None)
            return False
        op = None if name == "auto" else OPERATIONS[name]
        self._remember()
        return self.session.start_job(self._app.activeDocument(), op, self.generation.generation_settings(op))

    def trigger(self, operation: str) -> None:
        """What the Krita actions call (see ``actions.ACTIONS``)."""
        if operation == "cancel":
            self.session.cancel()
        else:
            self.run_operation("auto" if operation == "inpaint" else operation)

    # ----------------------------------------------------------------------------- slots

    def _connect(self, mode: str, command: str, url: str, token: str) -> None:
        self._remember()
        if mode == LOCAL:
            self.session.start_local(command)
        else:
            self.session.connect(url, token)

    def _server_info(self, hello: Any) -> None:
        self.generation.set_server_info(hello)
        if hello is None:
            self.connection.set_server_info("")
        else:
            self.connection.set_server_info(
                f"{hello.server} · {hello.device} ({hello.dtype}) · {len(hello.models)} model(s)"
            )

    def _status(self, text: str, _progress: object) -> None:
        self.progress.set_status(text)

    def _busy(self, running: bool) -> None:
        self.generation.set_running(running)
        self.progress.set_running(running)

    def _job_changed(self, record: Any) -> None:
        kept = self.session.results.get(record.job_id)
        icon = None
        if kept is not None and kept.layers:
            pixels = kept.layers[0][1]
            size = pixels.data_extent
            icon = QIcon(thumbnail(pixels.data, size.width, size.height, pixels.format, THUMB_SIDE))
        self.history.upsert(record, icon)
        self.progress.show_record(record)

    def _remember(self) -> None:
        self.settings = replace(
            self.generation.store(self.settings),
            server_mode=self.connection.current_mode(),
            server_command=self.connection.command.text().strip(),
            url=self.connection.url.text().strip() or self.settings.url,
        )
        save(self.settings, self._app.writeSetting)


def _line() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    return line
