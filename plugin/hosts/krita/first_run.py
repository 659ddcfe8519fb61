"""The one-line notice a painter sees while the server offers only its built-in test model.

The built-in "tiny" models (``backend/models/registry.py`` BUILTINS) paint noise: they exist so that a
fresh install can be tried end to end. While nothing else is there the docker says so, with a link to
download real models (``model_download.py``).
"""

from __future__ import annotations

from typing import Any

from ...qt import QLabel, Qt, QWidget, pyqtSignal

BUILTIN = "builtin"  # ModelInfo.source of the backend's built-in models
# their names (backend/models/registry.py BUILTINS), for a server that leaves ``source`` empty
BUILTIN_MODELS = frozenset({"tiny", "tiny-inpaint", "tiny-sdxl", "tiny-sdxl-refiner", "tiny-sd3", "tiny-flux"})
NOTICE_TEXT = "Only the built-in test model is installed: it paints noise."
LINK_TEXT = "Download models (SD 1.5, 8.5 GB)…"  # the "sd15" set: the model and its inpainting model


def only_builtin_models(hello: Any) -> bool:
    """True when a server hello offers models and every one of them is a built-in test model."""
    models = getattr(hello, "models", None) or ()
    return bool(models) and all(model.source == BUILTIN or model.name in BUILTIN_MODELS for model in models)


class FirstRunNotice(QLabel):
    """Hidden unless ``set_hello`` got a tiny-only hello; the link emits ``download_requested``."""

    download_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("latentbrush_first_run")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setText(f'{NOTICE_TEXT} <a href="download">{LINK_TEXT}</a>')
        self.setToolTip("The server has no real model yet: pictures need SD 1.5, SDXL, SD3 or Flux weights.")
        self.linkActivated.connect(lambda _link: self.download_requested.emit())
        self.setVisible(False)

    def set_hello(self, hello: Any) -> None:
        self.setVisible(only_builtin_models(hello))
