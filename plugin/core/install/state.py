"""The state file (``install.json``): what the last finished install put into the venv.

``update`` compares its torch choice with the recorded one; ``status`` shows it. Written by the plan's
``latentbrush:write-state`` step, which also folds in what the check step found out about torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .machine import TorchChoice

BUILD_FILE = "torch-build.json"  # the check step writes it into the root; write-state folds it in


@dataclass(frozen=True)
class InstallState:
    version: str  # latentbrush's version in the venv
    torch_label: str
    torch_requirements: tuple[str, ...]
    torch_index_url: str | None
    source: str  # the wheel installed from, or "" for the package index
    tool: str  # "uv" or "pip"
    installed_at: str = ""  # ISO 8601, UTC
    torch_build: str = ""  # what the check printed, e.g. "2.14.1+cu130 (CUDA 13.0, GPU found)"

    @property
    def torch(self) -> TorchChoice:
        return TorchChoice(self.torch_label, self.torch_requirements, self.torch_index_url)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def state_from_json(text: str) -> InstallState:
    """Parse a state file; unknown keys (from a newer version) are ignored, missing optional ones defaulted."""
    data: Any = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the state file does not hold an object")
    known = {f.name for f in fields(InstallState)}
    values = {k: v for k, v in data.items() if k in known}
    values["torch_requirements"] = tuple(values.get("torch_requirements", ()))
    return InstallState(**values)


def read_state(state_file: Path) -> InstallState | None:
    """The recorded state, or None when there is none or it cannot be read (a broken install)."""
    try:
        return state_from_json(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
