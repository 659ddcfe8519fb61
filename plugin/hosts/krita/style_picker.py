"""The Generate tab's style row: a combo of the styles (built-in and the painter's), "Edit..." and a note line.

Picking a style emits ``chosen``; the generation panel then shows the style's model, sampler, steps and CFG in
its own widgets (where the painter may still change them) and applies the template, negative prompt and LoRAs
when a job starts (``core/styles.apply_style``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentbrush.plugin.core.styles import BUILTIN_DIR, DEFAULT_STYLE, Style, find_style, load_styles, user_styles_dir

from ...qt import QComboBox, QHBoxLayout, QLabel, QPushButton, Qt, QVBoxLayout, QWidget, pyqtSignal
from .style_dialog import StyleDialog


class StylePicker(QWidget):
    """Emits ``chosen(style)`` when the painter picks a style or saves one from the editor."""

    chosen = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None,
                 user_dir: Callable[[], Path] = user_styles_dir, builtin_dir: Path = BUILTIN_DIR) -> None:
        super().__init__(parent)
        self._user_dir, self._builtin_dir = user_dir, builtin_dir
        self.styles: tuple[Style, ...] = ()
        self.problems: tuple[str, ...] = ()
        self.samplers: tuple[str, ...] = ()  # the server's, offered in the editor
        self.combo = QComboBox()
        self.combo.setObjectName("latentbrush_style")
        self.combo.activated.connect(self._activated)  # the painter's pick only, not select()
        self.edit = QPushButton("Edit...")
        self.edit.setObjectName("latentbrush_style_edit")
        self.edit.setToolTip("Change this style, or save it under a new name, in your style folder")
        self.edit.clicked.connect(lambda _checked=False: self.open_editor())
        self.note = QLabel()
        self.note.setObjectName("latentbrush_style_note")
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Style"))
        row.addWidget(self.combo, 1)
        row.addWidget(self.edit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self.reload()

    def reload(self, select: str | None = None) -> None:
        """Read the style folders again; keep (or move to ``select``) the current choice."""
        wanted = select or self.current_name()
        self.styles, self.problems = load_styles(self._builtin_dir, self._user_dir())
        self.combo.blockSignals(True)
        self.combo.clear()
        for style in self.styles:
            self.combo.addItem(style.name + ("" if style.source == "builtin" else " (yours)"), style.name)
            self.combo.setItemData(self.combo.count() - 1, style.description or style.prompt,
                                  Qt.ItemDataRole.ToolTipRole)
        self.combo.blockSignals(False)
        self.select(wanted or DEFAULT_STYLE)
        self.show_notes(())

    def select(self, name: str) -> None:
        """Show ``name`` (the first style when there is none of that name); emits nothing."""
        style = find_style(self.styles, name)
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(max(0, self.combo.findData(style.name) if style is not None else 0))
        self.combo.blockSignals(False)

    def current(self) -> Style | None:
        index = self.combo.currentIndex()
        return self.styles[index] if 0 <= index < len(self.styles) else None

    def current_name(self) -> str:
        style = self.current()
        return style.name if style is not None else ""

    def show_notes(self, notes: tuple[str, ...]) -> None:
        """The load problems of the style files and ``notes`` (what the last job could not use)."""
        lines = [*(f"Style file skipped: {p}" for p in self.problems), *notes]
        self.note.setText("\n".join(lines))
        self.note.setVisible(bool(lines))

    def set_server_info(self, hello: Any) -> None:
        self.samplers = tuple(hello.samplers) if hello is not None else ()

    def open_editor(self) -> Style | None:
        """The style editor over the current style; the saved style (now current, ``chosen`` emitted) or None."""
        dialog = StyleDialog(self.current() or Style("New style"), self._user_dir(), self.samplers, self)
        if not dialog.exec() or dialog.saved is None:
            return None
        self.reload(select=dialog.saved.name)
        saved = self.current()
        if saved is not None:
            self.chosen.emit(saved)
        return saved

    def _activated(self, _index: int) -> None:
        style = self.current()
        if style is not None:
            self.chosen.emit(style)

