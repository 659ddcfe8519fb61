"""Inside real Krita with the real backend: the painter's selection is the contract (issue 11, items 1 and 3).

Scenarios, all through the docker with its default settings (the tester's, on a 1024x768 canvas):
- an elliptical selection (radii 220x150) feathered by Krita's own Select > Feather 20, Inpaint;
- a rectangle that runs past the canvas's left edge, Inpaint;
- the same rectangle with "Blend outward" 12 px: changes may reach 12 px past it, and no further;
- Select All, then the Inpaint button: a layer over the whole canvas.

For each: how many canvas pixels changed where the selection is 0, how far from the selection the
farthest changed pixel is (rectangles), and whether the result layer's alpha ever exceeds the selection's own
coverage. Writes the numbers to LB_E2E_RESULT; the asserts are in test_krita_selection_e2e.py.
"""

from __future__ import annotations

import time

import krita_e2e_util as u
from krita import Krita, Selection
from latentbrush.plugin.hosts.krita.extension import find_docker

CONNECT_LIMIT_S = 120
JOB_LIMIT_S = 300
W, H = 1024, 768


def ellipse_coverage(cx: int, cy: int, rx: int, ry: int) -> bytes:
    """A hard ellipse as gray8 coverage over the whole canvas (255 inside, 0 outside)."""
    rows = []
    for y in range(H):
        dy = (y + 0.5 - cy) / ry
        row = bytearray(W)
        if abs(dy) < 1:
            half = rx * (1 - dy * dy) ** 0.5
            x0, x1 = max(0, round(cx - half)), min(W, round(cx + half))
            row[x0:x1] = b"\xff" * (x1 - x0)
        rows.append(bytes(row))
    return b"".join(rows)


def set_selection(doc, coverage: bytes, feather: int = 0) -> bytes:
    """Make ``coverage`` the document's selection (then Krita's own feather); returns what Krita holds."""
    sel = Selection()
    sel.setPixelData(coverage, 0, 0, W, H)
    if feather:
        sel.feather(feather)
    doc.setSelection(sel)
    doc.waitForDone()
    return bytes(doc.selection().pixelData(0, 0, W, H))


def rect_coverage(doc, x: int, y: int, w: int, h: int) -> bytes:
    """What Krita holds after Selection.select(x, y, w, h): the canvas part of the rectangle."""
    sel = Selection()
    sel.select(x, y, w, h, 255)
    doc.setSelection(sel)
    doc.waitForDone()
    return bytes(doc.selection().pixelData(0, 0, W, H))


def rect_reach(box: tuple[int, int, int, int] | None, changed: list[int]) -> int | None:
    """How far (square-grow distance, px) the farthest changed pixel lies outside ``box`` (x, y, w, h)."""
    if box is None:
        return None
    x0, y0, w, h = box
    worst = 0
    for p in changed:
        x, y = p % W, p // W
        worst = max(worst, x0 - x, x - (x0 + w - 1), y0 - y, y - (y0 + h - 1))
    return worst


def measure(doc, record, before: bytes, selection: bytes, box: tuple[int, int, int, int] | None) -> dict:
    after = u.flattened(doc)
    changed = [i // 4 for i in range(0, len(before), 4) if before[i: i + 4] != after[i: i + 4]]
    outside = [p for p in changed if selection[p] == 0]
    result = record.results[0] if record.results else None
    node = doc.nodeByName(result.layer_name) if result else None
    over_coverage = None
    if node is not None:
        b = node.bounds()
        pixels = bytes(node.pixelData(b.x(), b.y(), b.width(), b.height()))  # BGRA
        over_coverage = 0
        for row in range(b.height()):
            for col in range(b.width()):
                alpha = pixels[(row * b.width() + col) * 4 + 3]
                x, y = b.x() + col, b.y() + row
                inside = 0 <= x < W and 0 <= y < H
                if alpha and (not inside or alpha > selection[y * W + x]):
                    over_coverage += 1
    partial = sum(1 for v in selection if 0 < v < 255)
    return {
        "state": record.state, "op": record.op, "error": record.error,
        "layer": result.layer_name if result else None,
        "layer_bounds": None if node is None else [node.bounds().x(), node.bounds().y(), node.bounds().width(),
                                                   node.bounds().height()],
        "region": list(record.plan.region.xywh()),
        "edges": [record.plan.grow, record.plan.feather, record.plan.blend, record.plan.outward],
        "selection_partial_pixels": partial,
        "changed": len(changed), "changed_where_unselected": len(outside),
        "reach_past_rect_px": rect_reach(box, changed),
        "alpha_over_coverage": over_coverage,
    }


def run_job(session, start) -> None:
    start()
    u.wait_until(lambda: session.running_jobs == 0, JOB_LIMIT_S, "the job to finish")


def run_e2e() -> bool:
    results: dict = {"ok": False}
    app = Krita.instance()
    app.setBatchmode(True)
    session = next(e.session for e in app.extensions() if type(e).__name__ == "LatentbrushExtension")
    docker = find_docker(app.activeWindow())
    try:
        doc = u.new_document(W, H)
        u.paint_scene(doc)
        u.start_local_server(docker, session, CONNECT_LIMIT_S)
        results["connected"] = session.connected
        if not session.connected:
            results["server_output"] = session.server.recent_output()
            return True
        g = docker.generation
        g.prompt.setPlainText("a stone fountain")
        g.steps.setValue(3)
        g.random_seed.setChecked(False)
        g.seed.setValue(7)
        g.batch.setValue(1)
        results["blend_outward_default"] = g.blend_outward.value()
        inpaint = app.action("latentbrush_inpaint").trigger

        def scenario(name: str, selection: bytes, box=None, start=inpaint) -> None:
            t0 = time.perf_counter()
            before = u.flattened(doc)
            run_job(session, start)
            results[name] = measure(doc, session.history.records[-1], before, selection, box)
            results[name]["seconds"] = round(time.perf_counter() - t0, 1)
            u.undo()
            results[name]["restored_after_undo"] = u.flattened(doc) == before

        # 1. the tester's feathered ellipse
        scenario("feathered_ellipse", set_selection(doc, ellipse_coverage(512, 384, 220, 150), feather=20))
        # 2. a rectangle past the left edge of the canvas
        scenario("off_canvas_rect", rect_coverage(doc, -60, 300, 200, 120), (0, 300, 140, 120))
        # 3. the same with blend outward 12 px
        g.blend_outward.setValue(12)
        scenario("blend_outward_12", rect_coverage(doc, -60, 300, 200, 120), (0, 300, 140, 120))
        g.blend_outward.setValue(0)
        # 4. Select All, then the docker's Inpaint button
        sel = Selection()
        sel.select(0, 0, W, H, 255)
        doc.setSelection(sel)
        doc.waitForDone()
        scenario("select_all_inpaint", b"\xff" * (W * H), (0, 0, W, H), g.buttons["inpaint"].click)
        results["ok"] = True
    finally:
        try:
            docker.connection.button.click()  # disconnect: stops the server this session started
            u.wait_until(lambda: not session.server.running, 30, "the server to stop")
        except Exception as exc:  # the results already say what went wrong
            results["stop_error"] = str(exc)
        u.write_results(results)
    return True
