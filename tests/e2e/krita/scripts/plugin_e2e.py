"""Inside real Krita with the real backend: the docker starts the server, and jobs run end to end.

Everything goes through the plugin as a painter would use it: the docker's connect button (local
server mode, LB_E2E_SERVER_CMD), its prompt and parameter widgets, the Krita actions (inpaint,
cancel) and the docker's buttons (refine, upscale). Writes measurements to LB_E2E_RESULT.
"""

from __future__ import annotations

import os
import statistics

import docker_layout
import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.preview import PREVIEW_LAYER_NAME

try:
    from PyQt6.QtCore import QTimer
except ImportError:
    from PyQt5.QtCore import QTimer

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240


class Observer:
    """Samples the layer stack every few ms while a job runs: was the preview layer there, locked, where."""

    def __init__(self, doc, session) -> None:
        self.doc, self.session = doc, session
        self.samples: list[dict] = []
        self.timer = QTimer()
        self.timer.timeout.connect(self.sample)
        self.shot: str | None = None
        self.shot_after_frames = 0
        self._frames0 = 0
        self.capture = False
        self.preview_pixels: bytes | None = None  # the preview layer over the whole canvas, mid-job

    def start(self, screenshot: str | None = None, after_frames: int = 4, capture: bool = False) -> None:
        self.samples = []
        self.shot, self.shot_after_frames = screenshot, after_frames
        self.capture, self.preview_pixels = capture, None
        self._frames0 = len(self.session.preview_latencies)
        self.timer.start(10)

    def stop(self) -> None:
        self.timer.stop()

    @property
    def frames(self) -> int:
        return len(self.session.preview_latencies) - self._frames0

    def sample(self) -> None:
        previews = [n for n in self.doc.rootNode().childNodes() if n.name() == PREVIEW_LAYER_NAME]
        if previews:
            b = previews[0].bounds()
            self.samples.append({"locked": previews[0].locked(), "bounds": [b.x(), b.y(), b.width(), b.height()],
                                 "count": len(previews)})
        if self.capture and self.preview_pixels is None and self.frames >= 2 and previews:
            self.preview_pixels = bytes(previews[0].pixelData(0, 0, self.doc.width(), self.doc.height()))
        if self.shot and self.frames >= self.shot_after_frames and previews:
            u.grab_window(self.shot)
            self.shot = None


def last_record(session):
    return session.history.records[-1]


def job_summary(record, doc, before: bytes, history_before: list[str], observer: Observer) -> dict:
    result = record.results[0] if record.results else None
    node = doc.nodeByName(result.layer_name) if result else None
    after = u.flattened(doc)
    region = record.plan.region
    return {
        "state": record.state, "op": record.op, "error": record.error, "seconds": record.seconds,
        "steps": record.total, "seed": record.seed, "region": list(region.xywh()),
        "context": list(record.plan.context.xywh()),
        "result_bounds": list(result.bounds.xywh()) if result else None,
        "layer_name": result.layer_name if result else None,
        "layer_bounds": None if node is None else [node.bounds().x(), node.bounds().y(), node.bounds().width(),
                                                   node.bounds().height()],
        "layers": u.paint_layers(doc),
        "undo_added": u.undo_history()[len(history_before):],
        "frames": observer.frames,
        "preview_samples": len(observer.samples),
        "preview_always_one_locked": all(s["count"] == 1 and s["locked"] for s in observer.samples),
        "preview_bounds_seen": sorted({tuple(s["bounds"]) for s in observer.samples if s["bounds"][2]}),
        "changed_outside_region": u.differing_pixels(before, after, doc.width(), region.xywh()),
        "changed_inside_region": u.differing_pixels(before, after, doc.width(), region.xywh(), inside=True),
    }


def preview_alpha(pixels: bytes | None, selection: bytes, region, width: int) -> dict | None:
    """Where the mid-job preview layer is opaque, against the selection and the job's region."""
    if pixels is None:
        return None
    x0, y0, w, h = region
    stats = {"outside_selection": 0, "outside_region": 0, "partial": 0, "partial_on_soft_edge": 0, "opaque": 0,
             "soft_edge_pixels": 0}
    for i, a in enumerate(pixels[3::4]):
        s = selection[i]
        stats["soft_edge_pixels"] += 0 < s < 255
        if not a:
            continue
        x, y = i % width, i // width
        stats["outside_selection"] += s == 0
        stats["outside_region"] += not (x0 <= x < x0 + w and y0 <= y < y0 + h)
        stats["opaque"] += a == 255
        stats["partial"] += a < 255
        stats["partial_on_soft_edge"] += a < 255 and 0 < s < 255
    return stats


def run_job(session, observer: Observer, start, screenshot: str | None = None, capture: bool = False) -> float:
    observer.start(screenshot, capture=capture)
    start()
    waited = u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, "the job to finish")
    observer.stop()
    return waited


def run_e2e() -> bool:
    results: dict = {"ok": False}
    out = os.environ["LB_E2E_OUT"]
    app = Krita.instance()
    app.setBatchmode(True)
    session = next(e.session for e in app.extensions() if type(e).__name__ == "LatentbrushExtension")
    docker = find_docker(app.activeWindow())
    try:
        doc = u.new_document()
        u.layout_for_screenshots(docker)
        u.paint_scene(doc)
        original = u.flattened(doc)

        # connect: the docker starts the local server and connects with the token file it wrote
        seconds = u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connect"] = {"state": session.state, "seconds": seconds,
                              "server_url": session.server.url, "server_output": session.server.recent_output(),
                              "models": [docker.generation.model.itemData(i)
                                         for i in range(docker.generation.model.count())],
                              "status": docker.connection.status.text()}
        if not session.connected:
            return True  # the test reports what it saw

        g = docker.generation
        g.prompt.setPlainText("a wooden boat on a lake")
        g.negative.setPlainText("blurry")
        g.steps.setValue(6)
        g.random_seed.setChecked(False)
        g.seed.setValue(1234)
        g.batch.setValue(1)
        observer = Observer(doc, session)

        # 1. inpaint through the plugin's own action, with a feathered selection
        u.select(doc, 200, 150, 100, 80, feather=4)
        selection = bytes(doc.selection().pixelData(0, 0, doc.width(), doc.height()))
        history_before = u.undo_history()
        waited = run_job(session, observer, app.action("latentbrush_inpaint").trigger,
                         os.path.join(out, "krita-inpaint-preview.png"), capture=True)
        results["inpaint"] = job_summary(last_record(session), doc, original, history_before, observer)
        results["inpaint"]["preview_alpha"] = preview_alpha(observer.preview_pixels, selection,
                                                            results["inpaint"]["region"], doc.width())
        results["inpaint"]["waited"] = waited
        results["inpaint"]["status_line"] = docker.progress.status.text()
        results["inpaint"]["progress_format"] = docker.progress.bar.format()
        results["inpaint"]["history_rows"] = docker.history.list.count()
        results["inpaint"]["history_icon"] = not docker.history.list.item(0).icon().isNull()
        results["layout"] = docker_layout.measure(docker)  # the docker as the screenshots show it
        u.grab_window(os.path.join(out, "krita-docker.png"))
        u.undo()
        results["inpaint"]["after_undo"] = {"layers": u.paint_layers(doc), "restored": u.flattened(doc) == original}

        # 2. cancel in the middle: a long job, cancelled by the action after two preview frames
        g.steps.setValue(60)
        cancel_history_before = u.undo_history()
        observer.start()
        app.action("latentbrush_inpaint").trigger()
        u.wait_until(lambda: observer.frames >= 2, JOB_LIMIT_S, "two preview frames")
        frames_at_cancel = observer.frames
        app.action("latentbrush_cancel").trigger()
        u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, "the cancel")
        observer.stop()
        record = last_record(session)
        results["cancel"] = {"state": record.state, "frames_at_cancel": frames_at_cancel, "step": record.step,
                             "total": record.total, "layers": u.paint_layers(doc),
                             "restored": u.flattened(doc) == original,
                             "undo_added": u.undo_history()[len(cancel_history_before):]}

        # 3. refine (img2img) of the selection at 50 % through the docker's button
        g.steps.setValue(6)
        g.strength.setValue(50)
        before = u.flattened(doc)
        history_before = u.undo_history()
        run_job(session, observer, g.buttons["refine"].click)
        results["refine"] = job_summary(last_record(session), doc, before, history_before, observer)
        results["refine"]["strength"] = last_record(session).settings.strength

        # 4. upscale x2 (Lanczos) of the whole image
        u.deselect(doc)
        g.upscale_factor.setValue(2.0)
        g.upscaler.setCurrentIndex(max(0, g.upscaler.findData("lanczos")))
        history_before = u.undo_history()
        run_job(session, observer, g.buttons["upscale"].click)
        record = last_record(session)
        node = doc.nodeByName(record.results[0].layer_name) if record.results else None
        results["upscale"] = {"state": record.state, "error": record.error, "size": [doc.width(), doc.height()],
                              "layer_bounds": None if node is None else [node.bounds().x(), node.bounds().y(),
                                                                         node.bounds().width(), node.bounds().height()],
                              "layers": u.paint_layers(doc), "undo_added": u.undo_history()[len(history_before):]}

        kra = os.path.join(out, "plugin.kra")
        results["saved"] = bool(doc.saveAs(kra)) and os.path.isfile(kra)
        results["kra"] = kra
        latencies = [s * 1000 for s in session.preview_latencies]
        results["preview_latency_ms"] = {
            "frames": len(latencies), "median": statistics.median(latencies) if latencies else None,
            "p95": sorted(latencies)[int(0.95 * (len(latencies) - 1))] if latencies else None,
            "max": max(latencies) if latencies else None, "pump_busy_interval_ms": 5,
        }
        docker.connection.button.click()  # disconnect: stops the server this session started
        u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        results["server_stopped"] = True
        results["ok"] = True
    finally:
        u.write_results(results)
    return True
