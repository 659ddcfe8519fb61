"""The "latentbrush" docker: tabs Generate / Live / Upscale / History / Connection over the progress bar.

One docker per Krita window, all showing the one ``KritaSession``. The docker turns clicks and
actions into session calls and session signals into widget updates; it holds no job state.
Tabs keep it within a laptop screen: each tab fits a docker about 600 px tall (the e2e measures it
in real Krita), the progress bar and Cancel stay visible under every tab.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from krita import DockWidget
from latentbrush.plugin.core.install.layout import InstallLayout, default_layout

from ...qt import QColor, QFrame, QScrollArea, Qt, QTabWidget, QVBoxLayout, QWidget
from .connection_panel import STATE_COLORS, STATE_TEXT, ConnectionPanel
from .first_run import FirstRunNotice
from .generation_panel import OPERATIONS, GenerationPanel
from .history_panel import HistoryPanel, ProgressPanel, icon
from .install_panel import InstallPanel, managed_command
from .layers import LayerSource, node_id
from .live import LiveMode, hello_preset, live_settings
from .live_panel import LivePanel
from .model_download import DownloadDialog, download_command, list_command
from .session import KritaSession
from .settings import LOCAL, load, save

DOCKER_ID = "latentbrush"
DOCKER_TITLE = "latentbrush"
TABS = ("Generate", "Live", "Upscale", "History", "Connection")
PREPROCESS = "preprocess"  # the controller's operation behind "make control image from canvas"


class LatentbrushDocker(DockWidget):
    def __init__(self, session: KritaSession, app: Any) -> None:
        super().__init__()
        self.setWindowTitle(DOCKER_TITLE)
        self.setObjectName(DOCKER_ID)
        self.session = session
        self._app = app
        self.settings = load(app.readSetting)

        self.connection = ConnectionPanel()
        self.install_panel = InstallPanel(default_layout(), before_change=self._stop_local_server)
        self.first_run = FirstRunNotice()  # over the tabs: tiny-only servers paint noise on every tab
        self.generation = GenerationPanel()
        self.progress = ProgressPanel()
        self.history = HistoryPanel()
        self.live_panel = LivePanel()
        self.live = LiveMode(session, self._live_settings, documents=app.documents)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("latentbrush_tabs")
        self.tabs.setDocumentMode(True)
        # a tab scrolls only on a screen smaller than it was made for; the history list scrolls itself
        for page, title in zip((_scrolling(self.generation), _scrolling(self.live_panel),
                                _scrolling(self.generation.upscale_page), self.history,
                                _scrolling(_stacked(self.connection, self.install_panel))),
                               TABS, strict=True):
            self.tabs.addTab(page, title)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.first_run)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.progress)
        self.setWidget(body)
        self.tabs.setCurrentIndex(TABS.index("Generate" if session.connected else "Connection"))

        self.connection.set_mode(self.settings.server_mode)
        self.connection.command.setText(self.settings.server_command)
        self.connection.url.setText(self.settings.url)
        self.generation.load(self.settings)
        self.history.set_budget_mb(self.settings.history_budget_mb)
        session.set_history_budget(self.settings.history_budget_mb)

        self.connection.connect_requested.connect(self._connect)
        self.connection.disconnect_requested.connect(session.disconnect)
        self.install_panel.server_ready.connect(self._use_managed_server)
        self.install_panel.server_removed.connect(self._forget_managed_server)
        self.first_run.download_requested.connect(self.download_models)
        self.generation.operation_requested.connect(self.run_operation)
        self.generation.style_picker.chosen.connect(self._style_chosen)
        self.generation.controls.set_document_source(app.activeDocument)
        self.generation.controls.make_image_requested.connect(self.make_control_image)
        self.progress.cancel_requested.connect(session.cancel)
        self.history.apply_requested.connect(session.apply)
        self.history.discard_requested.connect(session.discard)
        self.history.delete_requested.connect(session.delete)
        self.history.budget_changed.connect(self._budget_changed)
        session.history_note.connect(self.history.set_note)
        session.connection_changed.connect(self.connection.set_state)
        session.connection_changed.connect(self._connection_tab)
        session.server_info_changed.connect(self._server_info)
        session.status_changed.connect(self._status)
        session.job_changed.connect(self._job_changed)
        session.job_removed.connect(self.history.remove)
        session.busy_changed.connect(self._busy)
        self.live_panel.toggled.connect(self._live_toggled)
        self.live_panel.apply_requested.connect(self.live.apply)
        self.live.active_changed.connect(self.live_panel.set_on)
        self.live.status_changed.connect(self.live_panel.set_status)
        self.live.picture_changed.connect(lambda _final: self.live_panel.apply.setEnabled(True))

        self.connection.set_state(session.state, "")
        self._connection_tab(session.state)
        if session.client is not None and session.client.hello is not None:
            self._server_info(session.client.hello)
        self._show_history()
        self._busy(session.running_jobs > 0)

    def canvasChanged(self, canvas: Any) -> None:
        """Krita calls this when the window's active view changes; jobs read the active document at start,
        the history shows the active document's (read from it the first time)."""
        self._show_history()
        self.generation.controls.refresh_layers()

    # ----------------------------------------------------------------------------- actions

    def run_operation(self, name: str) -> bool:
        """Start a job: ``name`` is "generate", "inpaint", "refine", "upscale", or "auto"
        (inpaint when something is selected, generate otherwise). False when it cannot start."""
        if self.session.running_jobs:
            self._status("A job is already running: cancel it or wait", None)
            return False
        op = None if name == "auto" else OPERATIONS[name]
        self._remember()
        return self.session.start_job(self._app.activeDocument(), op, self.generation.styled_settings(op))

    def make_control_image(self, row: Any) -> bool:
        """A control row's "make control image from canvas": its mode's preprocessor over its layer (or the
        visible canvas) becomes a new layer (one undo step), which the row then reads. False when it cannot start."""
        if self.session.running_jobs:
            self._status("A job is already running: cancel it or wait", None)
            return False
        spec = row.make_image_spec()
        if spec is None:
            self._status(f"The server has no preprocessor for {row.current_mode() or 'this mode'}", None)
            return False
        settings = replace(self.generation.generation_settings(PREPROCESS), controls=(spec,), references=(), batch=1)

        def done(record: Any) -> None:
            node = record.results[0].layer if record.results else None
            if node is not None and row in self.generation.controls.rows:
                self.generation.controls.refresh_layers()
                row.use_control_image(LayerSource(node_id(node), str(node.name())))

        self._remember()
        return self.session.start_job(self._app.activeDocument(), PREPROCESS, settings, on_done=done)

    def trigger(self, operation: str) -> None:
        """What the Krita actions call (see ``actions.ACTIONS``)."""
        if operation == "cancel":
            self.session.cancel()
        else:
            self.run_operation("auto" if operation == "inpaint" else operation)

    def _live_toggled(self, on: bool) -> None:
        if not on:
            self.live.stop()
            return
        self._remember()
        if not self.live.start(self._app.activeDocument()):
            self.live_panel.set_on(False)

    def _style_chosen(self, style: Any) -> None:
        """A picked style's live steps go into the Live tab's steps (its sampler and CFG apply to each live job)."""
        if style.live.steps is not None:
            self.live_panel.steps.setValue(style.live.steps)

    def _live_settings(self) -> tuple[str | None, Any]:
        """What the next live job runs: the Live tab's operation with the live preset over the Generate tab."""
        op = self.live_panel.current_operation()
        base = self.generation.styled_settings(op, live=True)
        hello = self.session.client.hello if self.session.client is not None else None
        return op, live_settings(base, hello_preset(hello, base.model), self.live_panel.steps.value(),
                                 self.live_panel.live_seed())

    # ----------------------------------------------------------------------------- slots

    def _connect(self, mode: str, command: str, url: str, token: str) -> None:
        self._remember()
        if mode == LOCAL:
            self.session.start_local(command)
        else:
            self.session.connect(url, token)

    def show_tab(self, title: str) -> None:
        """Bring the tab called ``title`` (one of ``TABS``) to the front."""
        self.tabs.setCurrentIndex(TABS.index(title))

    def _connection_tab(self, state: str, _message: str = "") -> None:
        """The Connection tab's title shows the state; connecting from it moves on to Generate."""
        index = TABS.index("Connection")
        self.tabs.tabBar().setTabTextColor(index, QColor(STATE_COLORS.get(state, "#888")))
        self.tabs.setTabToolTip(index, STATE_TEXT.get(state, state))
        if state == "connected" and self.tabs.currentIndex() == index:
            self.show_tab("Generate")

    def _server_info(self, hello: Any) -> None:
        self.generation.set_server_info(hello)
        self.first_run.set_hello(hello)
        self.live_panel.apply_limits(None if hello is None else hello.limits)
        if hello is None:
            self.live.stop("Disconnected: live is off")
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
        owner = self.session.document_of(record.job_id)
        if owner is None or owner == self._app.activeDocument():
            self.history.upsert(record, icon(self.session.thumbnail(record.job_id)))
        self.progress.show_record(record)

    def _show_history(self, keep_note: bool = False) -> None:
        document = self._app.activeDocument()
        message = self.session.show_document(document, self._app.documents())
        jobs = self.session.documents.jobs(document) if document is not None else ()
        self.history.show_history(self.session.live_records(document), jobs, self.session.thumbnail)
        if message or not keep_note:
            self.history.set_note(message)

    def _budget_changed(self, megabytes: float) -> None:
        self.settings = replace(self.settings, history_budget_mb=megabytes)
        save(self.settings, self._app.writeSetting)
        self.session.set_history_budget(megabytes, self._app.activeDocument())  # may say what it dropped
        self._show_history(keep_note=True)

    def _remember(self) -> None:
        self.settings = replace(
            self.generation.store(self.settings),
            server_mode=self.connection.current_mode(),
            server_command=self.connection.command.text().strip(),
            url=self.connection.url.text().strip() or self.settings.url,
        )
        save(self.settings, self._app.writeSetting)

    # ----------------------------------------------------------------------------- the managed server

    def _stop_local_server(self) -> None:
        """Before the managed server's files change: the server this session started must be gone."""
        if self.session.server.running:
            self.session.disconnect()
            self.session.server.stop()  # blocks until it exited (it stops on SIGTERM at once)

    def _use_managed_server(self, layout: InstallLayout) -> None:
        """An install, update or repair finished: start the managed server and connect to it."""
        command = managed_command(layout)
        self.connection.set_mode(LOCAL)
        self.connection.command.setText(command)
        self._remember()
        self._stop_local_server()
        if self.session.connected:
            self.session.disconnect()
        self.session.start_local(command)

    def _forget_managed_server(self) -> None:
        if self.connection.command.text().strip() == managed_command(self.install_panel.layout_):
            self.connection.command.setText("")
            self._remember()

    def runs_managed_server(self) -> bool:
        """The session's local server is the one the Connection tab installed."""
        return (self.install_panel.installed and self.session.server.running
                and self.settings.server_command == managed_command(self.install_panel.layout_))

    def download_models(self) -> DownloadDialog:
        """The first-run notice's link: download a model set into the managed server's models folder (or say
        what to run on a server installed elsewhere); the server restarts to offer what came."""
        layout = self.install_panel.layout_
        if self.runs_managed_server():
            dialog = DownloadDialog(list_command(layout.python, layout.models_dir),
                                    lambda name: download_command(layout.python, name, layout.models_dir),
                                    layout.models_dir, self)
            dialog.downloaded.connect(self._restart_for_models)
        else:
            dialog = DownloadDialog(None, None, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _restart_for_models(self) -> None:
        """The server reads its models folder when it starts: restart it so the new models are offered."""
        self._stop_local_server()
        self.session.start_local(self.settings.server_command)


def _stacked(*widgets: QWidget) -> QWidget:
    """One page of ``widgets`` top to bottom, the room left below them."""
    page = QWidget()
    box = QVBoxLayout(page)
    box.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        box.addWidget(widget)
    box.addStretch(1)
    return page


def _scrolling(page: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(page)
    return scroll
