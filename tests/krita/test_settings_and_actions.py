"""Docker settings storage and the action table / .action file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from latentbrush.plugin.hosts.krita.actions import ACTIONS, action_file_xml
from latentbrush.plugin.hosts.krita.settings import REMOTE, SETTINGS_GROUP, DockerSettings, load, save


def test_settings_round_trip_through_string_storage():
    store: dict[tuple[str, str], str] = {}
    original = DockerSettings(server_mode=REMOTE, url="ws://10.0.0.2:7860", prompt="a cat", steps=12, cfg=4.5,
                              random_seed=False, seed=99, batch=3, strength=0.35)
    save(original, lambda g, k, v: store.__setitem__((g, k), v))
    assert all(group == SETTINGS_GROUP and isinstance(v, str) for (group, _), v in store.items())
    assert load(lambda g, k, d: store.get((g, k), d)) == original


def test_missing_or_garbled_settings_fall_back_to_defaults():
    store = {(SETTINGS_GROUP, "steps"): "many", (SETTINGS_GROUP, "cfg"): "3.5"}
    loaded = load(lambda g, k, d: store.get((g, k), d))
    assert loaded.steps == DockerSettings().steps and loaded.cfg == 3.5


def test_the_token_is_never_stored():
    store: dict[tuple[str, str], str] = {}
    save(DockerSettings(), lambda g, k, v: store.__setitem__((g, k), v))
    assert not any("token" in key for _, key in store)


def test_action_file_lists_every_action_with_its_default_shortcut():
    root = ET.fromstring(action_file_xml())
    found = {a.get("name"): a.findtext("shortcut") for a in root.iter("Action")}
    assert found == {spec.id: spec.shortcut for spec in ACTIONS}
    assert found["latentbrush_inpaint"] and found["latentbrush_refine"] and found["latentbrush_cancel"]


def test_default_shortcuts_are_distinct():
    shortcuts = [spec.shortcut.lower() for spec in ACTIONS if spec.shortcut]
    assert len(shortcuts) == len(set(shortcuts))


KRITA_ACTIONS = Path("/usr/share/krita/actions")


@pytest.mark.skipif(not KRITA_ACTIONS.is_dir(), reason="Krita is not installed (no /usr/share/krita/actions)")
def test_default_shortcuts_do_not_clash_with_krita_defaults():
    taken = set()
    for path in KRITA_ACTIONS.glob("*.action"):
        for action in ET.parse(path).getroot().iter("Action"):
            for shortcut in (action.findtext("shortcut") or "").split(";"):
                if shortcut.strip():
                    taken.add(shortcut.strip().lower())
    assert len(taken) > 100  # really read Krita's tables
    assert [s.shortcut for s in ACTIONS if s.shortcut.lower() in taken] == []
