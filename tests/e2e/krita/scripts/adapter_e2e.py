"""Inside real Krita, no backend: the document adapter (KritaHost) and the plugin's registration.

Measures and records; ``test_krita_e2e.py`` asserts on the JSON this writes (LB_E2E_RESULT).
"""

from __future__ import annotations

import os
import sys
import time

import krita_e2e_util as u
from krita import Krita
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.hosts.krita.colorspace import UnsupportedDocument
from latentbrush.plugin.hosts.krita.document import KritaHost
from latentbrush.plugin.hosts.krita.extension import find_docker
from latentbrush.plugin.qt import QT_API, QWidget
from latentbrush.protocol.geometry import Rect, Size


def plugin_state(results: dict) -> None:
    app = Krita.instance()
    results["krita"] = app.version()
    results["python"] = sys.version.split()[0]
    results["qt_api"] = QT_API
    results["extensions"] = [type(e).__name__ for e in app.extensions()]
    results["actions"] = {
        name: (app.action(name).shortcut().toString() if app.action(name) is not None else None)
        for name in ("latentbrush_inpaint", "latentbrush_generate", "latentbrush_refine",
                     "latentbrush_upscale", "latentbrush_cancel")
    }
    docker = find_docker(app.activeWindow())
    results["docker_found"] = docker is not None
    if docker is not None:
        results["docker_widgets"] = sorted(
            w.objectName() for w in docker.findChildren(QWidget) if w.objectName().startswith("latentbrush_")
        )


def selection_and_reads(doc, results: dict) -> None:
    host = KritaHost(doc)
    u.select(doc, 200, 150, 100, 80, feather=8)
    sel = host.selection()
    values = set(sel.data)
    results["feathered_selection"] = {"bounds": list(sel.bounds.xywh()), "min": min(values), "max": max(values),
                                      "partial_values": sum(1 for v in values if 0 < v < 255)}
    u.select(doc, -30, 300, 100, 120)
    results["edge_selection_bounds"] = list(host.selection().bounds.xywh())
    u.select(doc, 600, 500, 10, 10)
    results["outside_selection"] = host.selection() is None
    u.deselect(doc)
    results["no_selection"] = host.selection() is None
    px = host.read_pixels(Rect(-8, -8, 32, 32))
    results["read_past_edge"] = {"corner": list(px.data[:4]), "inside": list(px.data[(16 * 32 + 16) * 4:][:4]),
                                 "format": px.format}
    results["read_red_block"] = list(host.read_pixels(Rect(100, 120, 1, 1)).data)


def clipped_frame(bgr: bytes, width: int, height: int) -> bytes:
    """A BGRA preview frame as the server sends a masked job's: transparent border, a soft ramp, opaque inside."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            edge = min(x, y, width - 1 - x, height - 1 - y)
            out += bgr + bytes((min(255, max(0, (edge - 3) * 85)),))
    return bytes(out)


def inpaint_like_job(doc, results: dict) -> None:
    """What the controller does for a one-result job: previews, then the result, then remove_preview."""
    before = u.flattened(doc)
    history_before = u.undo_history()
    host = KritaHost(doc)
    region = Rect(180, 130, 140, 120)
    frame_ms, seen = [], []
    for step in range(5):
        color = bytes((0, 40 * step, 255 - 40 * step))  # a 70x60 frame stretched over the region
        start = time.perf_counter()
        host.show_preview(Pixels(region, "bgra8", clipped_frame(color, 70, 60), Size(70, 60)))
        doc.waitForDone()
        frame_ms.append((time.perf_counter() - start) * 1000)
        center = bytes(doc.pixelData(region.x + 70, region.y + 60, 1, 1))
        previews = [n for n in doc.rootNode().childNodes() if n.name() == "[Preview]"]
        seen.append({"count": len(previews), "locked": previews[0].locked() if previews else None,
                     "bounds": list(u.layers(doc)[-1][2]), "center_matches": center == color + b"\xff"})
    results["preview_frames"] = seen
    shown = bytes(previews[0].pixelData(*region.xywh()))[3::4]  # the layer's alpha over the region
    results["preview_alpha"] = {"corner": shown[0], "center": shown[60 * region.width + 70],
                                "partial": sum(1 for a in shown if 0 < a < 255)}
    results["preview_update_ms"] = frame_ms
    # result: opaque in the middle, transparent border of 10 px (as a feathered composite would be)
    rows = []
    for y in range(region.height):
        row = bytearray()
        for x in range(region.width):
            inside = 10 <= x < region.width - 10 and 10 <= y < region.height - 10
            row += bytes((200, 100, 50, 255 if inside else 0))
        rows.append(bytes(row))
    node = host.add_result_layer("[Generated] a test (1234)", Pixels(region, "rgba8", b"".join(rows)))
    host.remove_preview()
    after = u.flattened(doc)
    b = node.bounds()
    results["result"] = {
        "layers": u.layers(doc),
        "bounds": [b.x(), b.y(), b.width(), b.height()],
        "undo_added": u.undo_history()[len(history_before):],
        "changed_outside_opaque_box": u.differing_pixels(before, after, doc.width(), (190, 140, 120, 100)),
        "changed_inside_opaque_box": u.differing_pixels(before, after, doc.width(), (190, 140, 120, 100), inside=True),
    }
    u.undo()
    results["after_undo"] = {"layers": u.paint_layers(doc), "image_restored": u.flattened(doc) == before}


def cancelled_job(doc, results: dict) -> None:
    before = u.flattened(doc)
    history_before = u.undo_history()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 64, 64), "bgra8", bytes((0, 255, 0, 255)) * 4096))
    during = u.paint_layers(doc)
    host.remove_preview()
    results["cancel"] = {"during": during, "after": u.paint_layers(doc), "image_restored": u.flattened(doc) == before,
                         "undo_added": u.undo_history()[len(history_before):]}


def batch_job(doc, results: dict) -> None:
    history_before = u.undo_history()
    host = KritaHost(doc, batch=3, group_name="[Generated] batch test")
    for i in range(3):
        host.add_result_layer(f"[Generated] item {i}", Pixels(Rect(10 + 20 * i, 10, 16, 16), "bgra8",
                                                             bytes((0, 0, 80 * i, 255)) * 256))
    host.remove_preview()
    results["batch"] = {"layers": u.layers(doc), "undo_added": u.undo_history()[len(history_before):]}
    u.undo()
    results["batch"]["after_undo"] = u.paint_layers(doc)


def upscale_job(doc, results: dict) -> None:
    history_before = u.undo_history()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 32, 32), "bgra8", bytes((0, 255, 0, 255)) * 1024))
    host.resize_canvas(Size(doc.width() * 2, doc.height() * 2))
    node = host.add_result_layer("[Upscaled] lanczos x2", Pixels(Rect(0, 0, doc.width(), doc.height()), "bgra8",
                                                                bytes((9, 9, 9, 255)) * (doc.width() * doc.height())))
    host.remove_preview()
    b = node.bounds()
    results["upscale"] = {"size": [doc.width(), doc.height()], "bounds": [b.x(), b.y(), b.width(), b.height()],
                          "layers": u.paint_layers(doc), "undo_added": u.undo_history()[len(history_before):]}


def other_documents(results: dict) -> None:
    doc16 = u.new_document(64, 32, depth="U16", show=False)
    background = doc16.rootNode().childNodes()[0]
    background.setPixelData(bytes((0x34, 0x12, 0x78, 0x56, 0xBC, 0x9A, 0xFF, 0xFF)) * (64 * 32), 0, 0, 64, 32)
    host = KritaHost(doc16)
    px = host.read_pixels(Rect(0, 0, 1, 1))
    node = host.add_result_layer("r16", Pixels(Rect(2, 2, 1, 1), "bgra8", bytes((1, 2, 3, 255))))
    results["u16"] = {"read": list(px.data), "written": list(bytes(node.pixelData(2, 2, 1, 1)))}
    doc16.close()
    cmyk = u.new_document(16, 16, model="CMYKA", show=False)
    try:
        KritaHost(cmyk).read_pixels(Rect(0, 0, 4, 4))
        results["cmyk_message"] = None
    except UnsupportedDocument as exc:
        results["cmyk_message"] = str(exc)
    cmyk.close()


def run_e2e() -> bool:
    results: dict = {"ok": False}
    try:
        app = Krita.instance()
        app.setBatchmode(True)
        plugin_state(results)
        doc = u.new_document()
        u.paint_scene(doc)
        selection_and_reads(doc, results)
        inpaint_like_job(doc, results)
        cancelled_job(doc, results)
        batch_job(doc, results)
        out_dir = os.environ["LB_E2E_OUT"]
        kra = os.path.join(out_dir, "adapter.kra")
        results["saved"] = bool(doc.saveAs(kra)) and os.path.isfile(kra)
        results["kra"] = kra
        upscale_job(doc, results)
        other_documents(results)
        results["ok"] = True
    finally:
        u.write_results(results)
    return True
