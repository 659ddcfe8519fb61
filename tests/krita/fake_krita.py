"""A small functional fake of Krita's Python API (the ``krita`` module), for tests without Krita.

It copies the behaviour measured in real Krita 5.1.5 that the plugin depends on (see
``plugin/hosts/krita/document.py`` and ``preview.py``), so a test that passes here and breaks
in Krita points at a difference worth a note:

- pixels are B, G, R, A (uint8 for "U8", little-endian uint16 for "U16"); the projection is only
  recomposited by ``refreshProjection()``; reading it past the canvas gives the background's white;
- ``selection()`` is None until a selection is set, size 0 after an empty one; bounds unclipped;
- undo: ``addChildNode`` records "Add Layer" (even into a detached group), ``remove()`` records
  "Remove Layer", ``scaleImage`` "Scale Image"; pixel writes and layer properties record nothing;
  ``setChildNodes`` on a detached group records nothing (on an attached node it misbehaves in
  Krita, so the fake refuses it).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

try:
    import numpy as np
except ImportError:  # Krita's own Python (the PyQt5 bundle test) has no numpy: only the app classes work there
    np = None

if "PyQt5" in sys.modules:  # the same binding as the code under test (see plugin/qt.py)
    from PyQt5.QtCore import QObject, QRect, Qt, pyqtSignal
    from PyQt5.QtWidgets import QAction, QDockWidget, QMainWindow
else:
    from PyQt6.QtCore import QObject, QRect, Qt, pyqtSignal
    from PyQt6.QtGui import QAction
    from PyQt6.QtWidgets import QDockWidget, QMainWindow

# ----------------------------------------------------------------------------- selection


class Selection:
    def __init__(self) -> None:
        self._x = self._y = self._w = self._h = 0
        self._data = np.zeros((0, 0), np.uint8)

    def select(self, x: int, y: int, w: int, h: int, value: int) -> None:
        self._x, self._y, self._w, self._h = x, y, w, h
        self._data = np.full((h, w), value, np.uint8)

    def set_mask(self, x: int, y: int, mask: np.ndarray) -> None:
        """Test helper: an arbitrary coverage mask (feathered edges) at (x, y)."""
        self._x, self._y = x, y
        self._h, self._w = mask.shape
        self._data = mask.astype(np.uint8)

    def x(self) -> int:
        return self._x

    def y(self) -> int:
        return self._y

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        out = np.zeros((h, w), np.uint8)
        _blit(out, x, y, self._data, self._x, self._y)
        return out.tobytes()

    def duplicate(self) -> Selection:
        copy = Selection()
        copy.set_mask(self._x, self._y, self._data.copy())
        return copy


def _blit(dst: np.ndarray, dx: int, dy: int, src: np.ndarray, sx: int, sy: int) -> None:
    """Copy the overlap of ``src`` (placed at sx, sy) into ``dst`` (placed at dx, dy)."""
    x0, y0 = max(dx, sx), max(dy, sy)
    x1 = min(dx + dst.shape[1], sx + src.shape[1])
    y1 = min(dy + dst.shape[0], sy + src.shape[0])
    if x1 > x0 and y1 > y0:
        dst[y0 - dy : y1 - dy, x0 - dx : x1 - dx] = src[y0 - sy : y1 - sy, x0 - sx : x1 - sx]


# ----------------------------------------------------------------------------- nodes


class Node:
    def __init__(self, doc: Document, name: str, kind: str) -> None:
        self._doc, self._name, self._type = doc, name, kind
        self._uid = uuid.uuid4()
        self._children: list[Node] = []
        self._parent: Node | None = None
        self._locked = False
        self._visible = True
        self.pixels = np.zeros((doc.height(), doc.width(), 4), doc.dtype)  # canvas-sized BGRA

    def name(self) -> str:
        return self._name

    def setName(self, name: str) -> None:
        self._name = name

    def type(self) -> str:
        return self._type

    def uniqueId(self) -> uuid.UUID:
        return self._uid

    def locked(self) -> bool:
        return self._locked

    def setLocked(self, value: bool) -> None:
        self._locked = value

    def visible(self) -> bool:
        return self._visible

    def opacity(self) -> int:
        return 255

    def blendingMode(self) -> str:
        return "normal"

    def setVisible(self, value: bool) -> None:
        self._visible = value

    def colorDepth(self) -> str:
        return self._doc.colorDepth()

    def colorModel(self) -> str:
        return self._doc.colorModel()

    def childNodes(self) -> list[Node]:
        return list(self._children)

    def parentNode(self) -> Node | None:
        return self._parent

    def addChildNode(self, child: Node, above: Node | None) -> bool:
        index = len(self._children) if above is None else self._children.index(above) + 1
        self._children.insert(index, child)
        child._parent = self
        self._doc.record("Add Layer", lambda: self._detach(child), lambda: self._attach(child, index))
        return True

    def setChildNodes(self, nodes: list[Node]) -> None:
        if self._doc.is_attached(self):
            raise AssertionError("setChildNodes on a node in the image misbehaves in Krita 5.1.5")
        self._children = list(nodes)
        for node in nodes:
            node._parent = self

    def remove(self) -> bool:
        parent = self._parent
        if parent is None:
            return False
        index = parent._children.index(self)
        parent._detach(self)
        self._doc.record("Remove Layer", lambda: parent._attach(self, index), lambda: parent._detach(self))
        return True

    def _detach(self, child: Node) -> None:
        self._children.remove(child)
        child._parent = None

    def _attach(self, child: Node, index: int) -> None:
        self._children.insert(index, child)
        child._parent = self

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> None:
        src = np.frombuffer(bytes(data), self._doc.dtype)
        if src.size != w * h * 4:
            raise ValueError(f"setPixelData: {len(data)} bytes for {w}x{h}")
        _blit(self.pixels, 0, 0, src.reshape(h, w, 4), x, y)

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        out = np.zeros((h, w, 4), self._doc.dtype)
        _blit(out, x, y, self.pixels, 0, 0)
        return out.tobytes()

    def bounds(self) -> QRect:
        ys, xs = np.nonzero(self.pixels[..., 3])
        if not len(xs):
            return QRect()
        return QRect(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))

    def composite(self) -> np.ndarray:
        """This node's look as float RGBA-in-BGRA-order 0..1 (groups composite their children)."""
        if self._type == "grouplayer":
            out = np.zeros(self.pixels.shape, np.float64)
            for child in self._children:
                if child.visible():
                    out = _over(child.composite(), out)
            return out
        return self.pixels.astype(np.float64) / np.iinfo(self._doc.dtype).max


def _over(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a_s, a_d = src[..., 3:4], dst[..., 3:4]
    a = a_s + a_d * (1 - a_s)
    rgb = np.where(a > 0, (src[..., :3] * a_s + dst[..., :3] * a_d * (1 - a_s)) / np.where(a > 0, a, 1), 0)
    return np.concatenate([rgb, a], axis=-1)


# ----------------------------------------------------------------------------- document


class Document:
    def __init__(self, width: int, height: int, model: str = "RGBA", depth: str = "U8") -> None:
        self._w, self._h, self._model, self._depth = width, height, model, depth
        self.dtype = np.uint16 if depth == "U16" else np.uint8
        self._root = Node(self, "root", "grouplayer")
        self._selection: Selection | None = None
        self.undo_log: list[tuple[str, Any, Any]] = []  # (text, undo, redo)
        self._annotations: dict[str, tuple[str, bytes]] = {}
        self.modified = False
        background = Node(self, "Background", "paintlayer")
        background.pixels[...] = np.iinfo(self.dtype).max  # opaque white
        self._root._attach(background, 0)
        self._active_node: Node | None = background  # the Layers docker's current layer
        self._projection = np.zeros((height, width, 4), self.dtype)
        self.refreshes = 0
        self.refreshProjection()
        self.refreshes = 0

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def xRes(self) -> float:
        return 72.0

    def yRes(self) -> float:
        return 72.0

    def rootNode(self) -> Node:
        return self._root

    def createNode(self, name: str, kind: str) -> Node:
        return Node(self, name, kind)

    def createGroupLayer(self, name: str) -> Node:
        return Node(self, name, "grouplayer")

    def activeNode(self) -> Node | None:
        return self._active_node

    def setActiveNode(self, node: Node | None) -> None:
        self._active_node = node

    def nodeByName(self, name: str) -> Node | None:
        return next((n for n in self._root.childNodes() if n.name() == name), None)

    def is_attached(self, node: Node) -> bool:
        while node._parent is not None:
            node = node._parent
        return node is self._root

    def selection(self) -> Selection | None:
        return None if self._selection is None else self._selection.duplicate()

    def setSelection(self, sel: Selection) -> None:
        self._selection = sel.duplicate()

    def refreshProjection(self) -> None:
        self.refreshes += 1
        top = np.iinfo(self.dtype).max
        self._projection = np.rint(self._root.composite() * top).astype(self.dtype)

    def waitForDone(self) -> None:
        pass

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        out = np.full((h, w, 4), np.iinfo(self.dtype).max, self.dtype)  # past the edge: white, as in Krita
        _blit(out, x, y, self._projection, 0, 0)
        return out.tobytes()

    def scaleImage(self, w: int, h: int, xres: int, yres: int, strategy: str) -> bool:
        ys = np.arange(h) * self._h // h
        xs = np.arange(w) * self._w // w
        old = (self._w, self._h, {id(n): n.pixels for n in self._all_nodes()})
        for node in self._all_nodes():
            node.pixels = node.pixels[ys][:, xs]
        self._w, self._h = w, h
        self.record("Scale Image", lambda: self._restore(old), lambda: None)
        return True

    def _restore(self, old: tuple) -> None:
        self._w, self._h, pixels = old
        for node in self._all_nodes():
            node.pixels = pixels.get(id(node), node.pixels)

    def _all_nodes(self) -> list[Node]:
        found, todo = [], [self._root]
        while todo:
            node = todo.pop()
            found.append(node)
            todo += node._children
        return found

    # annotations: stored with the document (a .kra keeps them), not undoable; setting one modifies it
    def setAnnotation(self, kind: str, description: str, data: Any) -> None:
        self._annotations[kind] = (description, bytes(data.data()) if hasattr(data, "data") else bytes(data))
        self.modified = True

    def annotation(self, kind: str) -> bytes:
        return self._annotations.get(kind, ("", b""))[1]

    def annotationDescription(self, kind: str) -> str:
        return self._annotations.get(kind, ("", b""))[0]

    def annotationTypes(self) -> list[str]:
        return list(self._annotations)

    def removeAnnotation(self, kind: str) -> None:
        self._annotations.pop(kind, None)
        self.modified = True

    # test helpers
    def record(self, text: str, undo: Any, redo: Any) -> None:
        self.undo_log.append((text, undo, redo))

    def undo(self) -> str:
        text, undo, _ = self.undo_log.pop()
        undo()
        self.refreshProjection()
        return text

    @property
    def history(self) -> list[str]:
        return [text for text, _, _ in self.undo_log]

    def projection_rgba(self) -> np.ndarray:
        """The composited image as H x W x 4 RGBA (as a painter sees it)."""
        return self._projection[..., [2, 1, 0, 3]]


# ----------------------------------------------------------------------------- application


class Notifier(QObject):
    applicationClosing = pyqtSignal()
    windowCreated = pyqtSignal()


class Window:
    def __init__(self) -> None:
        self._qwindow = QMainWindow()
        self.actions: dict[str, QAction] = {}

    def qwindow(self) -> QMainWindow:
        return self._qwindow

    def createAction(self, name: str, text: str, menu: str = "") -> QAction:
        action = QAction(text, self._qwindow)
        action.setObjectName(name)
        self.actions[name] = action
        return action


class DockWidgetFactoryBase:
    class DockPosition:
        DockTornOff, DockTop, DockBottom, DockRight, DockLeft, DockMinimized = range(6)

    def __init__(self, id: str, position: int) -> None:
        self._id, self._position = id, position

    def id(self) -> str:
        return self._id


class DockWidgetFactory(DockWidgetFactoryBase):
    def __init__(self, id: str, position: int, klass: Any) -> None:
        super().__init__(id, position)
        self.klass = klass

    def createDockWidget(self) -> Any:
        return self.klass()


class DockWidget(QDockWidget):
    def canvasChanged(self, canvas: Any) -> None:
        raise NotImplementedError("a Krita docker must implement canvasChanged")


class Extension(QObject):
    def setup(self) -> None:
        pass

    def createActions(self, window: Window) -> None:
        pass


class Krita(QObject):
    """Create one per test with ``Krita.reset()``; ``Krita.instance()`` returns it."""

    _current: Krita | None = None

    def __init__(self) -> None:
        super().__init__()
        self.settings: dict[tuple[str, str], str] = {}
        self.factories: list[DockWidgetFactory] = []
        self.extensions: list[Extension] = []
        self._notifier = Notifier()
        self._documents: list[Document] = []
        self._active: Document | None = None
        self.window = Window()

    @classmethod
    def reset(cls) -> Krita:
        cls._current = Krita()
        return cls._current

    @classmethod
    def instance(cls) -> Krita:
        if cls._current is None:
            cls._current = Krita()
        return cls._current

    def notifier(self) -> Notifier:
        return self._notifier

    def readSetting(self, group: str, name: str, default: str) -> str:
        return self.settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:
        self.settings[(group, name)] = value

    def addDockWidgetFactory(self, factory: DockWidgetFactory) -> None:
        self.factories.append(factory)

    def addExtension(self, extension: Extension) -> None:
        self.extensions.append(extension)

    def createDocument(self, w: int, h: int, name: str, model: str, depth: str, profile: str, res: float) -> Document:
        doc = Document(w, h, model, depth)
        self._documents.append(doc)
        self._active = doc
        return doc

    def activeDocument(self) -> Document | None:
        return self._active

    def setActiveDocument(self, doc: Document | None) -> None:
        self._active = doc

    def documents(self) -> list[Document]:
        return list(self._documents)

    def activeWindow(self) -> Window:
        return self.window

    def windows(self) -> list[Window]:
        return [self.window]

    def open_window(self) -> Window:
        """Test helper: what Krita does when a window opens (extensions' actions, the dockers)."""
        for extension in self.extensions:
            extension.createActions(self.window)
        for factory in self.factories:
            dock = factory.createDockWidget()
            self.window.qwindow().addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return self.window
