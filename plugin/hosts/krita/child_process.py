"""A child process for the docker (the server, an install step, a model download): one way to start it.

Krita's embedded Python sets variables that would make a child Python import Krita's standard library
instead of its own venv's, so they are removed; stdout and stderr come merged, read as lines by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ...qt import QObject, QProcess, QProcessEnvironment

KRITA_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONEXECUTABLE", "VIRTUAL_ENV")


def child_process(parent: QObject, *, on_output: Callable[[], None], on_error: Callable[[Any], None],
                  on_finished: Callable[..., None], env: Iterable[tuple[str, str]] = ()) -> QProcess:
    """A QProcess (not started) in the system environment without Krita's Python settings, plus ``env``."""
    process = QProcess(parent)
    environment = QProcessEnvironment.systemEnvironment()
    for name in KRITA_PYTHON_VARIABLES:
        environment.remove(name)
    for name, value in env:
        environment.insert(name, value)
    process.setProcessEnvironment(environment)
    process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
    process.readyReadStandardOutput.connect(on_output)
    process.errorOccurred.connect(on_error)
    process.finished.connect(on_finished)
    return process
