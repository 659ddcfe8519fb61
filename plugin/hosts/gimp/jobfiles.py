"""Cross-process job state for the GIMP plug-in: which job runs on an image, and cancel requests.

GIMP starts a new plug-in process for every procedure call, so the "Cancel" procedure runs in a
different process from the job it cancels. They meet in small files under the user's GIMP folder
(``Gimp.directory()/latentbrush/jobs``), keyed by the image's session id:

* ``running-<image>.json``: written by the job's process while it runs ({job_id, pid, previews}),
  removed when it ends;
* ``cancel-<image>``: created by Cancel; the job polls for it, sends the protocol's ``cancel`` to
  the server, removes its preview layer and deletes the file.

Standard library only, so it is tested under plain pytest.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunningJob:
    job_id: str
    pid: int
    previews: int = 0
    operation: str = ""


class JobFiles:
    """The running/cancel files of one image under ``folder``."""

    def __init__(self, folder: Path, image_id: int) -> None:
        self._folder = Path(folder)
        self._running = self._folder / f"running-{image_id}.json"
        self._cancel = self._folder / f"cancel-{image_id}"

    @property
    def cancel_path(self) -> Path:
        return self._cancel

    def start(self, job: RunningJob) -> None:
        """Record ``job`` as running and forget any cancel request left over from an earlier job."""
        self._folder.mkdir(parents=True, exist_ok=True)
        self._cancel.unlink(missing_ok=True)
        self.update(job)

    def update(self, job: RunningJob) -> None:
        # write-then-rename, so a reader never sees half a file
        tmp = self._running.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(job)), encoding="utf-8")
        tmp.replace(self._running)

    def running(self) -> RunningJob | None:
        """The job recorded as running, or None (no file, unreadable, or its process is gone)."""
        try:
            data = json.loads(self._running.read_text(encoding="utf-8"))
            job = RunningJob(str(data["job_id"]), int(data["pid"]), int(data.get("previews", 0)),
                             str(data.get("operation", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return job if _process_alive(job.pid) else None

    def request_cancel(self) -> bool:
        """Ask the running job to cancel; False when no job is running on this image."""
        if self.running() is None:
            return False
        self._folder.mkdir(parents=True, exist_ok=True)
        self._cancel.touch()
        return True

    def cancel_requested(self) -> bool:
        return self._cancel.exists()

    def finish(self) -> None:
        self._running.unlink(missing_ok=True)
        self._cancel.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _windows_process_alive(pid: int) -> bool:
    # os.kill(pid, 0) would *terminate* the process on Windows: ask the kernel instead
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    process_query_limited_information, still_active = 0x1000, 259
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
