"""Test-harness pykrita plugin: run one e2e script inside real Krita, then quit with its status.

Does nothing unless LB_E2E_MODULE is set. Environment:
  LB_E2E_MODULE   module with ``run_e2e() -> bool | None`` (required)
  LB_E2E_PATH     folder to put on sys.path for it
  LB_E2E_RC_FILE  where to write the result code (0 ok, 1 returned False, 2 raised, 3 a Qt slot raised)
  LB_E2E_FALLBACK_MS  run even if windowCreated never fires (default 60000)

Krita's own sys.excepthook opens a modal dialog (a hang in CI), so it is replaced; Krita is
quit with the file_quit action (QApplication.quit() alone segfaults on teardown).
"""

import importlib
import os
import sys
import time
import traceback

from krita import Extension, Krita

try:  # Krita 6 refuses PyQt5; Krita 5 has no PyQt6
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication
except ImportError:
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

_errors = []
_T0 = time.time()


def _log(*parts):
    print(f"[lb_e2e_runner +{time.time() - _T0:.1f}s]", *parts, flush=True)


def _hook(kind, value, tb):
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    _errors.append(value)


class E2ERunner(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self._done = False

    def setup(self):
        if not os.environ.get("LB_E2E_MODULE"):
            return
        sys.excepthook = _hook
        _log("setup(); waiting for the main window")
        Krita.instance().notifier().windowCreated.connect(self._on_window)
        QTimer.singleShot(int(os.environ.get("LB_E2E_FALLBACK_MS", "60000")), self._run)

    def createActions(self, window):
        pass

    def _on_window(self):
        _log("windowCreated")
        QTimer.singleShot(500, self._run)  # let the window finish laying out its dockers

    def _run(self):
        if self._done:
            return
        self._done = True
        rc = 0
        try:
            extra = os.environ.get("LB_E2E_PATH")
            if extra and extra not in sys.path:
                sys.path.insert(0, extra)
            module = importlib.import_module(os.environ["LB_E2E_MODULE"])
            ok = module.run_e2e()
            rc = 0 if ok in (None, True) else 1
        except Exception:
            traceback.print_exc()
            sys.stderr.flush()
            rc = 2
        if rc == 0 and _errors:
            rc = 3
        _log(f"finished, rc={rc}, quitting")
        with open(os.environ.get("LB_E2E_RC_FILE", "/tmp/lb_e2e_rc"), "w") as f:
            f.write(str(rc))
        for doc in Krita.instance().documents():
            doc.setModified(False)  # else closing asks "save changes?" in a modal box
            doc.close()
        if rc:
            QApplication.instance().exit(rc)
        Krita.instance().action("file_quit").trigger()


Krita.instance().addExtension(E2ERunner(Krita.instance()))
