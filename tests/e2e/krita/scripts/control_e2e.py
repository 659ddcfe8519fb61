"""Inside real Krita with the real backend: a scribble on a layer steers Generate through the docker's control list.

A paint layer gets dark strokes (on transparency, over the white background); a control row is added with
the docker's "+ Control" button, set to scribble and that layer; Generate runs on the built-in tiny model
with its tiny scribble ControlNet. Then the same seed with the row off, a read of the layer while hidden,
and "make control image from canvas". Writes what it saw to LB_E2E_RESULT (asserts: test_krita_control_e2e.py).
"""

from __future__ import annotations

import hashlib
import os

import docker_layout
import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.hosts.krita.document import KritaHost
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.hosts.krita.layers import LayerSource, node_id
from latentbrush.protocol import blob_hash
from latentbrush.protocol.geometry import Rect

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 240
W, H = 256, 192


def strokes() -> bytes:
    """A house in dark pencil (BGRA) on a transparent W x H layer: walls, roof, door, 3 px wide."""
    data = bytearray(W * H * 4)
    dark = bytes((40, 35, 30, 255))

    def dot(x: int, y: int) -> None:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if 0 <= x + dx < W and 0 <= y + dy < H:
                    i = ((y + dy) * W + x + dx) * 4
                    data[i : i + 4] = dark

    for x in range(70, 186):
        dot(x, 90)
        dot(x, 170)
    for y in range(90, 171):
        dot(70, y)
        dot(185, y)
    for t in range(0, 59):  # the roof
        dot(70 + t, 90 - t * 60 // 58)
        dot(185 - t, 90 - t * 60 // 58)
    for y in range(130, 171):
        dot(115, y)
        dot(140, y)
    return bytes(data)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def layer_pixels(node) -> bytes:
    return bytes(node.pixelData(0, 0, W, H))


def job_summary(session, doc) -> dict:
    record = session.history.records[-1]
    result = record.results[0] if record.results else None
    node = result.layer if result is not None else None
    request = record.request
    inputs = [] if request is None else [i for i in request.inputs or () if i.role == "control"]
    controls = [{"mode": i.param("mode"), "preprocessor": i.param("preprocessor"), "weight": i.param("weight"),
                 "start": i.param("start"), "end": i.param("end"), "blob": i.blob} for i in inputs]
    return {"state": record.state, "op": record.op, "error": record.error, "seconds": record.seconds,
            "layer_name": result.layer_name if result else None, "controls": controls,
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
        sketch = doc.createNode("scribble", "paintlayer")
        doc.rootNode().addChildNode(sketch, None)
        sketch.setPixelData(strokes(), 0, 0, W, H)
        doc.refreshProjection()
        doc.waitForDone()
        sketch_before = layer_pixels(sketch)

        u.start_local_server(docker, session, CONNECT_LIMIT_S)
        hello = session.client.hello if session.client is not None else None
        results["connect"] = {"state": session.state, "server_output": session.server.recent_output(),
                              "controls": [] if hello is None else [[c.name, c.mode, c.family] for c in hello.controls],
                              "preprocessors": [] if hello is None else list(hello.preprocessors)}
        if not session.connected:
            return True

        g = docker.generation
        g.prompt.setPlainText("a house on a hill")
        g.steps.setValue(4)
        g.random_seed.setChecked(False)
        g.seed.setValue(1234)
        g.batch.setValue(1)
        u.deselect(doc)

        # a control row through the docker's widgets: "+ Control", mode scribble, layer "scribble"
        g.controls.add_control.click()
        row = g.controls.rows[-1]
        row.mode.setCurrentIndex(row.mode.findData("scribble"))
        g.controls.refresh_layers()
        row.layer.setCurrentIndex(row.layer.findText("scribble"))
        results["row"] = {"modes": [row.mode.itemText(i) for i in range(row.mode.count())],
                          "layers": [row.layer.itemText(i) for i in range(row.layer.count())],
                          "source_is_layer": row.layer.source() == LayerSource(node_id(sketch), "scribble"),
                          "make_image_enabled": row.make_image.isEnabled()}

        history_before = u.undo_history()
        u.run_job(session, g.run.click, JOB_LIMIT_S)
        on = job_summary(session, doc)
        results["undo_added"] = u.undo_history()[len(history_before):]
        results["layout"] = docker_layout.measure(docker)["tabs"]["Generate"]
        results["on"] = {k: v for k, v in on.items() if k not in ("pixels", "node")}
        results["sketch_unchanged"] = layer_pixels(sketch) == sketch_before
        sent = on["controls"][0]["blob"] if on["controls"] else None
        results["sketch_blob_is_the_layer"] = sent == blob_hash(sketch_before)

        # the same seed with the row off
        row.enabled.setChecked(False)
        u.run_job(session, g.run.click, JOB_LIMIT_S)
        off = job_summary(session, doc)
        results["off"] = {k: v for k, v in off.items() if k not in ("pixels", "node")}
        same_size = on["pixels"] is not None and off["pixels"] is not None and len(on["pixels"]) == len(off["pixels"])
        results["differing_pixels"] = u.differing_pixels(on["pixels"], off["pixels"], W) if same_size else None
        results["result_digests"] = [digest(on["pixels"] or b""), digest(off["pixels"] or b"")]
        row.enabled.setChecked(True)

        # a hidden control layer reads the same (the host reads the layer, not the composite)
        sketch.setVisible(False)
        doc.refreshProjection()
        hidden = KritaHost(doc).read_control(LayerSource(node_id(sketch), "scribble"), Rect(0, 0, W, H))
        results["hidden_read_is_the_layer"] = hidden.data == sketch_before
        sketch.setVisible(True)
        doc.refreshProjection()

        # "make control image from canvas": the scribble preprocessor's output as a new layer the row then reads
        for node in (on["node"], off["node"]):
            if node is not None:
                node.setVisible(False)  # the screenshot shows the scribble and the control image, not noise
        if row.make_image.isEnabled():
            history_before = u.undo_history()
            ids_before = {node_id(n) for n in doc.rootNode().childNodes()}
            u.run_job(session, row.make_image.click, JOB_LIMIT_S)
            u.pump_events(100)
            record = session.history.records[-1]
            added = [n for n in doc.rootNode().childNodes() if node_id(n) not in ids_before]
            made = added[0] if len(added) == 1 else None
            pixels = layer_pixels(made) if made is not None else b""
            white = sum(1 for i in range(0, len(pixels), 4) if pixels[i : i + 3] == b"\xff\xff\xff")
            black = sum(1 for i in range(0, len(pixels), 4) if pixels[i : i + 3] == b"\x00\x00\x00")
            results["make_image"] = {
                "state": record.state, "op": record.op, "error": record.error,
                "added": [n.name() for n in added], "undo_added": u.undo_history()[len(history_before):],
                "row_reads_it": made is not None and row.layer.source() == LayerSource(node_id(made), made.name()),
                "row_layer_text": row.layer.currentText(), "white": white, "black": black,
                "sketch_unchanged": layer_pixels(sketch) == sketch_before,
                "preprocessor_next": g.generation_settings("txt2img").controls[0].preprocessor,
            }
        g.controls.add_control.click()  # a second row for the screenshot: canny on the current layer, off
        second = g.controls.rows[-1]
        second.mode.setCurrentIndex(max(0, second.mode.findData("canny")))
        second.enabled.setChecked(False)
        docker.show_tab("Generate")
        results["screenshot"] = u.grab_window(os.path.join(out, "krita-controls.png"))
        results["krita"] = app.version()
        docker.connection.button.click()
        u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        results["ok"] = True
    finally:
        u.write_results(results)
    return True
