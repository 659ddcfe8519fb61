"""Where annotator weights live in a painter's models folder, and how they are read.

The annotators (the networks behind lineart, softedge and pose) ship as lllyasviel/Annotators' ``.pth`` files
(``sk_model.pth``, ``ControlNetHED.pth``, ``body_pose_model.pth``, ...). Painters already have them where
their other tools downloaded them, so all of these are looked in, first match wins (``ModelFolders.annotators``,
``models/folders.py``; ``--reuse`` adds other apps' places):

- ``<models>/annotators/`` (ours; the files flat, as the Hugging Face repo has them);
- ComfyUI's ``custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators/`` (in the models folder, or next
  to it when the models folder is ``ComfyUI/models``);
- A1111's ``extensions/sd-webui-controlnet/annotator/downloads/<annotator>/`` (next to ``webui/models``).

Discovery only looks at names; a file is read on first use, with torch's weights-only unpickler (tensors and
plain containers, no code), and a file that cannot be used becomes an ``EngineError`` naming it.
"""

from __future__ import annotations

import pickle
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from latentbrush.protocol import ErrorCode

from ..events import EngineError

FIELD = "job.inputs"  # the control picture the preprocessor was asked to turn into a control image
REASON_CHARS = 200  # load_state_dict lists every key it missed; the start says enough

T = TypeVar("T")


def find_file(roots: Iterable[Path], name: str) -> Path | None:
    """The first ``name`` directly in a root or one folder down (A1111 keeps one folder per annotator)."""
    for root in roots:
        if (root / name).is_file():
            return root / name
        below = sorted(p for p in root.glob(f"*/{name}") if p.is_file())
        if below:
            return below[0]
    return None


def quiet_import() -> None:
    """Import controlnet_aux: it imports every detector it has, and some warn about optional packages
    (mediapipe) that the ones used here do not need."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import controlnet_aux  # noqa: F401


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "..."


def unusable(path: Path, reason: str) -> EngineError:
    return EngineError(ErrorCode.NOT_SUPPORTED, f"annotator weights {path} {reason}", FIELD)


def load_state(path: Path) -> dict[str, Any]:
    """The dict a ``.pth`` file holds, read on the CPU without running code from it."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise unusable(path, f"are not a plain tensor file; torch's weights-only loader refused it ({_short(exc)})")
    except Exception as exc:  # truncated zip, not a torch file, ...: the unpickler fails in many ways
        raise unusable(path, f"could not be read ({type(exc).__name__}: {_short(exc)})")
    if not isinstance(state, dict):
        raise unusable(path, f"hold a {type(state).__name__}, not a state dict")
    return state


def fill(model: Any, state: dict[str, Any], path: Path, what: str) -> Any:
    """``model`` with the weights of ``state`` (eval mode); an EngineError when they are another network's."""
    try:
        model.load_state_dict(state)
    except Exception as exc:  # missing keys, wrong shapes, a nested dict where a tensor belongs, ...
        raise unusable(path, f"are not {what} weights ({type(exc).__name__}: {_short(exc)})")
    return model.eval()


class Cached(Generic[T]):
    """A network built on first use and kept from then on; a failed build is tried again next time, so a
    file the painter replaced works without a restart."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value
