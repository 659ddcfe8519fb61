"""Everything the plugin shares across Krita windows: the server, the connection and the jobs.

One ``KritaSession`` lives as long as Krita; every docker shows it. It owns the asyncio pump,
the optional local server process, the core ``Client`` and ``History``, and one core
``Controller`` + ``KritaHost`` per running job. It speaks to the widgets only through signals.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latentbrush.plugin.core import events as ev
from latentbrush.plugin.core.client import Client, ClientError
from latentbrush.plugin.core.controller import Controller, ControllerError
from latentbrush.plugin.core.history import History, JobRecord
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.core.requests import GenerationSettings, RequestError

from ...qt import QObject, pyqtSignal
from .colorspace import UnsupportedDocument
from .document import KritaHost
from .loop_pump import AsyncioPump
from .server_process import LocalServer, split_command

CLIENT_NAME = "latentbrush-krita"
KEPT_RESULTS = 30  # jobs whose result pixels stay in memory for re-apply and thumbnails
EXPECTED_ERRORS = (ControllerError, RequestError, ClientError, UnsupportedDocument)


@dataclass
class JobResults:
    """What one finished job added to which document (for the history's apply / discard)."""

    document: Any
    layers: list[tuple[str, Pixels]]
    handles: list[Any] = field(default_factory=list)  # nodes (or the batch group) in the document
    batch: int = 1
    group_name: str = ""


class KritaSession(QObject):
    connection_changed = pyqtSignal(str, str)  # ConnectionState value, message
    server_info_changed = pyqtSignal(object)  # ServerHello, or None when disconnected
    status_changed = pyqtSignal(str, object)  # text, progress 0..1 or None
    job_changed = pyqtSignal(object)  # JobRecord, on every history update
    job_removed = pyqtSignal(str)  # job id discarded from the history
    busy_changed = pyqtSignal(bool)  # a job is running

    def __init__(self, parent: QObject | None = None, *, now: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(parent)
        self.pump = AsyncioPump(self)
        self.pump.failed.connect(lambda message: self.status_changed.emit(f"Error: {message}", None))
        self.server = LocalServer(self)
        self.server.listening.connect(self._server_listening)
        self.server.failed.connect(self._server_failed)
        self.history = History(max_records=100)
        self.history.add_listener(self.job_changed.emit)
        self.client: Client | None = None
        self.state = ev.ConnectionState.CLOSED.value
        self.results: dict[str, JobResults] = {}
        self.preview_latencies: deque[float] = deque(maxlen=2000)  # seconds, frame arrival -> layer updated
        self._now = now
        self._preview_arrived: float | None = None
        self._controllers: dict[Controller, asyncio.Task[Any]] = {}

    # ----------------------------------------------------------------------------- connection

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    @property
    def running_jobs(self) -> int:
        return len(self._controllers)

    def start_local(self, command: str) -> None:
        """Start the configured server command (``--port 0``) and connect once it listens."""
        if self.server.running:
            if self.server.url:
                self.connect(self.server.url, "")
            return
        self._set_state(ev.ConnectionState.CONNECTING.value, "starting the local server…")
        self.server.start(split_command(command))

    def connect(self, url: str, token: str = "") -> None:
        """Connect (again) to ``url``; the token defaults to the local server's token file."""
        self._drop_client()
        client = Client(url, token=token or None, client_name=CLIENT_NAME)
        client.add_listener(self._on_client_event)  # first listener: timestamps previews before the controller
        self.client = client
        self.pump.submit(self._connect(client), busy=True)

    def disconnect(self) -> None:
        """Close the connection and stop the local server if this session started it."""
        self._drop_client()
        self.server.stop(wait=False)
        self._set_state(ev.ConnectionState.CLOSED.value, "disconnected")
        self.server_info_changed.emit(None)

    def shutdown(self) -> None:
        """Krita is closing: cancel everything, stop the server, close the loop."""
        self._drop_client()
        self.server.stop()
        self.pump.close()

    async def _connect(self, client: Client) -> None:
        try:
            await client.connect()
        except ClientError as exc:
            if client is self.client:
                self.status_changed.emit(f"Cannot connect: {exc}", None)

    def _drop_client(self) -> None:
        for task in list(self._controllers.values()):
            task.cancel()  # their server is going away: end the jobs here (removes previews)
        client, self.client = self.client, None
        if client is not None:
            self.pump.submit(client.close())

    def _server_listening(self, url: str) -> None:
        self.connect(url, "")

    def _server_failed(self, message: str) -> None:
        self._set_state(ev.ConnectionState.FAILED.value, message)
        self.status_changed.emit(message, None)

    def _set_state(self, state: str, message: str) -> None:
        self.state = state
        self.connection_changed.emit(state, message)

    def _on_client_event(self, event: ev.ClientEvent) -> None:
        if isinstance(event, ev.JobPreview):
            self._preview_arrived = self._now()
        elif isinstance(event, ev.ConnectionChanged):
            self._set_state(event.state.value, event.message)
            if event.state is ev.ConnectionState.CONNECTED:
                self.server_info_changed.emit(event.hello)
        elif isinstance(event, (ev.ServerError, ev.ClientFailure)):
            self.status_changed.emit(f"Error: {event.message}", None)

    # ----------------------------------------------------------------------------- jobs

    def start_job(self, document: Any, op: str | None, settings: GenerationSettings) -> bool:
        """Run one job on ``document``; False (with a status message) when it cannot start."""
        if document is None:
            self.status_changed.emit("Open a document first", None)
            return False
        if self.client is None or not self.client.connected:
            self.status_changed.emit("Not connected: start or connect to a server first", None)
            return False
        host = KritaHost(
            document,
            batch=settings.batch,
            group_name=f"[Generated] {' '.join(settings.prompt.split())[:40] or op or 'batch'} (batch)",
            status=self.status_changed.emit,
            on_preview=self._preview_shown,
        )
        try:
            host.check_document()
            controller = Controller(host, self.client, history=self.history)
        except EXPECTED_ERRORS as exc:
            self.status_changed.emit(str(exc), None)
            return False
        self._controllers[controller] = self.pump.submit(self._run(controller, host, op, settings), busy=True)
        self.busy_changed.emit(True)
        return True

    def cancel(self) -> None:
        for controller in list(self._controllers):
            self.pump.submit(controller.cancel())

    async def _run(self, controller: Controller, host: KritaHost, op: str | None, settings: GenerationSettings) -> None:
        try:
            record = await controller.run(settings, op)
        except EXPECTED_ERRORS as exc:
            self.status_changed.emit(f"Error: {exc}", None)
            host.remove_preview()
            return
        except asyncio.CancelledError:
            host.remove_preview()
            raise
        finally:
            controller.close()
            self._controllers.pop(controller, None)
            self.busy_changed.emit(bool(self._controllers))
        if host.results:
            handles = [r.layer for r in record.results if r.layer is not None]
            if host.group is not None:
                handles = [host.group]
            self._keep(record, JobResults(host.document, list(host.results), handles, settings.batch, host.group_name))

    def _preview_shown(self) -> None:
        if self._preview_arrived is not None:
            self.preview_latencies.append(self._now() - self._preview_arrived)
            self._preview_arrived = None

    # ----------------------------------------------------------------------------- history

    def _keep(self, record: JobRecord, results: JobResults) -> None:
        self.results[record.job_id] = results
        while len(self.results) > KEPT_RESULTS:
            self.results.pop(next(iter(self.results)))
        self.job_changed.emit(record)  # the list can now show its thumbnail

    def apply(self, job_id: str) -> bool:
        """Add a kept job's result(s) to its document again, as new layers (one undo step)."""
        kept = self.results.get(job_id)
        if kept is None:
            return False
        host = KritaHost(kept.document, batch=len(kept.layers), group_name=kept.group_name)
        if len(kept.layers) == 1:
            kept.handles.append(host.add_result_layer(*kept.layers[0]))
        else:
            kept.handles.append(host.add_result_group(kept.group_name, kept.layers))
        return True

    def discard(self, job_id: str) -> None:
        """Remove the job's layers that are still in their document and forget the job."""
        kept = self.results.pop(job_id, None)
        if kept is not None:
            for node in kept.handles:
                if node is not None and node.parentNode() is not None:
                    node.remove()
            kept.document.refreshProjection()
        self.job_removed.emit(job_id)
