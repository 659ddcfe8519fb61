"""Inside real Krita with the real backend (tiny model): live mode (issue 13, items 1 and 6).

Through the docker's Live tab on a 512x384 scene with a selection: live on (one job on the canvas as it is),
then ``LB_LIVE_STROKES`` strokes (``setPixelData`` dabs on the painter's active "Strokes" layer, as the
other e2e scripts paint), each followed by waiting for its live result; then a stroke while a longer live
job streams (that job must end "cancelled"), Apply, and live off. Measured on the way, all with
``time.perf_counter`` in Krita's process:

- per stroke: stroke -> the check that saw it, -> job submitted, -> first preview in the live layer, -> result;
- the cost of every change check live made (the UI thread is blocked that long each ``poll_ms``), and of
  ``LB_LIVE_CHECKS`` checks timed one by one on three watches: the live context, the whole 512x384 canvas,
  a 2048x1536 canvas, next to one full-resolution read of that canvas (what a check never does);
- the event loop's gaps (a 5 ms QTimer's tick-to-tick intervals) while strokes are processed, for 3 s of live
  on and a quiet canvas (the checks alone), and for 3 s with live off.

Writes the numbers to LB_E2E_RESULT; the asserts are in test_krita_live_e2e.py, the table in bench_live.py.
"""

from __future__ import annotations

import os
import time
import zlib

import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.live_watch import CanvasWatch
from latentbrush.plugin.hosts.krita.preview import LIVE_LAYER_NAME
from latentbrush.protocol.geometry import Rect

try:
    from PyQt6.QtCore import QTimer
except ImportError:
    from PyQt5.QtCore import QTimer

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240
SELECTION = (96, 64, 256, 192)
STROKES = int(os.environ.get("LB_LIVE_STROKES", "6"))
CHECKS = int(os.environ.get("LB_LIVE_CHECKS", "200"))
COLORS = ((40, 40, 200), (200, 60, 40), (40, 180, 40), (30, 200, 220), (180, 40, 180), (20, 20, 20))


def dab(node, index: int) -> None:
    """A 24x24 dab inside the selection, somewhere else each time."""
    x = SELECTION[0] + 16 + (index * 37) % (SELECTION[2] - 48)
    y = SELECTION[1] + 16 + (index * 53) % (SELECTION[3] - 48)
    b, g, r = COLORS[index % len(COLORS)]
    node.setPixelData(bytes((b, g, r, 255)) * (24 * 24), x, y, 24, 24)


def layer_digest(doc) -> int:
    node = doc.nodeByName(LIVE_LAYER_NAME)
    return zlib.crc32(bytes(node.pixelData(*SELECTION))) if node is not None else -1


class LoopGaps:
    """The event loop's tick-to-tick intervals of a 5 ms timer (a long one is a stutter the painter feels)."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start(5)

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now


def timed_checks(watch: CanvasWatch, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        watch.signature()
        out.append(time.perf_counter() - t0)
    return out


def stats_ms(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"n": len(values), "median": at(0.5), "p95": at(0.95), "max": round(1000 * ordered[-1], 3)}


def describe(live, docker) -> dict:
    """What live mode was doing (for a failure's report)."""
    doc = live.document
    active = doc.activeNode() if doc is not None else None
    return {"active": live.active, "status": docker.live_panel.status.text(), "runs": len(live.runs),
            "running": live.running_jobs, "active_node": active.name() if active is not None else None,
            "last_runs": [vars(r) for r in list(live.runs)[-3:]], "checks": len(live.check_seconds),
            "seen": repr(live._seen[0]) if live._seen else None, "ran": repr(live._ran[0]) if live._ran else None}


def run_stroke(doc, live, strokes_node, index: int) -> dict:
    before_runs, before_frames, before_digest = len(live.runs), live.layer.frames_shown, layer_digest(doc)
    dab(strokes_node, index)
    t_stroke = time.perf_counter()
    u.wait_until(lambda: len(live.runs) > before_runs and live.runs[-1].result_at is not None
                 and live.running_jobs == 0, JOB_LIMIT_S, f"the live result of stroke {index}")
    run = live.runs[-1]
    record = live.history.get(run.job_id)
    return {
        "jobs": len(live.runs) - before_runs, "state": run.state,
        "detect_s": round(run.changed_at - t_stroke, 4), "submit_s": round(run.submitted_at - t_stroke, 4),
        "first_preview_s": round(run.first_frame_at - t_stroke, 4) if run.first_frame_at else None,
        "result_s": round(run.result_at - t_stroke, 4),
        "frames": live.layer.frames_shown - before_frames, "layer_changed": layer_digest(doc) != before_digest,
        "steps": record.total if record else None, "seed": record.seed if record else None,
    }


def run_e2e() -> bool:
    results: dict = {"ok": False, "krita": Krita.instance().version()}
    app = Krita.instance()
    app.setBatchmode(True)
    session = next(e.session for e in app.extensions() if type(e).__name__ == "LatentbrushExtension")
    docker = find_docker(app.activeWindow())
    live = docker.live
    try:
        doc = u.new_document()
        u.paint_scene(doc)
        strokes = doc.createNode("Strokes", "paintlayer")
        doc.rootNode().addChildNode(strokes, None)
        doc.setActiveNode(strokes)
        doc.waitForDone()
        u.select(doc, *SELECTION)
        results["active_is_strokes"] = doc.activeNode() is not None and doc.activeNode().name() == "Strokes"
        u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connected"] = session.connected
        if not session.connected:
            results["server_output"] = session.server.recent_output()
            return True
        g, panel = docker.generation, docker.live_panel
        g.prompt.setPlainText("a harbour at dusk")
        g.strength.setValue(60)
        panel.steps.setValue(4)
        results["poll_ms"] = live._timer.interval()
        docker.show_tab("Live")
        history_before = u.undo_history()
        painter_before = bytes(doc.rootNode().childNodes()[0].pixelData(0, 0, u.W, u.H))

        t0 = time.perf_counter()
        panel.toggle.click()
        u.wait_until(lambda: live.runs and live.runs[0].result_at is not None and live.running_jobs == 0,
                     JOB_LIMIT_S, "the first live result")
        first = live.runs[0]
        results["first"] = {"state": first.state, "result_s": round(first.result_at - t0, 3),
                            "layers": u.paint_layers(doc), "undo_added": u.undo_history()[len(history_before):]}
        u.pump_events(4 * results["poll_ms"])  # quiet canvas: no job
        quiet = LoopGaps()  # what the checks alone cost the event loop: live on, nothing changing
        quiet.start()
        u.pump_events(3000)
        quiet.stop()
        results["loop_gaps_quiet_ms"] = stats_ms(quiet.gaps)
        results["quiet_jobs"] = len(live.runs) - 1

        gaps = LoopGaps()
        gaps.start()
        results["strokes"] = [run_stroke(doc, live, strokes, i) for i in range(STROKES)]
        gaps.stop()
        results["loop_gaps_ms"] = stats_ms(gaps.gaps)

        # a stroke while a longer job streams: that job is stale and must end cancelled
        before = len(live.runs)
        panel.steps.setValue(40)  # new settings are a change too: this job and the stroke start one job
        g.strength.setValue(100)
        dab(strokes, 100)
        u.wait_until(lambda: len(live.runs) > before and live.runs[-1].first_frame_at is not None, JOB_LIMIT_S,
                     "the long job's first preview")
        stale = live.runs[-1]
        dab(strokes, 101)
        u.wait_until(lambda: len(live.runs) > before + 1, 30, "the superseding job")
        u.wait_until(lambda: live.running_jobs == 0, JOB_LIMIT_S, "both jobs to end")
        stale_record = live.history.get(stale.job_id)
        results["supersede"] = {"stale_state": stale.state, "stale_step": stale_record.step if stale_record else None,
                                "stale_total": stale_record.total if stale_record else None,
                                "stale_error": stale_record.error if stale_record else None,
                                "newest_state": live.runs[-1].state, "jobs": len(live.runs) - before}

        # Apply: the live picture as a normal layer under the live layer, one undo step, no new job
        runs_before, history_before = len(live.runs), u.undo_history()
        panel.apply.click()
        u.pump_events(4 * results["poll_ms"])
        applied = next(n for n in doc.rootNode().childNodes() if n.name().startswith("[Generated]"))
        live_node = doc.nodeByName(LIVE_LAYER_NAME)
        results["apply"] = {
            "layers": u.paint_layers(doc), "undo_added": u.undo_history()[len(history_before):],
            "jobs": len(live.runs) - runs_before, "changes": [run.change for run in list(live.runs)[runs_before:]],
            "same_pixels": bytes(applied.pixelData(*SELECTION)) == bytes(live_node.pixelData(*SELECTION)),
            "locked": applied.locked(), "active": doc.activeNode().name() if doc.activeNode() else None,
        }

        results["check_live_ms"] = stats_ms(list(live.check_seconds))
        whole = CanvasWatch(doc, lambda _selection: Rect(0, 0, u.W, u.H))
        whole.baseline()
        results["check_canvas_512_ms"] = stats_ms(timed_checks(whole, CHECKS))
        context = CanvasWatch(doc, live._context_box)
        context.baseline()
        results["check_context_ms"] = stats_ms(timed_checks(context, CHECKS))

        panel.toggle.click()  # off
        u.pump_events(200)
        idle = LoopGaps()  # the same with live off, for comparison
        idle.start()
        u.pump_events(3000)
        idle.stop()
        results["loop_gaps_off_ms"] = stats_ms(idle.gaps)
        results["off"] = {"layers": u.paint_layers(doc), "active": live.active,
                          "status": panel.status.text(), "running": live.running_jobs}
        results["painter_layer_unchanged"] = \
            bytes(doc.rootNode().childNodes()[0].pixelData(0, 0, u.W, u.H)) == painter_before

        big = u.new_document(2048, 1536)
        u.paint_scene(big)
        brush = big.createNode("Strokes", "paintlayer")
        big.rootNode().addChildNode(brush, None)
        big.setActiveNode(brush)
        brush.setPixelData(bytes((40, 40, 200, 255)) * (2048 * 1536), 0, 0, 2048, 1536)
        big.waitForDone()
        watch = CanvasWatch(big, lambda _selection: Rect(0, 0, 2048, 1536))
        watch.baseline()
        results["check_canvas_2048_ms"] = stats_ms(timed_checks(watch, CHECKS))
        reads = []
        for _ in range(5):
            t = time.perf_counter()
            zlib.crc32(bytes(brush.pixelData(0, 0, 2048, 1536)))
            reads.append(time.perf_counter() - t)
        results["full_read_2048_ms"] = stats_ms(reads)
        results["ok"] = True
    finally:
        results["state_at_end"] = describe(live, docker)
        try:
            live.stop()
            docker.connection.button.click()  # disconnect: stops the server this session started
            u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        except Exception as exc:  # the results already say what went wrong
            results["stop_error"] = str(exc)
        u.write_results(results)
    return True
