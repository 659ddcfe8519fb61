"""Inside real Krita with the real backend: two region rows give the sky and the sea prompts of their own.

Two paint layers are the regions: "sky" opaque over the top half, "sea" over the bottom (their opacity is the
mask). Rows are added with the docker's "+ Region" button, each set to its layer and a prompt; Generate runs
on the built-in tiny model with a fixed seed, then again with the rows off. Writes what it saw to
LB_E2E_RESULT (asserts: test_krita_regions_e2e.py).
"""

from __future__ import annotations

import os

import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.layers import LayerSource, node_id
from latentbrush.protocol import blob_hash

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240
W, H = 256, 192


def band(top: int, bottom: int, bgra: tuple[int, int, int, int]) -> bytes:
    """A W x H BGRA layer: ``bgra`` on rows top..bottom, transparent elsewhere."""
    row, empty = bytes(bgra) * W, bytes(4 * W)
    return b"".join(row if top <= y < bottom else empty for y in range(H))


def layer_pixels(node) -> bytes:
    return bytes(node.pixelData(0, 0, W, H))


def job_summary(session, doc) -> dict:
    record = session.history.records[-1]
    result = record.results[0] if record.results else None
    node = result.layer if result is not None else None
    request = record.request
    regions = [] if request is None else [i for i in request.inputs or () if i.role == "region"]
    return {"state": record.state, "op": record.op, "error": record.error, "seconds": record.seconds,
            "regions": [{"prompt": i.param("prompt"), "weight": i.param("weight"), "blob": i.blob} for i in regions],
            "context": None if request is None else list(request.context.xywh()) if request.context else None,
            "info_regions": (record.info or {}).get("regions"),
            "pixels": layer_pixels(node) if node is not None else None, "node": node,
            "layers": u.paint_layers(doc)}


def run_e2e() -> bool:
    results: dict = {"ok": False}
    out = os.environ["LB_E2E_OUT"]
    app = Krita.instance()
    app.setBatchmode(True)
    session = u.plugin_session(app)
    docker = find_docker(app.activeWindow())
    try:
        doc = u.new_document(W, H)
        u.layout_for_screenshots(docker, height=900)
        background = doc.rootNode().childNodes()[0]
        background.setPixelData(bytes((255, 255, 255, 255)) * (W * H), 0, 0, W, H)
        layers = {}
        for name, top, bottom, color in (("sky", 0, 96, (230, 160, 90, 255)), ("sea", 96, H, (120, 60, 20, 255))):
            node = doc.createNode(name, "paintlayer")
            doc.rootNode().addChildNode(node, None)
            node.setPixelData(band(top, bottom, color), 0, 0, W, H)
            layers[name] = node
        doc.refreshProjection()
        doc.waitForDone()
        before = {name: layer_pixels(node) for name, node in layers.items()}

        u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connect"] = {"state": session.state, "server_output": session.server.recent_output()}
        if not session.connected:
            return True

        g = docker.generation
        g.prompt.setPlainText("a harbour at dusk")
        g.steps.setValue(4)
        g.cfg.setValue(5.0)
        g.random_seed.setChecked(False)
        g.seed.setValue(77)
        g.batch.setValue(1)
        u.deselect(doc)

        g.controls.refresh_layers()
        rows = []
        for name, prompt in (("sky", "a stormy sky"), ("sea", "a calm green sea")):
            g.controls.add_region.click()
            row = g.controls.rows[-1]
            row.layer.setCurrentIndex(row.layer.findText(name))
            row.prompt.setText(prompt)
            rows.append(row)
        rows[1].set_weight(0.8)
        results["rows"] = [{"layers": [r.layer.itemText(i) for i in range(r.layer.count())],
                            "source": r.layer.source() == LayerSource(node_id(layers[n]), n)}
                           for r, n in zip(rows, ("sky", "sea"), strict=True)]

        history_before = u.undo_history()
        u.run_job(session, g.run.click, JOB_LIMIT_S)
        on = job_summary(session, doc)
        results["undo_added"] = u.undo_history()[len(history_before):]
        results["on"] = {k: v for k, v in on.items() if k not in ("pixels", "node")}
        results["masks_are_the_layers_opacity"] = [
            region["blob"] == blob_hash(before[name][3::4]) for region, name in zip(on["regions"], ("sky", "sea"),
                                                                                      strict=False)]
        results["regions_unchanged"] = all(layer_pixels(n) == before[name] for name, n in layers.items())

        for row in rows:
            row.enabled.setChecked(False)
        u.run_job(session, g.run.click, JOB_LIMIT_S)
        off = job_summary(session, doc)
        results["off"] = {k: v for k, v in off.items() if k not in ("pixels", "node")}
        same_size = on["pixels"] is not None and off["pixels"] is not None and len(on["pixels"]) == len(off["pixels"])
        results["differing_pixels"] = u.differing_pixels(on["pixels"], off["pixels"], W) if same_size else None
        for row in rows:
            row.enabled.setChecked(True)
        if off["node"] is not None:
            off["node"].setVisible(False)
        docker.show_tab("Generate")
        results["screenshot"] = u.grab_window(os.path.join(out, "krita-regions.png"))
        results["krita"] = app.version()
        docker.connection.button.click()
        u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        results["ok"] = True
    finally:
        u.write_results(results)
    return True
