"""One import point for Qt: the same plugin code runs on PyQt6 (Krita 6) and PyQt5 (Krita 5).

Which binding: the one the host already loaded (Krita 5 imports PyQt5 before any plugin, and
Krita 6 refuses ``import PyQt5``), else PyQt6, else PyQt5. ``LATENTBRUSH_QT_API=pyqt5|pyqt6``
forces one (tests). Importing this module only imports Qt; it creates no objects.

Code using the shim writes fully scoped enums (``Qt.AlignmentFlag.AlignLeft``,
``QImage.Format.Format_ARGB32``), which PyQt5 5.15 accepts as well.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def _binding_order() -> tuple[str, ...]:
    forced = os.environ.get("LATENTBRUSH_QT_API", "").strip().lower()
    if forced in ("pyqt6", "pyqt5"):
        return ("PyQt6",) if forced == "pyqt6" else ("PyQt5",)
    # Mixing two Qt majors in one process crashes it: follow whatever the host already loaded.
    for name in ("PyQt6", "PyQt5"):
        if name in sys.modules:
            return (name,)
    return ("PyQt6", "PyQt5")


def _import_binding() -> tuple[str, ModuleType, ModuleType, ModuleType]:
    errors: list[str] = []
    for name in _binding_order():
        try:
            core = __import__(f"{name}.QtCore", fromlist=["QtCore"])
            gui = __import__(f"{name}.QtGui", fromlist=["QtGui"])
            widgets = __import__(f"{name}.QtWidgets", fromlist=["QtWidgets"])
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return name, core, gui, widgets
    raise ImportError("latentbrush needs PyQt6 or PyQt5 (" + "; ".join(errors) + ")")


QT_API, QtCore, QtGui, QtWidgets = _import_binding()
QT_MAJOR = 6 if QT_API == "PyQt6" else 5

Qt = QtCore.Qt
QObject = QtCore.QObject
QTimer = QtCore.QTimer
QElapsedTimer = QtCore.QElapsedTimer
QProcess = QtCore.QProcess
QProcessEnvironment = QtCore.QProcessEnvironment
QByteArray = QtCore.QByteArray
QBuffer = QtCore.QBuffer
QIODevice = QtCore.QIODevice
QRect = QtCore.QRect
QUrl = QtCore.QUrl
QSize = QtCore.QSize
QPoint = QtCore.QPoint
pyqtSignal = QtCore.pyqtSignal

QImage = QtGui.QImage
QPixmap = QtGui.QPixmap
QIcon = QtGui.QIcon
QColor = QtGui.QColor
QPainter = QtGui.QPainter
QKeySequence = QtGui.QKeySequence
QDesktopServices = QtGui.QDesktopServices
QAction = QtGui.QAction if QT_MAJOR == 6 else QtWidgets.QAction  # moved to QtGui in Qt 6

QApplication = QtWidgets.QApplication
QWidget = QtWidgets.QWidget
QDockWidget = QtWidgets.QDockWidget
QMainWindow = QtWidgets.QMainWindow
QScrollArea = QtWidgets.QScrollArea
QVBoxLayout = QtWidgets.QVBoxLayout
QHBoxLayout = QtWidgets.QHBoxLayout
QFormLayout = QtWidgets.QFormLayout
QGridLayout = QtWidgets.QGridLayout
QLabel = QtWidgets.QLabel
QPushButton = QtWidgets.QPushButton
QToolButton = QtWidgets.QToolButton
QComboBox = QtWidgets.QComboBox
QLineEdit = QtWidgets.QLineEdit
QPlainTextEdit = QtWidgets.QPlainTextEdit
QSpinBox = QtWidgets.QSpinBox
QDoubleSpinBox = QtWidgets.QDoubleSpinBox
QSlider = QtWidgets.QSlider
QProgressBar = QtWidgets.QProgressBar
QListWidget = QtWidgets.QListWidget
QListWidgetItem = QtWidgets.QListWidgetItem
QCheckBox = QtWidgets.QCheckBox
QGroupBox = QtWidgets.QGroupBox
QTabWidget = QtWidgets.QTabWidget
QStackedWidget = QtWidgets.QStackedWidget
QSizePolicy = QtWidgets.QSizePolicy
QFrame = QtWidgets.QFrame
QRadioButton = QtWidgets.QRadioButton
QButtonGroup = QtWidgets.QButtonGroup
QAbstractItemView = QtWidgets.QAbstractItemView
QDialog = QtWidgets.QDialog
QMenu = QtWidgets.QMenu
QMessageBox = QtWidgets.QMessageBox


def qbytes(data: object) -> bytes:
    """bytes of a QByteArray (both bindings), or of anything bytes() accepts."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    to_bytes = getattr(data, "data", None)  # QByteArray.data() exists in both bindings
    return bytes(to_bytes()) if callable(to_bytes) else bytes(data)  # type: ignore[call-overload]


def image_bits(image: object) -> bytes:
    """The pixel bytes of a QImage, rows as Qt stores them (``bytesPerLine`` apart)."""
    bits = image.constBits()  # type: ignore[attr-defined]  # a sip.voidptr in both bindings
    return bytes(bits.asstring(image.sizeInBytes()))  # type: ignore[attr-defined]
