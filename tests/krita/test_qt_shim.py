"""plugin/qt.py: which binding it picks, and the byte helpers that differ between PyQt5 and PyQt6."""

from __future__ import annotations

import os
import subprocess
import sys
import types

from latentbrush.plugin import qt


def test_the_binding_the_host_already_loaded_wins(monkeypatch):
    monkeypatch.delenv("LATENTBRUSH_QT_API", raising=False)
    monkeypatch.delitem(sys.modules, "PyQt6", raising=False)
    monkeypatch.setitem(sys.modules, "PyQt5", types.ModuleType("PyQt5"))  # Krita 5 imported it first
    assert qt._binding_order() == ("PyQt5",)


def test_without_a_host_pyqt6_is_tried_first(monkeypatch):
    monkeypatch.delenv("LATENTBRUSH_QT_API", raising=False)
    monkeypatch.delitem(sys.modules, "PyQt6", raising=False)
    monkeypatch.delitem(sys.modules, "PyQt5", raising=False)
    assert qt._binding_order() == ("PyQt6", "PyQt5")


def test_the_environment_can_force_a_binding(monkeypatch):
    monkeypatch.setenv("LATENTBRUSH_QT_API", "PyQt5")
    assert qt._binding_order() == ("PyQt5",)


def test_a_missing_binding_is_a_clear_import_error():
    env = {**os.environ, "LATENTBRUSH_QT_API": "pyqt5"}
    code = "import importlib.util, sys\nif importlib.util.find_spec('PyQt5'): sys.exit(7)\nimport latentbrush.plugin.qt"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if done.returncode == 7:
        return  # this Python has PyQt5: nothing is missing
    assert done.returncode == 1 and "latentbrush needs PyQt6 or PyQt5 (PyQt5:" in done.stderr


def test_bytes_helpers(qapp):
    assert qt.qbytes(qt.QByteArray(b"abc")) == b"abc"
    image = qt.QImage(3, 2, qt.QImage.Format.Format_ARGB32)
    image.fill(qt.QColor(255, 0, 0, 255))
    assert qt.image_bits(image)[:8] == bytes((0, 0, 255, 255)) * 2  # ARGB32 in memory is B, G, R, A
