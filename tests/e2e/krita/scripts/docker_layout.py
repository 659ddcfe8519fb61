"""Inside real Krita: measure the docker's geometry tab by tab (does each tab fit without scrolling, is the
primary action visible and big, how many History rows show). ``plugin_e2e`` records it; the test asserts."""

from __future__ import annotations

import krita_e2e_util as u
from krita import Krita

try:
    from PyQt6.QtCore import QPoint, QRect
    from PyQt6.QtWidgets import QPushButton, QScrollArea, QWidget
except ImportError:
    from PyQt5.QtCore import QPoint, QRect
    from PyQt5.QtWidgets import QPushButton, QScrollArea, QWidget


def _rect_in(widget, ancestor) -> list[int]:
    top_left = widget.mapTo(ancestor, QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]


def _clipped(content, docker) -> list[str]:
    """Visible widgets of a tab that do not lie wholly inside the docker's visible area."""
    area = docker.rect()
    out = []
    for widget in content.findChildren(QWidget):
        if widget.isVisible() and widget.width() > 0 and widget.height() > 0 and widget.window() is docker.window():
            x, y, w, h = _rect_in(widget, docker)
            if not area.contains(QRect(x, y, w, h)):
                out.append(widget.objectName() or type(widget).__name__)
    return out


def measure(docker) -> dict:
    window = Krita.instance().activeWindow().qwindow()
    tabs = docker.tabs
    before = tabs.currentIndex()
    result: dict = {"window": [window.width(), window.height()], "docker": [docker.width(), docker.height()],
                    "tabs": {}, "normal_button_height": QPushButton("Refine").sizeHint().height()}
    for index in range(tabs.count()):
        tabs.setCurrentIndex(index)
        u.pump_events(150)
        page = tabs.widget(index)
        content = page.widget() if isinstance(page, QScrollArea) else page
        scrolls = isinstance(page, QScrollArea) and page.verticalScrollBar().maximum() > 0
        result["tabs"][tabs.tabText(index)] = {
            "scrolls": scrolls, "clipped": _clipped(content, docker), "page_height": page.height(),
            "content_min_height": content.minimumSizeHint().height(),
        }
        if tabs.tabText(index) == "Generate":
            run = docker.generation.run
            result["primary"] = {"visible": run.isVisible(), "rect": _rect_in(run, docker), "text": run.text(),
                                 "clipped": not docker.rect().contains(QRect(*_rect_in(run, docker)))}
        if tabs.tabText(index) == "History":
            listing = docker.history.list
            row = listing.sizeHintForRow(0) if listing.count() else -1
            result["history"] = {"viewport_height": listing.viewport().height(), "row_height": row,
                                 "rows_shown": listing.viewport().height() // row if row > 0 else 0}
    cancel = docker.progress.cancel
    result["cancel_visible"] = cancel.isVisible() and docker.rect().contains(QRect(*_rect_in(cancel, docker)))
    tabs.setCurrentIndex(before)
    u.pump_events(100)
    return result
