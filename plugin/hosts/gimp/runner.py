"""Run one job inside the GIMP plug-in process: the core's asyncio client and controller, for the
whole job, on this process's main thread (the only one allowed to call libgimp).

Previews arrive as client events and go straight into the "[Preview]" layer; a watcher polls the
cancel file (``jobfiles``) ten times a second and turns it into the protocol's ``cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core.client import Client, ClientError, ReconnectPolicy
from latentbrush.plugin.core.controller import Controller, ControllerError
from latentbrush.plugin.core.history import JobRecord
from latentbrush.plugin.core.messages import explain, op_label
from latentbrush.plugin.core.requests import RequestError
from latentbrush.plugin.core.styles import BUILTIN_DIR, load_styles, user_styles_dir
from latentbrush.plugin.core.token import TokenError
from latentbrush.plugin.deps import MissingDependency

from .history_parasite import save_job
from .host import GimpHost
from .jobfiles import JobFiles, RunningJob
from .procedures import capped_to_server, settings_from_values, styled

CANCEL_POLL_SECONDS = 0.1
log = logging.getLogger("latentbrush.plugin.gimp")
# A plug-in must not hang GIMP's "running" state when the server went away: a running job waits
# JOB_GRACE_S for the link to come back (a brief network hiccup), then ends with a plain message.
RECONNECT = ReconnectPolicy(initial_delay=0.5, max_delay=2.0, max_attempts=4, job_grace=3.0)
EXPECTED_ERRORS = (ControllerError, RequestError, ClientError, TokenError, MissingDependency, OSError)


@dataclass(frozen=True)
class JobOutcome:
    status: str  # how the job ended: hs.DONE, hs.CANCELLED or hs.ERROR
    image: Any = None  # Gimp.Image holding the result
    layer: Any = None  # Gimp.Layer with the (first) result
    seed: int | None = None
    previews: int = 0
    message: str = ""


def run_operation(
    host: GimpHost, operation: str, values: Mapping[str, object], *, url: str, files: JobFiles
) -> JobOutcome:
    """Run ``operation`` with the procedure's argument ``values``; never raises for expected failures."""
    host.remove_stale_previews()  # left behind by a run GIMP killed (its progress "cancel" button)
    try:
        record = asyncio.run(_run(host, operation, values, url, files))
    except EXPECTED_ERRORS as exc:
        why = explain(exc, operation)
        log.warning("latentbrush %s: %s", operation, why.detail)  # GIMP's log; the dialog says it plainly
        host.remove_preview()
        host.report_status(why.message, None)
        return JobOutcome(hs.ERROR, previews=host.previews_shown,
                          message=f"latentbrush {op_label(operation)}: {why.message}")
    except BaseException:
        with contextlib.suppress(Exception):  # the original error matters more than a failed clean-up
            host.remove_preview()
        raise
    if record.state == hs.DONE and record.results:
        note = save_job(host.image, record, os.environ)  # the image's history parasite; never raises
        if note:
            host.report_status(f"{op_label(operation)}: {note}", None)
    return _outcome(host, record)


def _outcome(host: GimpHost, record: JobRecord) -> JobOutcome:
    if record.state == hs.DONE and record.results:
        first = record.results[0]
        return JobOutcome(hs.DONE, host.image, first.layer, first.seed, host.previews_shown)
    if record.state == hs.CANCELLED:
        return JobOutcome(hs.CANCELLED, previews=host.previews_shown, message="cancelled")
    message = record.error or f"the job ended as {record.state} without a result"
    return JobOutcome(hs.ERROR, previews=host.previews_shown, message=f"latentbrush {op_label(record.op)}: {message}")


async def _run(host: GimpHost, op: str, values: Mapping[str, object], url: str, files: JobFiles) -> JobRecord:
    client = Client(url, client_name="latentbrush-gimp", reconnect=RECONNECT)
    await client.connect()
    # built once the hello is here: a control's preprocessor depends on what this server offers
    settings = settings_from_values(values, op, client.hello.preprocessors if client.hello is not None else ())
    if client.hello is not None:  # set by connect(); the dialog offered the protocol's ranges
        settings, notes = capped_to_server(settings, client.hello.limits)
        for note in notes:
            host.report_status(f"{op_label(op)}: {note}", None)
    settings, notes = styled(values, settings, client.hello, load_styles(BUILTIN_DIR, user_styles_dir())[0])
    for note in notes:  # what of the style this server cannot do (a model, LoRAs)
        host.report_status(f"{op_label(op)}: {note}", None)
    controller = Controller(host, client)
    try:
        record = await controller.submit(settings, op)
        files.start(RunningJob(record.job_id, os.getpid(), 0, op))
        watcher = asyncio.get_running_loop().create_task(_watch(controller, host, record.job_id, op, files))
        try:
            return await controller.wait(record.job_id)
        finally:
            files.finish()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher  # re-raises anything the watcher hit
    finally:
        controller.close()
        await client.close()


async def _watch(controller: Controller, host: GimpHost, job_id: str, op: str, files: JobFiles) -> None:
    """Turn a cancel request into a protocol cancel; keep the running file's preview count current."""
    shown = 0
    while True:
        await asyncio.sleep(CANCEL_POLL_SECONDS)
        if files.cancel_requested():
            host.report_status(f"{op_label(op)}: cancelling", None)
            await controller.cancel(job_id)
            return
        if host.previews_shown != shown:
            shown = host.previews_shown
            files.update(RunningJob(job_id, os.getpid(), shown, op))
