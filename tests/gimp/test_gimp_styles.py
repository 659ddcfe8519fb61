"""GIMP's style choice (plugin/hosts/gimp/procedures.py): the choice's values, and a chosen style's settings."""

from __future__ import annotations

from latentbrush.plugin.core.styles import BUILTIN_DIR, Style, load_styles
from latentbrush.plugin.hosts.gimp.procedures import (
    PROCEDURES,
    procedure_named,
    settings_from_values,
    style_nick,
    styled,
    with_styles,
)

BUILTINS = load_styles(BUILTIN_DIR, None)[0]
MOODY = Style("Moody: v2", prompt="moody {prompt}", negative_prompt="sunny", sampler="Euler a", steps=31, cfg=4.5,
              source="user")


def defaults(proc_name: str) -> dict[str, object]:
    return {arg.name: arg.default for arg in procedure_named(proc_name).args}


def test_the_style_choice_comes_first_and_offers_the_built_ins():
    for proc in PROCEDURES:
        names = [arg.name for arg in proc.args]
        if proc.operation in ("inpaint", "img2img", "txt2img"):
            style = proc.args[0]
            assert names[0] == "style" and style.kind == "choice" and style.default == "default"
            assert [label for _, label in style.choices] == [s.name for s in BUILTINS]
            assert all(nick == style_nick(nick) for nick, _ in style.choices)  # identifiers, not labels
        else:
            assert "style" not in names
    args = with_styles(procedure_named("plug-in-latentbrush-generate").args, (*BUILTINS, MOODY))
    assert args[0].choices[-1] == ("moody-v2", "Moody: v2 (yours)")


def test_a_chosen_style_applies_unless_steps_or_guidance_were_changed():
    values = {**defaults("plug-in-latentbrush-generate"), "style": "moody-v2", "prompt": "a pier",
              "negative-prompt": "people"}
    settings, notes = styled(values, settings_from_values(values, "txt2img"), None, (*BUILTINS, MOODY))
    assert (settings.prompt, settings.negative_prompt) == ("moody a pier", "sunny, people")
    assert (settings.sampler, settings.steps, settings.cfg) == ("Euler a", 31, 4.5) and notes == ()
    changed = {**values, "steps": 12}
    settings, _ = styled(changed, settings_from_values(changed, "txt2img"), None, (MOODY,))
    assert (settings.steps, settings.cfg) == (12, 4.5)


def test_the_default_and_a_vanished_style():
    values = {**defaults("plug-in-latentbrush-inpaint"), "prompt": "a pier"}
    chosen = settings_from_values(values, "inpaint")
    assert styled(values, chosen, None, BUILTINS) == (chosen, ())  # Default: the dialog's values as they are
    settings, notes = styled({**values, "style": "gone"}, chosen, None, BUILTINS)
    assert settings == chosen and "gone" in notes[0]
    assert styled(defaults("plug-in-latentbrush-upscale"), chosen, None, BUILTINS) == (chosen, ())
