"""Inside real Krita with a local server the docker started: cancel, then SIGKILL the server mid-job, Restart.

1. A long inpaint cancelled after the first preview: no [Preview] layer and no undo entry remain.
2. A long inpaint (150 steps); after step 3 the server process gets SIGKILL: the job must end as
   failed, its preview removed, the docker offering Restart, with plain words on the status lines.
3. Restart (the docker's button) and a short inpaint that completes.
Writes what it saw to LB_E2E_RESULT; the asserts are in test_krita_server_loss_e2e.py.
"""

from __future__ import annotations

import os
import signal
import time

import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.preview import PREVIEW_LAYER_NAME

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240
END_LIMIT_S = 30  # the test asserts a much shorter time; this only stops a stuck job from hanging the run


def state_of(session, docker, doc) -> dict:
    record = session.history.records[-1] if session.history.records else None
    return {
        "state": None if record is None else record.state, "error": None if record is None else record.error,
        "error_code": None if record is None else record.error_code, "step": None if record is None else record.step,
        "layers": u.paint_layers(doc), "running_jobs": session.running_jobs, "connection": session.state,
        "button": docker.connection.button.text(), "connection_text": docker.connection.status.text(),
        "connection_tooltip": docker.connection.status.toolTip(), "status": docker.progress.status.text(),
        "bar_value": docker.progress.bar.value(), "bar_format": docker.progress.bar.format(),
        "inpaint_enabled": docker.generation.buttons["inpaint"].isEnabled(),
    }


def run_e2e() -> bool:
    results: dict = {"ok": False}
    app = Krita.instance()
    app.setBatchmode(True)
    session = next(e.session for e in app.extensions() if type(e).__name__ == "LatentbrushExtension")
    docker = find_docker(app.activeWindow())
    try:
        doc = u.new_document()
        u.paint_scene(doc)
        u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connect"] = {"state": session.state, "server_output": session.server.recent_output()}
        if not session.connected:
            return True
        g = docker.generation
        g.prompt.setPlainText("a lighthouse")
        g.random_seed.setChecked(False)
        g.seed.setValue(7)
        g.batch.setValue(1)
        g.steps.setValue(150)
        u.select(doc, 150, 100, 180, 140)

        # 1. cancel after the first preview: nothing left, not even an undo entry
        history_before = u.undo_history()
        app.action("latentbrush_inpaint").trigger()
        u.wait_until(lambda: PREVIEW_LAYER_NAME in u.paint_layers(doc), JOB_LIMIT_S, "the first preview")
        docker.progress.cancel.click()
        u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, "the cancel")
        results["cancel"] = {**state_of(session, docker, doc), "undo_added": u.undo_history()[len(history_before):]}

        # 2. SIGKILL the server after step 3 of a long job
        history_before = u.undo_history()
        jobs_before = len(session.history.records)
        app.action("latentbrush_inpaint").trigger()
        # the new job's step: the cancelled one above is records[-1] until this one is recorded
        u.wait_until(lambda: len(session.history.records) > jobs_before and session.history.records[-1].step >= 3,
                     JOB_LIMIT_S, "step 3 of the new job")
        during = state_of(session, docker, doc)
        pid = int(session.server._process.processId())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        u.wait_until(lambda: session.running_jobs == 0 and PREVIEW_LAYER_NAME not in u.paint_layers(doc),
                     END_LIMIT_S, "the job to end after the kill")
        ended_s = time.monotonic() - killed
        u.pump_events(1500)  # what the painter sees a moment later: the message must still be there
        results["killed"] = {**state_of(session, docker, doc), "seconds_to_end": ended_s, "during": during,
                             "undo_added": u.undo_history()[len(history_before):], "pid": pid}

        # 3. Restart, then a short job runs
        docker.connection.button.click()
        u.wait_until(lambda: session.connected or session.state == "failed", CONNECT_LIMIT_S, "the restart")
        results["restart"] = {"state": session.state, "button": docker.connection.button.text()}
        g.steps.setValue(4)
        app.action("latentbrush_inpaint").trigger()
        u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, "the job after the restart")
        results["after_restart"] = state_of(session, docker, doc)
        docker.connection.button.click()  # disconnect: stops the server
        u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        results["ok"] = True
    finally:
        u.write_results(results)
    return True
