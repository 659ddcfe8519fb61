"""Run an install plan's Steps inside Krita: one QProcess after another, so the GUI never waits.

The same Steps the CLI runs with ``subprocess`` (``core/install/plan.py``): argv lists, no shell; a step
whose argv starts with ``latentbrush:`` is done in-process by ``run_internal`` on a worker thread (removing a
venv of thousands of files takes seconds). Every line goes to the layout's log file; a failed step's last
lines become ``explain_failure``'s plain words.
"""

from __future__ import annotations

import datetime
import threading
from collections import deque
from collections.abc import Callable
from typing import TextIO

from latentbrush.plugin.core.install.failures import explain_failure
from latentbrush.plugin.core.install.layout import InstallLayout
from latentbrush.plugin.core.install.plan import InstallPlan, Step, run_internal
from latentbrush.plugin.core.install.runner import redact

from ...qt import QObject, QProcess, pyqtSignal, qbytes
from .child_process import child_process

TAIL_LINES = 60  # of a failed step's output, for explain_failure
CANCELLED = "Cancelled. Nothing was switched over; run the install again (or Repair) to finish it."
Internal = Callable[[Step, InstallLayout], None]  # run_internal(step, layout)


class InstallRunner(QObject):
    """Runs one plan at a time. Signals: ``step_started(index, count, title)``, ``progress(fraction)`` by step
    weight, ``output(line)`` for every line a step prints, ``finished(ok, message)`` once at the end
    (``message`` is "" on success, else the plain-words failure or ``CANCELLED``)."""

    step_started = pyqtSignal(int, int, str)
    progress = pyqtSignal(float)
    output = pyqtSignal(str)
    finished = pyqtSignal(bool, str)
    _internal_done = pyqtSignal(str)  # from the worker thread: "" or the error (queued to the GUI thread)

    def __init__(self, parent: QObject | None = None, *, internal: Internal = run_internal) -> None:
        super().__init__(parent)
        self._internal = internal
        self._plan: InstallPlan | None = None
        self._index = 0
        self._process: QProcess | None = None
        self._thread: threading.Thread | None = None
        self._buffer = ""
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._log: TextIO | None = None
        self._cancelled = False
        self._internal_done.connect(self._internal_finished)

    @property
    def running(self) -> bool:
        return self._plan is not None

    def start(self, plan: InstallPlan) -> None:
        """Run ``plan``'s steps in order; ``finished`` follows (also for an empty plan)."""
        if self.running:
            raise RuntimeError("an install is already running")
        self._plan, self._index, self._cancelled = plan, 0, False
        try:
            plan.layout.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(plan.layout.log_file, "a", encoding="utf-8")  # noqa: SIM115  (closed in _end)
        except OSError as exc:
            self._plan = None
            self.finished.emit(False, f"Cannot write the install log {plan.layout.log_file}: {exc.strerror or exc}")
            return
        stamp = datetime.datetime.now().astimezone().replace(microsecond=0).isoformat()
        self._write(f"\n===== latentbrush server {plan.action}, {stamp} (from Krita) =====")
        for note in plan.notes:
            self._write(f"note: {note}")
        self._next()

    def cancel(self) -> None:
        """Stop now: the running step's process is killed (an in-process step finishes first)."""
        if not self.running:
            return
        self._cancelled = True
        process = self._process
        if process is not None and process.state() != QProcess.ProcessState.NotRunning:
            process.kill()  # _finished ends the run as cancelled

    # ----------------------------------------------------------------------------- steps

    def _next(self) -> None:
        plan = self._plan
        if plan is None:
            return
        if self._cancelled:
            self._end(False, CANCELLED)
            return
        self.progress.emit(plan.progress(self._index))
        if self._index >= len(plan.steps):
            self._end(True, "")
            return
        step = plan.steps[self._index]
        self._tail.clear()
        self._buffer = ""
        self._write(f"\n=== step {self._index + 1} of {len(plan.steps)}: {step.title}")
        self._write("$ " + " ".join(_shown(a) for a in step.argv))
        self.step_started.emit(self._index, len(plan.steps), step.title)
        if step.internal:
            self._thread = threading.Thread(target=self._run_internal, args=(step, plan), daemon=True,
                                            name="latentbrush-install-step")
            self._thread.start()
            return
        process = child_process(self, on_output=self._read, on_error=self._error, on_finished=self._finished,
                                env=step.env)
        self._process = process
        process.start(step.argv[0], list(step.argv[1:]))

    def _run_internal(self, step: Step, plan: InstallPlan) -> None:
        try:
            self._internal(step, plan.layout)
        except Exception as exc:  # any failure ends the plan with its words; it must never kill Krita
            self._internal_done.emit(str(exc) or type(exc).__name__)
            return
        self._internal_done.emit("")

    def _internal_finished(self, error: str) -> None:
        self._thread = None
        if error:
            self._write(f"failed: {error}")
            self._end(False, error[:1].upper() + error[1:])
            return
        self._index += 1
        self._next()

    def _read(self) -> None:
        if self._process is None:
            return
        self._buffer += qbytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        *lines, self._buffer = self._buffer.replace("\r\n", "\n").split("\n")
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        line = redact(line.rsplit("\r", 1)[-1])  # a progress bar redraws with \r: keep what shows last
        self._tail.append(line)
        self._write(line)
        if line.strip():
            self.output.emit(line)

    def _error(self, error: object) -> None:
        process = self._process
        if error != QProcess.ProcessError.FailedToStart or process is None or self._plan is None:
            return  # a crash or kill also ends in finished()
        self._process = None
        step = self._plan.steps[self._index]
        detail = f"cannot start {step.argv[0]}: {process.errorString()}"
        self._write(detail)
        self._end(False, explain_failure(step, 127, detail, self._plan.layout.log_file))

    def _finished(self, code: int, status: object = None) -> None:
        plan = self._plan
        if plan is None or self._process is None:
            return
        self._read()
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""
        self._process = None
        crashed = status == QProcess.ExitStatus.CrashExit
        self._write(f"--- exit code {code}{' (crashed or killed)' if crashed else ''}")
        if self._cancelled:
            self._end(False, CANCELLED)
        elif code != 0 or crashed:
            step = plan.steps[self._index]
            self._end(False, explain_failure(step, -9 if crashed else int(code), "\n".join(self._tail),
                                             plan.layout.log_file))
        else:
            self._index += 1
            self._next()

    def _end(self, ok: bool, message: str) -> None:
        self._write(f"===== {'finished' if ok else 'stopped: ' + message}")
        if self._log is not None:
            self._log.close()
            self._log = None
        self._plan = None
        self.finished.emit(ok, message)

    def _write(self, line: str) -> None:
        if self._log is not None:
            try:
                self._log.write(redact(line) + "\n")  # a private index's login stays out of the log
                self._log.flush()  # "Show log" during a long step shows what happened so far
            except OSError:
                pass  # a full disk: the step's own failure will say so


def _shown(arg: str) -> str:
    """An argument as the log shows it (the state JSON is long and says nothing a reader needs)."""
    return arg if len(arg) <= 200 else arg[:60] + "…"
