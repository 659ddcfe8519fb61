"""Everything the plugin shares across Krita windows: the server, the connection and the jobs.

One ``KritaSession`` lives as long as Krita; every docker shows it. It owns the asyncio pump,
the optional local server process, the core ``Client`` and ``History``, and one core
``Controller`` + ``KritaHost`` per running job. It speaks to the widgets only through signals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latentbrush.plugin.core import events as ev
from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.core.client import Client, ClientError
from latentbrush.plugin.core.controller import Controller, ControllerError
from latentbrush.plugin.core.history import History, JobRecord
from latentbrush.plugin.core.history_archive import archive_job
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.core.messages import (
    CONNECT_FAILED,
    DISCONNECTED,
    NOT_CONNECTED,
    explain,
    gave_up_text,
    general_message,
    painter_message,
    reconnecting_text,
    server_stopped_text,
)
from latentbrush.plugin.core.requests import GenerationSettings, RequestError

from ...qt import QObject, pyqtSignal
from .colorspace import UnsupportedDocument
from .document import KritaHost
from .history_store import CODECS, PNG, DocumentHistories, smooth_thumbnail, thumbnail_pixels
from .layers import ControlLayerMissing
from .loop_pump import AsyncioPump
from .server_process import LocalServer, split_command

CLIENT_NAME = "latentbrush-krita"
KEPT_RESULTS = 30  # jobs whose result pixels stay in memory for re-apply and thumbnails
EXPECTED_ERRORS = (ControllerError, RequestError, ClientError, UnsupportedDocument, ControlLayerMissing)
HOLD_S = 4.0  # an error stays on the status line this long before step texts may replace it
SERVER_LINES = 8  # of the dead local server's output, in the connection line's tooltip

log = logging.getLogger(__name__)


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
    history_note = pyqtSignal(str)  # about the document's saved history (budget, unreadable archive)

    def __init__(self, parent: QObject | None = None, *, now: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(parent)
        self.pump = AsyncioPump(self)
        self.pump.failed.connect(lambda message: self.status_changed.emit(f"Error: {message}", None))
        self.server = LocalServer(self)
        self.server.listening.connect(self._server_listening)
        self.server.failed.connect(self._server_failed)
        self.server.stopped.connect(self._server_stopped)
        self.history = History(max_records=100)
        self.history.add_listener(self.job_changed.emit)
        self.history.add_listener(self._record_changed)
        self.client: Client | None = None
        self.state = ev.ConnectionState.CLOSED.value
        self.results: dict[str, JobResults] = {}
        self.documents = DocumentHistories()  # each document's saved history (.kra annotation)
        self.preview_latencies: deque[float] = deque(maxlen=2000)  # seconds, frame arrival -> layer updated
        self._now = now
        self._preview_arrived: float | None = None
        self._controllers: dict[Controller, asyncio.Task[Any]] = {}
        self._server_stop_expected = False  # Disconnect / Krita closing stopped it, not a crash
        self._hold_until = 0.0  # an error on the status line stays until then

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
        self._server_stop_expected = False
        self.server.start(split_command(command))

    def connect(self, url: str, token: str = "") -> None:
        """Connect (again) to ``url``; the token defaults to the local server's token file."""
        self._drop_client()
        client = Client(url, token=token or None, client_name=CLIENT_NAME)
        # first listener: timestamps previews before the controller; a dropped client's late events
        # (its close after the server died) must not overwrite the state the session set
        client.add_listener(lambda event: self._on_client_event(event) if client is self.client else None)
        self.client = client
        self.pump.submit(self._connect(client), busy=True)

    def disconnect(self) -> None:
        """Close the connection and stop the local server if this session started it."""
        self._server_stop_expected = True
        self._drop_client()
        self.server.stop(wait=False)
        self._set_state(ev.ConnectionState.CLOSED.value, "disconnected")
        self.server_info_changed.emit(None)

    def shutdown(self) -> None:
        """Krita is closing: cancel everything, stop the server, close the loop."""
        self._server_stop_expected = True
        self._drop_client()
        self.server.stop()
        self.pump.close()

    async def _connect(self, client: Client) -> None:
        try:
            await client.connect()
        except ClientError as exc:
            if client is self.client:
                why = explain(exc)
                log.warning("cannot connect to %s: %s", client.url, why.detail)
                self._set_state(ev.ConnectionState.FAILED.value, why.message)
                self._show_error(why.message)

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:  # end its jobs now, as failed records without previews
            client.abandon_all(DISCONNECTED, "the painter closed the connection")
        for task in list(self._controllers.values()):
            task.cancel()  # what is still uploading ends here too
        if client is not None:
            self.pump.submit(client.close())

    def _server_stopped(self, code: int) -> None:
        """The local server process exited. Unless we stopped it, its jobs end at once and Restart is offered."""
        if self._server_stop_expected or not self.server.url:
            return  # asked to stop, or it never listened (``_server_failed`` said why)
        message = server_stopped_text(code, self.server.crashed)
        tail = self.server.recent_output().strip().splitlines()[-SERVER_LINES:]
        log.warning("the local server exited (code %s%s); its last lines:\n%s", code,
                    ", crashed or killed" if self.server.crashed else "", "\n".join(tail))
        if self.client is not None:
            self.client.abandon_all(ev.SERVER_STOPPED, f"the local server exited with code {code}")
        self._drop_client()
        self._set_state(ev.ConnectionState.FAILED.value, "\n".join([message, *tail]))
        self.server_info_changed.emit(None)
        self._show_error(message)

    def _show_error(self, message: str) -> None:
        self._hold_until = self._now() + HOLD_S
        self.status_changed.emit(message, None)

    def _record_changed(self, record: JobRecord) -> None:
        if record.state == hs.ERROR:
            self._hold_until = self._now() + HOLD_S

    def _job_status(self, document: Any, text: str, progress: float | None) -> None:
        """A running job's status line, naming its document; step texts do not push an error away."""
        if progress is not None and 0.0 <= progress < 1.0 and self._now() < self._hold_until:
            return
        self.status_changed.emit(f"{document_title(document)} · {text}", progress)

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
            self._set_state(event.state.value, connection_text(event))
            if event.state is ev.ConnectionState.CONNECTED:
                self.server_info_changed.emit(event.hello)
        elif isinstance(event, ev.ServerError):
            log.warning("server error: %s: %s", event.code, event.message)
            self._show_error(general_message(event.code, event.field))
        elif isinstance(event, ev.ClientFailure):
            log.error("client failure: %s", event.message, exc_info=event.exception)
            self._show_error(general_message(None))

    # ----------------------------------------------------------------------------- jobs

    def start_job(self, document: Any, op: str | None, settings: GenerationSettings,
                  on_done: Callable[[JobRecord], None] | None = None) -> bool:
        """Run one job on ``document``; False (with a status message) when it cannot start. ``on_done`` gets the
        final record of a job that ended with its result layers in the document."""
        if document is None:
            self.status_changed.emit("Open a document first", None)
            return False
        if self.client is None or not self.client.connected:
            self._show_error(painter_message(NOT_CONNECTED, op or "inpaint"))
            return False
        host = KritaHost(
            document,
            batch=settings.batch,
            group_name=f"[Generated] {' '.join(settings.prompt.split())[:40] or op or 'batch'} (batch)",
            status=lambda text, progress: self._job_status(document, text, progress),
            on_preview=self._preview_shown,
        )
        try:
            host.check_document()
            controller = Controller(host, self.client, history=self.history)
        except EXPECTED_ERRORS as exc:
            self.status_changed.emit(str(exc), None)
            return False
        self._controllers[controller] = self.pump.submit(self._run(controller, host, op, settings, on_done), busy=True)
        self.busy_changed.emit(True)
        return True

    def cancel(self) -> None:
        for controller in list(self._controllers):
            self.pump.submit(controller.cancel())

    async def _run(self, controller: Controller, host: KritaHost, op: str | None, settings: GenerationSettings,
                   on_done: Callable[[JobRecord], None] | None = None) -> None:
        try:
            record = await controller.run(settings, op)
        except EXPECTED_ERRORS as exc:
            why = explain(exc, op)
            log.warning("%s job could not run: %s", op or "the", why.detail)
            self._show_error(f"{document_title(host.document)} · {why.message}")
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
            if on_done is not None and record.state == hs.DONE:
                on_done(record)

    def _preview_shown(self) -> None:
        if self._preview_arrived is not None:
            self.preview_latencies.append(self._now() - self._preview_arrived)
            self._preview_arrived = None

    # ----------------------------------------------------------------------------- history

    def _keep(self, record: JobRecord, results: JobResults) -> None:
        self.results[record.job_id] = results
        while len(self.results) > KEPT_RESULTS:  # older ones are applied from the document's history
            self.results.pop(next(iter(self.results)))
        group = results.group_name if len(results.layers) > 1 else ""
        try:
            job = archive_job(record, results.layers, PNG, smooth_thumbnail, group)
            self._packed(self.documents.add(results.document, job))
        except (ValueError, RuntimeError, TypeError) as exc:  # Qt could not encode, Krita refused
            log.exception("saving job %s into the document's history", record.job_id)
            self.status_changed.emit(f"The result could not be saved in the document's history: {exc}", None)
        self.job_changed.emit(record)  # the list can now show its thumbnail

    def _packed(self, packed: ha.Packed | None) -> None:
        if packed is None:
            return
        for job_id in packed.dropped:  # keep memory in line with what the document holds
            if job_id in self.results:
                self.results[job_id].layers = []
        message = packed.message()
        if message:
            self.history_note.emit(message)
            self.status_changed.emit(message, None)

    def show_document(self, document: Any, open_documents: Any = ()) -> str:
        """Read ``document``'s saved history (once); returns a message for the painter or ""."""
        still_open = [*open_documents, document]
        self.documents.forget_closed(still_open)
        for job_id, kept in list(self.results.items()):  # a reopened document brings its history back
            if not any(kept.document == d for d in still_open):
                del self.results[job_id]
        return "" if document is None else self.documents.load(document)

    def document_of(self, job_id: str) -> Any:
        """The document a finished job's results belong to, or None (running, failed, cancelled)."""
        kept = self.results.get(job_id)
        if kept is not None:
            return kept.document
        found = self.documents.find(job_id)
        return None if found is None else found[0]

    def live_records(self, document: Any) -> list[JobRecord]:
        """Records not in a document's saved history: running, failed or cancelled ones, and results of
        ``document`` that could not be saved in it."""
        out = []
        for record in self.history.records:
            if self.documents.find(record.job_id) is not None:
                continue
            owner = self.document_of(record.job_id)
            if not record.results or (owner is not None and owner == document):
                out.append(record)
        return out

    def thumbnail(self, job_id: str) -> Pixels | None:
        found = self.documents.find(job_id)
        if found is not None:
            return thumbnail_pixels(found[1])
        kept = self.results.get(job_id)
        return kept.layers[0][1] if kept is not None and kept.layers else None

    def set_history_budget(self, budget_mb: float, document: Any = None) -> None:
        """A new size budget; ``document``'s history is trimmed to it at once (saying so) when needed."""
        self._packed(self.documents.set_budget(budget_mb, document))

    def apply(self, job_id: str) -> bool:
        """Add a job's result(s) to its document again, as new layers (one undo step).

        From memory for recent jobs, else decoded from the document's history (after reopening it).
        """
        kept = self.results.get(job_id)
        found = self.documents.find(job_id)
        if kept is not None and kept.layers:
            document, layers, group_name = kept.document, kept.layers, kept.group_name
        elif found is not None:
            document, job = found
            try:
                layers = ha.decode_layers(job, CODECS)
            except ValueError as exc:
                self.status_changed.emit(f"Cannot apply: {exc}", None)
                return False
            group_name = job.group_name or f"[Generated] {job.prompt[:40] or job.op} (batch)"
            kept = self.results.setdefault(job_id, JobResults(document, [], [], len(layers), group_name))
        else:
            return False
        host = KritaHost(document, batch=len(layers), group_name=group_name)
        if len(layers) == 1:
            kept.handles.append(host.add_result_layer(*layers[0]))
        else:
            kept.handles.append(host.add_result_group(group_name, layers))
        return True

    def discard(self, job_id: str) -> None:
        """Remove the job's layers that are still in their document and forget the job."""
        kept = self.results.get(job_id)
        if kept is not None:
            for node in kept.handles:
                if node is not None and node.parentNode() is not None:
                    node.remove()
            kept.document.refreshProjection()
        self.delete(job_id)

    def delete(self, job_id: str) -> None:
        """Forget the job (also in its document's saved history); its layers stay as they are."""
        self.results.pop(job_id, None)
        self.history.remove(job_id)
        self.documents.remove(job_id)
        self.job_removed.emit(job_id)


def document_title(document: Any) -> str:
    """The name the painter knows a document by: its file name, else its title."""
    def text(name: str) -> str:  # both are Krita API calls; a stand-in document may lack them
        method = getattr(document, name, None)
        return str(method() or "") if callable(method) else ""

    return os.path.basename(text("fileName")) or text("name") or "Untitled"


def connection_text(event: ev.ConnectionChanged) -> str:
    """The connection line for a client event, in plain words (the client's own text goes to the log)."""
    if event.state is ev.ConnectionState.RECONNECTING:
        return reconnecting_text(event.attempt, event.max_attempts, event.retry_in)
    if event.state is ev.ConnectionState.FAILED:
        log.warning("connection failed: %s", event.message)
        return gave_up_text(event.max_attempts) if "gave up" in event.message else painter_message(CONNECT_FAILED)
    return ""
