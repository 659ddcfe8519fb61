"""Which control modes the docker offers, in what order, from the server's hello (pure, no Qt).

The modes the server has a ControlNet for, for the family of the model the painter picked, come first:
those steer this model. The other known modes follow (a ControlNet for another family, or none yet),
marked, so a row can be set up before connecting or before the ControlNet is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latentbrush.plugin.core.requests import default_preprocessor

# the modes the protocol names (ControlInfo.mode), in the order painters reach for them
KNOWN_MODES = ("scribble", "lineart", "softedge", "canny", "depth", "normal", "pose", "tile", "inpaint")
REFERENCE_MODES = ("reference", "style", "composition")  # ReferenceSpec.mode
MODE_HINTS = {
    "scribble": "your strokes (dark on light, or on a transparent layer)",
    "lineart": "line art",
    "softedge": "soft edges",
    "canny": "the edges of a photo or painting",
    "depth": "a depth map",
    "normal": "a normal map",
    "pose": "a pose skeleton",
    "tile": "a low-detail version of the picture",
    "inpaint": "the masked picture",
    "reference": "the result should look like this layer",
    "style": "take this layer's style",
    "composition": "take this layer's layout",
}


@dataclass(frozen=True)
class ModeChoice:
    mode: str
    steers: bool  # the server has a ControlNet for it and the current model's family
    preprocessor: str  # what "make control image" and a job run first ("" = none on this server)

    @property
    def label(self) -> str:
        return self.mode if self.steers else f"{self.mode} (no ControlNet for this model)"


def model_family(hello: Any, model: str) -> str:
    """The ControlNet family of ``model`` (the server's default when ""): "tiny", "sdxl" or "sd15"."""
    if hello is None:
        return ""
    name = model or hello.default_model
    base = next((m.base for m in hello.models if m.name == name), "")
    if base in ("tiny", "sdxl"):
        return base
    return "sd15" if base else ""


def control_modes(hello: Any, model: str = "") -> tuple[ModeChoice, ...]:
    """Every mode a control row may pick, those that steer ``model`` first; without a hello, the known modes."""
    if hello is None:
        return tuple(ModeChoice(mode, False, "") for mode in KNOWN_MODES)
    family = model_family(hello, model)
    controls = tuple(getattr(hello, "controls", ()))
    offered = tuple(getattr(hello, "preprocessors", ()))
    steering = [c.mode for c in controls if c.mode and c.family == family]
    others = [c.mode for c in controls if c.mode] + list(KNOWN_MODES)
    ordered = list(dict.fromkeys(steering)) + [m for m in dict.fromkeys(others) if m not in steering]
    return tuple(ModeChoice(m, m in steering, default_preprocessor(m, offered)) for m in ordered)

