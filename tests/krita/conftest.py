"""Krita host tests: PyQt6 (or PyQt5) offscreen, with ``fake_krita`` standing in for Krita's ``krita`` module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("latentbrush.plugin.qt", reason="the Krita host tests need PyQt6 (pip install PyQt6) or PyQt5")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugin"))  # plugin_fake_server
import fake_krita

sys.modules.setdefault("krita", fake_krita)


@pytest.fixture(scope="session")
def qapp():
    from latentbrush.plugin.qt import QApplication

    return QApplication.instance() or QApplication([])


@pytest.fixture
def app(qapp):
    """A fresh fake ``Krita.instance()``."""
    return fake_krita.Krita.reset()


@pytest.fixture
def plugin(app):
    """The registered plugin in a fake Krita with one window: (extension, docker, session)."""
    from latentbrush.plugin.hosts.krita.extension import find_docker, register

    extension = register(app)
    extension.setup()
    app.open_window()
    docker = find_docker(app.window)
    yield extension, docker, extension.session
    extension.session.shutdown()
