"""Inside real Krita with the real backend: the job history lives in the .kra and comes back on reopen.

Three inpaint jobs through the docker, save as .kra, close, reopen: the History list shows the
saved jobs with thumbnails; Apply re-creates a layer from the saved pixels; the search line filters
by prompt; Delete forgets one job (also in the document); a lower size budget drops the oldest full
result first and says so. Writes what it saw to LB_E2E_RESULT (asserts: test_krita_history_e2e.py).
"""

from __future__ import annotations

import math
import os

import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.history_store import ANNOTATION_TYPE
from latentbrush.plugin.qt import qbytes

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240
PROMPTS = ("a wooden boat", "a red kite in the sky", "a stone tower")
BOXES = ((40, 40, 200, 150), (280, 30, 200, 150), (150, 200, 200, 150))


def saved_jobs(doc) -> list[ha.ArchivedJob]:
    if ANNOTATION_TYPE not in list(doc.annotationTypes()):
        return []
    return list(ha.unpack(qbytes(doc.annotation(ANNOTATION_TYPE))).jobs)


def layer_bytes(node) -> tuple[list[int], bytes]:
    b = node.bounds()
    box = [b.x(), b.y(), b.width(), b.height()]
    return box, bytes(node.pixelData(*box))


def select_row(docker, job_id: str) -> None:
    lst = docker.history.list
    for i in range(lst.count()):
        if docker.history._job_id(lst.item(i)) == job_id:
            lst.setCurrentRow(i)
            return
    raise RuntimeError(f"no history row for {job_id}")


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
        u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connect"] = {"state": session.state, "server_output": session.server.recent_output()}
        if not session.connected:
            return True

        g = docker.generation
        g.negative.setPlainText("blurry")
        g.steps.setValue(4)
        g.random_seed.setChecked(False)
        g.batch.setValue(1)
        jobs = []
        for n, (prompt, box) in enumerate(zip(PROMPTS, BOXES, strict=True)):
            g.prompt.setPlainText(prompt)
            g.seed.setValue(100 + n)
            u.select(doc, *box)
            app.action("latentbrush_inpaint").trigger()
            u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, f"job {n}")
            record = session.history.records[-1]
            node = doc.nodeByName(record.results[0].layer_name) if record.results else None
            jobs.append({"job_id": record.job_id, "state": record.state, "error": record.error,
                         "layer_name": record.results[0].layer_name if record.results else None,
                         "layer": layer_bytes(node) if node else None, "provenance": record.provenance()})
        u.deselect(doc)
        results["jobs"] = [{k: v for k, v in j.items() if k != "layer"} for j in jobs]
        if any(j["layer"] is None for j in jobs):
            return True
        results["before_save"] = {"rows": docker.history.job_ids(), "annotations": list(doc.annotationTypes()),
                                  "saved_jobs": [j.job_id for j in saved_jobs(doc)]}

        kra = os.path.join(out, "history.kra")
        results["saved"] = bool(doc.saveAs(kra))
        results["kra"] = kra
        doc.close()
        u.pump_events(300)

        doc = app.openDocument(kra)
        app.activeWindow().addView(doc)
        app.setActiveDocument(doc)
        doc.setBatchmode(True)
        u.wait_until(lambda: len(docker.history.job_ids()) == 3, 30, "the restored history rows")
        restored = session.documents.jobs(doc)
        lst = docker.history.list
        results["restored"] = {
            "rows": docker.history.job_ids(),
            "icons": [not lst.item(i).icon().isNull() for i in range(lst.count())],
            "texts": [lst.item(i).text() for i in range(lst.count())],
            "parameters": [dict(j.parameters) for j in restored],
            "thumbnails": [None if j.thumbnail is None else [j.thumbnail.encoding, j.thumbnail.width,
                                                               j.thumbnail.height] for j in restored],
            "complete": [j.complete for j in restored],
            "modified": bool(doc.modified()),
            "layers": u.paint_layers(doc),
        }
        docker.show_tab("History")  # the README's screenshot of the restored history
        results["screenshot"] = u.grab_window(os.path.join(out, "krita-history.png"))
        docker.show_tab("Generate")

        # Apply the first job again: a new layer from the saved pixels, one undo step
        first = jobs[0]
        history_before = u.undo_history()
        select_row(docker, first["job_id"])
        ids_before = {str(n.uniqueId()) for n in doc.rootNode().childNodes()}
        original = doc.nodeByName(first["layer_name"])
        docker.history.apply.click()
        doc.waitForDone()
        added = [n for n in doc.rootNode().childNodes() if str(n.uniqueId()) not in ids_before]
        if len(added) != 1:
            results["apply"] = {"added": [n.name() for n in added], "status": docker.progress.status.text()}
            return True
        top = added[0]
        box, data = layer_bytes(top)
        results["apply"] = {"layer_name": top.name(), "expected_name": first["layer_name"], "bounds": box,
                            "expected_bounds": first["layer"][0], "identical": data == first["layer"][1],
                            "identical_to_saved_layer": original is not None and layer_bytes(original)[1] == data,
                            "undo_added": u.undo_history()[len(history_before):],
                            "layers": u.paint_layers(doc)}

        # search by prompt
        docker.history.filter.setText("KITE")
        kite = docker.history.visible_job_ids()
        docker.history.filter.setText("tower boat")
        none = docker.history.visible_job_ids()
        docker.history.filter.setText("")
        results["search"] = {"kite": kite, "tower boat": none, "cleared": docker.history.visible_job_ids()}

        # delete one job: gone from the list and from the document, its layer stays
        third = jobs[2]
        select_row(docker, third["job_id"])
        layers_before = u.paint_layers(doc)
        docker.history.delete.click()
        results["delete"] = {"rows": docker.history.job_ids(),
                             "saved_jobs": [j.job_id for j in saved_jobs(doc)],
                             "layers_unchanged": u.paint_layers(doc) == layers_before}

        # the budget: room for the thumbnails and only the newest full result
        kept = saved_jobs(doc)
        thumbs_only = len(ha.pack([j.without_pixels() for j in kept], ha.MB).data)
        newest = kept[-1].stored_bytes
        budget_mb = math.ceil((thumbs_only + newest + 4096) / (ha.MB / 100)) / 100
        results["budget_sizes"] = {"thumbs_only": thumbs_only, "full": [j.stored_bytes for j in kept],
                                   "budget_mb": budget_mb}
        docker.history.budget.setValue(budget_mb)
        docker.history.budget.editingFinished.emit()
        after = saved_jobs(doc)
        session.status_changed.emit("", None)
        select_row(docker, first["job_id"])
        layers_before = u.paint_layers(doc)
        docker.history.apply.click()
        results["budget"] = {
            "note": docker.history.note.text(),
            "complete": [j.complete for j in after], "saved_jobs": [j.job_id for j in after],
            "annotation_bytes": len(qbytes(doc.annotation(ANNOTATION_TYPE))),
            "budget_bytes": int(budget_mb * ha.MB),
            "texts": [lst.item(i).text() for i in range(lst.count())],
            "apply_dropped_status": docker.progress.status.text(),
            "apply_dropped_layers_unchanged": u.paint_layers(doc) == layers_before,
            "setting": app.readSetting("latentbrush", "history_budget_mb", ""),
        }
        results["krita"] = app.version()
        docker.connection.button.click()
        u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        results["ok"] = True
    finally:
        u.write_results(results)
    return True
