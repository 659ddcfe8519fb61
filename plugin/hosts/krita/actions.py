"""The plugin's Krita actions: ids, menu texts and default shortcuts (one table, no Qt).

Krita takes an action's default shortcut from an ``.action`` file in its ``actions`` resource
folder (Krita's plugin importer copies ``latentbrush.action`` from the bundle there), and the
painter can change it in Settings > Configure Krita > Keyboard Shortcuts. ``action_file_xml``
writes that file from this table, so the installer and the plugin cannot disagree.
The shortcuts were checked against every default in Krita 5.1.5's own ``.action`` files.
"""

from __future__ import annotations

from typing import NamedTuple
from xml.sax.saxutils import escape

MENU_LOCATION = "tools/scripts"
ACTION_CATEGORY = "latentbrush"


class ActionSpec(NamedTuple):
    id: str
    text: str
    shortcut: str  # Qt portable text; "" = none by default
    operation: str  # what the docker does: "inpaint", "generate", "refine", "upscale", "cancel"


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("latentbrush_inpaint", "latentbrush: Generate / Inpaint Selection", "Ctrl+Shift+Return", "inpaint"),
    ActionSpec("latentbrush_generate", "latentbrush: Generate (Text to Image)", "Ctrl+Alt+Shift+G", "generate"),
    ActionSpec("latentbrush_refine", "latentbrush: Refine", "Ctrl+Alt+Shift+R", "refine"),
    ActionSpec("latentbrush_upscale", "latentbrush: Upscale", "", "upscale"),
    ActionSpec("latentbrush_cancel", "latentbrush: Cancel", "Ctrl+Alt+Shift+X", "cancel"),
)


def action_file_xml() -> str:
    """The ``latentbrush.action`` file Krita reads default shortcuts from."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ActionCollection version="2" name="{ACTION_CATEGORY}">',
        f'  <Actions category="{ACTION_CATEGORY}">',
        "    <text>latentbrush</text>",
    ]
    for spec in ACTIONS:
        parts += [
            f'    <Action name="{escape(spec.id)}">',
            "      <icon></icon>",
            f"      <text>{escape(spec.text)}</text>",
            "      <whatsThis></whatsThis>",
            f"      <toolTip>{escape(spec.text)}</toolTip>",
            "      <iconText></iconText>",
            "      <activationFlags>0</activationFlags>",
            "      <activationConditions>0</activationConditions>",
            f"      <shortcut>{escape(spec.shortcut)}</shortcut>",
            "      <isCheckable>false</isCheckable>",
            "      <statusTip></statusTip>",
            "    </Action>",
        ]
    parts += ["  </Actions>", "</ActionCollection>", ""]
    return "\n".join(parts)
