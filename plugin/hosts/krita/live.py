"""Live mode: while it is on, every change of the canvas re-runs the live operation into the "[Live]" layer.

``LiveMode`` belongs to one docker and works on the document it was turned on for. A ``QTimer`` runs a
cheap check every ``poll_ms`` (``live_watch.py``: metadata plus sampled rows of the active layer, never
the whole canvas); a change is acted on once a check finds it settled (unchanged since the previous
check), so a stroke being applied over several ticks starts one job, not one per tick.

One live job at a time: a new one supersedes the running one. Live jobs share one ``stream`` (SPEC.md 9.11),
so the server drops or cancels the old job at its next UNet block (a 1.0 server: the core cancels it). The
old job's record ends "cancelled", and its frames and result, if any still arrive, are dropped
(``LiveHost.stale``).

Live jobs keep their own ``History``: they are not listed in the History tab nor saved in the document;
Apply makes the current picture a normal layer (one undo step). Turning live off, losing the
connection, closing the document or undoing the live layer away ends the live job and removes the layer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core.controller import Controller, layer_name
from latentbrush.plugin.core.history import History
from latentbrush.plugin.core.messages import NOT_CONNECTED, explain, painter_message
from latentbrush.plugin.core.presets import apply_preset, model_preset
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.protocol import SamplerPreset
from latentbrush.protocol.geometry import Rect

from ...qt import QObject, QTimer, pyqtSignal
from .document import KritaHost
from .layers import node_id
from .live_layer import LiveHost, LiveLayer, apply_picture
from .live_watch import CanvasWatch, Signature, describe_change
from .session import EXPECTED_ERRORS, KritaSession, document_title
from .undo_steps import KritaUndoSteps, UndoSteps

POLL_MS = 150  # a check this often; a change starts a job one check after it was first seen
LIVE_STEPS = 6  # steps of a model without a few-step preset
KEPT_RUNS = 500  # timing records kept for the bench and e2e
SETTLE_CHECKS = 20  # checks after Apply that wait for its layer to appear (3 s at POLL_MS)

log = logging.getLogger(__name__)

SettingsSource = Callable[[], "tuple[str | None, GenerationSettings]"]  # (operation, settings) for the next job
Seen = tuple[Signature, "str | None", GenerationSettings]  # a check's view: the canvas and what the panel asks for


def live_settings(base: GenerationSettings, preset: SamplerPreset | None, steps: int,
                  seed: int | None) -> GenerationSettings:
    """The live preset over ``base``: the model's few-step preset (sampler, steps, cfg) when it has one, else
    ``steps`` with the panel's sampler and CFG; one image, the live seed (None = a new one each job)."""
    base = apply_preset(base, preset) if preset is not None else replace(base, steps=steps)
    return replace(base, seed=seed, batch=1)


def hello_preset(hello: Any, model: str) -> SamplerPreset | None:
    """The few-step preset of the model a live job runs on (``ModelInfo.preset``); None without a hello."""
    return None if hello is None else model_preset(hello.models, model, hello.default_model)


@dataclass
class LiveRun:
    """Timing of one live job (``time.perf_counter`` seconds), for the bench and the e2e."""

    changed_at: float  # the check that first saw the change (turning live on, for the first job)
    submitted_at: float
    job_id: str = ""
    first_frame_at: float | None = None
    result_at: float | None = None
    state: str = hs.SUBMITTED
    change: str = "start"  # what the check saw change ("pixels", "settings", ...; describe_change)


@dataclass(eq=False)
class _LiveJob:
    controller: Controller
    host: LiveHost
    run: LiveRun
    op: str | None
    settings: GenerationSettings
    task: Any = field(default=None)


class LiveMode(QObject):
    active_changed = pyqtSignal(bool)
    status_changed = pyqtSignal(str)
    picture_changed = pyqtSignal(bool)  # a picture reached the live layer; True for a job's result

    def __init__(self, session: KritaSession, settings: SettingsSource, *, documents: Callable[[], Any],
                 poll_ms: int = POLL_MS, now: Callable[[], float] = time.perf_counter,
                 undo_steps: UndoSteps | None = None) -> None:
        super().__init__(session)
        self.session = session
        self._settings = settings
        self._documents = documents  # the open documents (Krita.documents): closing ours ends live
        self._now = now
        self._undo = undo_steps if undo_steps is not None else KritaUndoSteps()
        self.history = History(max_records=50)
        self.runs: deque[LiveRun] = deque(maxlen=KEPT_RUNS)
        self.check_seconds: deque[float] = deque(maxlen=5000)  # cost of each check
        self.document: Any = None
        self.layer: LiveLayer | None = None
        self._watch: CanvasWatch | None = None
        self._job: _LiveJob | None = None
        self._jobs: set[_LiveJob] = set()  # the current job and superseded ones still winding down
        self._seen: Seen | None = None  # what the last check saw
        self._ran: Seen | None = None  # what the newest job was started for
        self._changed_at: float | None = None  # when the pending change was first seen
        self._change = "start"  # what the pending change changed
        self._settling: tuple[str, int] | None = None  # after Apply: (its layer's uid, checks left to wait for it)
        self._boxes: dict[tuple[Any, ...], Rect] = {}
        self._stream = ""
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.check)

    @property
    def active(self) -> bool:
        return self.document is not None

    @property
    def running_jobs(self) -> int:
        return len(self._jobs)

    # ----------------------------------------------------------------------------- on / off

    def start(self, document: Any) -> bool:
        """Turn live on for ``document`` and run once on it as it is; False (saying why) when it cannot."""
        if self.active:
            self.stop()
        if document is None:
            self.status_changed.emit("Open a document first")
            return False
        if not self.session.connected:
            self.status_changed.emit(painter_message(NOT_CONNECTED, "img2img"))
            return False
        try:
            KritaHost(document).check_document()
        except EXPECTED_ERRORS as exc:
            self.status_changed.emit(str(exc))
            return False
        self.document = document
        self._stream = f"krita-live-{uuid.uuid4().hex[:12]}"  # one per start: another window's live is its own
        self.layer = LiveLayer(document, undo_steps=self._undo)
        self._boxes.clear()
        self._watch = CanvasWatch(document, self._context_box)
        started = self._now()
        try:
            self._seen = (self._watch.baseline(), *self._settings())
        except EXPECTED_ERRORS as exc:  # the plan for the context box: e.g. Inpaint without a selection
            self._end(str(exc))
            return False
        self._changed_at = None
        self._timer.start()
        self.active_changed.emit(True)
        self._submit(started)
        return True

    def stop(self, message: str = "Live is off") -> None:
        """Turn live off: end the live job and remove the live layer."""
        if self.active:
            self._end(message)

    def _end(self, message: str, *, closed: bool = False) -> None:
        self._timer.stop()
        for job in list(self._jobs):  # what they still send is dropped, and the server stops them
            job.host.stale = True
            self.session.pump.submit(job.controller.cancel())
        self._job = None
        if self.layer is not None and not closed and not self.layer.gone:  # a closed document took it along
            self.layer.remove()
        self.document, self.layer, self._watch = None, None, None
        self._seen = self._ran = None
        self._settling = None
        self.active_changed.emit(False)
        self.status_changed.emit(message)

    # ----------------------------------------------------------------------------- checks

    def check(self) -> None:
        """One change check (the timer's slot); starts a job when a change has settled."""
        if not self.active or self._watch is None or self.layer is None:
            return
        if not any(d == self.document for d in self._documents()):
            self._end("The document was closed: live is off", closed=True)
            return
        if self.layer.gone:
            self._end("The live layer was removed (undo or delete): live is off")
            return
        if not self.session.connected:
            self._end("Not connected: live is off")
            return
        started = self._now()
        if self._settling is not None:  # what Krita still does for Apply's layer after it returned is not a stroke
            self._settle()
            return
        try:
            seen = (self._watch.signature(), *self._settings())  # a new prompt or strength is a change too
        except EXPECTED_ERRORS as exc:  # e.g. live Inpaint and the painter deselected: wait for a selection
            self.status_changed.emit(f"Live · {exc}")
            self._seen, self._changed_at = None, None
            return
        self.check_seconds.append(self._now() - started)
        if seen != self._seen:  # still changing: wait for it to settle
            if self._changed_at is None:
                self._changed_at = started
                self._change = "start" if self._seen is None else describe_change(self._seen, seen)
                log.debug("live: a change in %s", self._change)
            self._seen = seen
            return
        if self._changed_at is not None and seen != self._ran:
            self._submit(self._changed_at)
        self._changed_at = None

    def _context_box(self, selection: Rect | None) -> Rect:
        """The box the live job reads for this selection (the controller's plan, which reads the selection)."""
        op, settings = self._settings()
        key = (int(self.document.width()), int(self.document.height()), selection, op, settings.strength,
               settings.blend_outward)
        if key not in self._boxes:
            host = LiveHost(self.document, self.layer or LiveLayer(self.document))
            client = self.session.client
            if client is None:
                raise RuntimeError("live mode needs a connection")
            planner = Controller(host, client, history=History())
            try:
                self._boxes[key] = planner.plan(op, settings)[1].context
            finally:
                planner.close()
        return self._boxes[key]

    # ----------------------------------------------------------------------------- jobs

    def _submit(self, changed_at: float) -> None:
        client = self.session.client
        if client is None or self.layer is None or self._seen is None:
            return
        if self._job is not None:
            self._job.host.stale = True  # the newest picture wins: drop what it still sends (the server stops it)
        op, settings = self._settings()
        run = LiveRun(changed_at, self._now(), change=self._change)
        self._change = "start"
        host = LiveHost(self.document, self.layer, status=self._job_status,
                        on_frame=lambda final: self._frame(run, final))
        job = _LiveJob(Controller(host, client, history=self.history), host, run, op, settings)
        self._job, self._ran = job, self._seen
        self._jobs.add(job)
        self.runs.append(run)
        job.task = self.session.pump.submit(self._run(job), busy=True)

    async def _run(self, job: _LiveJob) -> None:
        try:
            record = await job.controller.submit(job.settings, job.op, stream=self._stream)
            job.run.job_id = record.job_id
            if job.host.stale:  # superseded while uploading: it may have reached the server last
                await job.controller.cancel(record.job_id)
            record = await job.controller.wait(record.job_id)
            job.run.state = record.state
            if record.state == hs.ERROR and not job.host.stale:
                self.status_changed.emit(f"Live · {record.error or 'the job failed'}")
        except EXPECTED_ERRORS as exc:
            job.run.state = hs.ERROR
            why = explain(exc, job.op)
            log.warning("live job could not run: %s", why.detail)
            if not job.host.stale:
                self.status_changed.emit(f"Live · {why.message}")
        finally:
            job.controller.close()
            self._jobs.discard(job)
            if self._job is job:
                self._job = None

    def _frame(self, run: LiveRun, final: bool) -> None:
        at = self._now()
        if run.first_frame_at is None:
            run.first_frame_at = at
        if final:
            run.result_at = at
        self.picture_changed.emit(final)

    def _job_status(self, text: str, _progress: float | None) -> None:
        self.status_changed.emit(f"Live · {document_title(self.document)} · {text}")

    # ----------------------------------------------------------------------------- apply

    def _settle(self) -> None:
        """One check after Apply: a new baseline, until the applied layer is in the layer stack (Krita 6 adds it
        after ``addChildNode`` returned, and later than ``waitForDone``) and once more after; at most
        ``SETTLE_CHECKS`` checks. A stroke in that time (a few hundred ms) waits for the next change."""
        if self._settling is None or self._watch is None:
            return
        uid, left = self._settling
        signature = self._watch.baseline()
        self._seen = self._ran = (signature, *self._settings())
        present = any(layer[0] == uid for layer in signature.layers)
        self._settling = None if left <= 1 else (uid, 1 if present else left - 1)

    def apply(self) -> Any:
        """Copy the live picture into a new layer under the live layer (one undo step); the node, or None."""
        if self.layer is None or self.layer.picture is None or self._watch is None:
            self.status_changed.emit("Nothing to apply yet: paint, and wait for the live picture")
            return None
        op, settings = self._settings()
        node = apply_picture(self.document, self.layer, layer_name(op or "img2img", settings, settings.seed))
        # the new layer is ours, not a stroke: it must not start a job of its own
        self._seen = self._ran = (self._watch.baseline(), *self._settings())
        self._changed_at = None
        self._settling = (node_id(node), SETTLE_CHECKS) if node is not None else None
        if node is not None:
            self.status_changed.emit(f"Live · applied as '{node.name()}'")
        return node
