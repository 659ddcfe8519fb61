"""Run a plan's steps as subprocesses (the CLI's runner; Krita runs the same Steps with QProcess).

Every line a step prints goes to the log with a timestamp, after the step's argv (credentials in URLs
masked; environment values are never written), and to ``on_output``; ``on_step`` hears of each step
before it starts. The first failing step stops the plan with InstallFailed in plain words.
"""

from __future__ import annotations

import collections
import datetime
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from typing import TextIO

from .errors import InstallFailed
from .failures import explain_failure
from .plan import InstallPlan, Step, run_internal

TAIL_LINES = 60  # what the failure classification reads
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """``https://user:secret@host/...`` -> ``https://***@host/...`` (a private index's login)."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _write(log: TextIO, text: str) -> None:
    log.write(f"{_stamp()} {redact(text.rstrip())}\n")
    log.flush()


def run_step(step: Step, plan: InstallPlan, log: TextIO, on_output: Callable[[str], None]) -> None:
    """Run one step; raises InstallFailed with explain_failure's words."""
    _write(log, f"== {step.title}")
    _write(log, "$ " + shlex.join(step.argv) if not step.internal else f"(in-process) {step.argv[0]}")
    if step.internal:
        try:
            run_internal(step, plan.layout)
        except InstallFailed as exc:
            _write(log, f"failed: {exc}")
            raise
        return
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        process = subprocess.Popen(list(step.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **dict(step.env)}, text=True,
                                   encoding="utf-8", errors="replace", bufsize=1)
    except OSError as exc:
        _write(log, f"could not start {step.argv[0]}: {exc}")
        raise InstallFailed(f"{step.title} failed: the program {step.argv[0]} could not be started "
                            f"({exc.strerror or exc}). See the log at {plan.layout.log_file}.")
    with process:
        for line in process.stdout or ():
            line = line.rstrip("\r\n")
            tail.append(line)
            _write(log, "  " + line)
            on_output(line)
    code = process.wait()
    _write(log, f"exit code {code}")
    if code != 0:
        raise InstallFailed(explain_failure(step, code, "\n".join(tail), plan.layout.log_file))


def run_plan(plan: InstallPlan, log: TextIO, on_step: Callable[[int, Step], None],
             on_output: Callable[[str], None]) -> None:
    """Run every step in order; ``plan.progress(i)`` is the progress when step ``i`` starts."""
    _write(log, f"latentbrush server {plan.action}: {len(plan.steps)} steps, root {plan.layout.root}")
    for index, step in enumerate(plan.steps):
        on_step(index, step)
        run_step(step, plan, log, on_output)
    _write(log, f"latentbrush server {plan.action}: done")
