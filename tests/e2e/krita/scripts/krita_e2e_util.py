"""Helpers for e2e scripts that run *inside* real Krita (Krita's Python: stdlib, PyQt and krita only)."""

from __future__ import annotations

import json
import os
import time

from krita import Krita, Selection

try:
    from PyQt6.QtCore import QEventLoop, QTimer
    from PyQt6.QtWidgets import QAbstractItemView, QDockWidget
except ImportError:
    from PyQt5.QtCore import QEventLoop, QTimer
    from PyQt5.QtWidgets import QAbstractItemView, QDockWidget

W, H = 512, 384
T0 = time.time()


def log(*parts: object) -> None:
    print(f"[e2e +{time.time() - T0:.1f}s]", *parts, flush=True)


def wait_until(predicate, limit_s: float, what: str, tick_ms: int = 5) -> float:
    """Run Qt's event loop (nested) until ``predicate()``; returns seconds waited, raises on timeout."""
    start = time.perf_counter()
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: predicate() and loop.quit())
    timer.start(tick_ms)
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(int(limit_s * 1000))
    if not predicate():
        loop.exec()
    timer.stop()
    guard.stop()
    if not predicate():
        raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}")
    return time.perf_counter() - start


def plugin_session(app):
    """The latentbrush extension's session (its connection, server and job history) in this Krita."""
    return next(e.session for e in app.extensions() if type(e).__name__ == "LatentbrushExtension")


def run_job(session, start, limit_s: float) -> float:
    """``start()`` a job from the docker and wait until no job runs; the seconds it took."""
    start()
    return wait_until(lambda: session.running_jobs == 0, limit_s, "the job to finish")


def pump_events(ms: int) -> None:
    """Let Qt run for ``ms`` milliseconds (repaints, queued signals)."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def new_document(width: int = W, height: int = H, depth: str = "U8", model: str = "RGBA", show: bool = True):
    app = Krita.instance()
    doc = app.createDocument(width, height, "latentbrush-e2e", model, depth, "", 72.0)
    doc.setBatchmode(True)
    if show and app.activeWindow() is not None:
        app.activeWindow().addView(doc)
        app.setActiveDocument(doc)
    return doc


def paint_scene(doc) -> None:
    """Sky gradient, green ground, a red block and a yellow disc on the background layer (BGRA)."""
    w, h = doc.width(), doc.height()
    rows = []
    for y in range(h):
        if y < h * 2 // 3:
            t = y * 255 // (h * 2 // 3)
            row = bytearray(bytes((255, 200 - t // 3, 120 - t // 3, 255)) * w)
        else:
            row = bytearray(bytes((40, 150, 50, 255)) * w)
        if h // 4 <= y < h // 4 + 100:
            row[60 * 4 : 180 * 4] = bytes((30, 30, 220, 255)) * 120  # red block x 60..179
        dy = y - h // 2
        if abs(dy) < 70:
            half = int((70 * 70 - dy * dy) ** 0.5)
            x0, x1 = max(0, 340 - half), min(w, 340 + half)
            row[x0 * 4 : x1 * 4] = bytes((30, 220, 240, 255)) * (x1 - x0)  # yellow disc at (340, h/2)
        rows.append(bytes(row))
    background = doc.rootNode().childNodes()[0]
    background.setPixelData(b"".join(rows), 0, 0, w, h)
    doc.refreshProjection()
    doc.waitForDone()


def start_local_server(docker, session, limit_s: float = 120) -> float:
    """Connect as a painter does in local mode: the docker starts LB_E2E_SERVER_CMD and connects with the
    token file it wrote. Returns the seconds it took; ``session.connected`` says whether it worked."""
    docker.connection.set_mode("local")
    docker.connection.command.setText(os.environ["LB_E2E_SERVER_CMD"])
    started = time.perf_counter()
    docker.connection.button.click()
    wait_until(lambda: session.connected or session.state == "failed", limit_s, "the connection")
    return time.perf_counter() - started


def select(doc, x: int, y: int, w: int, h: int, feather: int = 0) -> None:
    sel = Selection()
    sel.select(x, y, w, h, 255)
    if feather:
        sel.feather(feather)
    doc.setSelection(sel)
    doc.waitForDone()


def deselect(doc) -> None:
    doc.setSelection(Selection())
    doc.waitForDone()


def flattened(doc) -> bytes:
    doc.refreshProjection()
    doc.waitForDone()
    return bytes(doc.pixelData(0, 0, doc.width(), doc.height()))


def layers(doc) -> list[list]:
    """Top-level nodes as [name, type, [x, y, w, h], locked, visible, children]."""
    out = []
    for n in doc.rootNode().childNodes():
        b = n.bounds()
        out.append([n.name(), n.type(), [b.x(), b.y(), b.width(), b.height()], n.locked(), n.visible(),
                    [c.name() for c in n.childNodes()]])
    return out


def paint_layers(doc) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes() if n.type() != "selectionmask"]


def undo_history() -> list[str]:
    """The active document's done commands, as Krita's History docker lists them ('<empty>' first).

    The docker also lists undone (redoable) commands after the current one; those are left out.
    """
    for doc in Krita.instance().documents():
        doc.waitForDone()
    pump_events(100)  # the docker follows the undo stack through queued signals
    window = Krita.instance().activeWindow()
    for dock in window.qwindow().findChildren(QDockWidget):
        if dock.objectName() == "History":
            for view in dock.findChildren(QAbstractItemView):
                model = view.model()
                current = view.selectionModel().currentIndex().row()
                rows = model.rowCount() if current < 0 else current + 1
                return [str(model.data(model.index(r, 0))) for r in range(rows)]
    raise RuntimeError("Krita's History docker was not found")


def undo() -> None:
    Krita.instance().action("edit_undo").trigger()
    for doc in Krita.instance().documents():
        doc.waitForDone()


def differing_pixels(a: bytes, b: bytes, width: int, box: tuple[int, int, int, int] | None = None,
                     inside: bool = False) -> int:
    """How many pixels differ; with ``box`` only those outside it (or inside when ``inside``)."""
    count = 0
    for i in range(0, len(a), 4):
        if a[i : i + 4] != b[i : i + 4]:
            if box is not None:
                p = i // 4
                x, y = p % width, p // width
                bx, by, bw, bh = box
                in_box = bx <= x < bx + bw and by <= y < by + bh
                if in_box != inside:
                    continue
            count += 1
    return count


def layout_for_screenshots(docker, height: int = 760) -> None:
    """A large window, fewer dockers on the right and room for ours, so screenshots show it."""
    try:
        from PyQt6.QtCore import Qt
    except ImportError:
        from PyQt5.QtCore import Qt
    qwindow = Krita.instance().activeWindow().qwindow()
    screen = qwindow.screen().availableGeometry()
    qwindow.setGeometry(screen)
    for dock in qwindow.findChildren(QDockWidget):
        if dock.objectName() in ("ColorSelectorNg", "PresetDocker", "sharedtooldocker"):
            dock.setVisible(False)
    docker.setVisible(True)
    qwindow.resizeDocks([docker], [height], Qt.Orientation.Vertical)
    qwindow.resizeDocks([docker], [360], Qt.Orientation.Horizontal)
    pump_events(300)


def grab_window(path: str) -> bool:
    window = Krita.instance().activeWindow()
    pump_events(300)
    return bool(window.qwindow().grab().save(path))


def write_results(results: dict) -> None:
    path = os.environ["LB_E2E_RESULT"]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=str)
    os.replace(path + ".tmp", path)
