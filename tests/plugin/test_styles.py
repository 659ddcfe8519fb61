"""Styles (plugin/core/styles.py): loading the built-ins and the painter's folder, bad files, and applying one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from latentbrush.plugin.core.planning import plan_whole_canvas
from latentbrush.plugin.core.requests import GenerationSettings, build_request
from latentbrush.plugin.core.styles import (
    BUILTIN_DIR,
    LiveStyle,
    Style,
    StyleError,
    apply_style,
    fill_template,
    find_style,
    load_styles,
    save_style,
    style_from_dict,
    user_styles_dir,
)
from latentbrush.protocol import Limits, LoraInfo, LoraRef, ModelInfo, ServerHello, Size

LIMITS = Limits(max_frame_bytes=1 << 26, max_pixels=1 << 24, max_queue=8, max_batch=4, max_steps=40)


def hello(models=("dreamshaper", "juggernautXL"), samplers=("Euler a", "DPM++ 2M Karras"), loras=(),
          default="dreamshaper") -> ServerHello:
    return ServerHello(
        protocol=1, minor=1, server="test", client_id="c1", resumed=False, device="cpu", dtype="float32",
        models=tuple(ModelInfo(name, "sd15", False, 512) for name in models), upscalers=(), samplers=samplers,
        limits=LIMITS, default_model=default, loras=tuple(LoraInfo(name, "sd15") for name in loras),
    )


def write(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- loading


def test_the_built_ins_load_without_problems_and_have_useful_settings():
    styles, problems = load_styles(BUILTIN_DIR, None)
    assert problems == ()
    names = [s.name for s in styles]
    assert names[0] == "Default" and {"Photo", "Illustration", "Concept art", "Ink sketch", "Flat colors"} <= set(names)
    assert all(s.source == "builtin" for s in styles)
    for style in styles[1:]:  # every real style puts the prompt into its template, has a negative and settings
        assert "{prompt}" in style.prompt and style.negative_prompt
        assert style.sampler and style.steps and style.cfg and style.live.steps and style.live.steps <= 8


def test_a_user_style_of_the_same_name_replaces_the_built_in_in_its_place(tmp_path):
    write(tmp_path, "mine.json", {"name": "photo", "prompt": "{prompt}, my photo look", "steps": 12})
    write(tmp_path, "zz.json", {"name": "Zine"})
    styles, problems = load_styles(BUILTIN_DIR, tmp_path)
    builtin, _ = load_styles(BUILTIN_DIR, None)
    assert problems == ()
    assert len(styles) == len(builtin) + 1 and styles[-1].name == "Zine"
    photo = styles[[s.name for s in builtin].index("Photo")]
    assert (photo.name, photo.source, photo.prompt, photo.steps) == ("photo", "user", "{prompt}, my photo look", 12)
    assert photo.path == str(tmp_path / "mine.json")
    assert find_style(styles, " PHOTO ") is photo


@pytest.mark.parametrize(("data", "field", "words"), [
    ('{"name": "A", "steps": 20,}', "", "not valid JSON"),
    ({"name": "A", "stpes": 20}, "stpes", "unknown field"),
    ({"name": "A", "steps": 0}, "steps", "outside 1..200"),
    ({"name": "A", "steps": 2.5}, "steps", "integer"),
    ({"name": "A", "cfg": "high"}, "cfg", "number"),
    ({"name": "A", "models": "dreamshaper"}, "models", "list of model names"),
    ({"name": "A", "loras": [{"name": "x", "strength": 1}]}, "loras[0].strength", "unknown field"),
    ({"name": "A", "loras": [{"name": "x", "weight": 9}]}, "loras[0].weight", "-4.0..4.0"),
    ({"name": "A", "live": {"steps": 4, "seed": 1}}, "live.seed", "unknown field"),
    ({"name": "A", "live": {"cfg": True}}, "live.cfg", "number"),
    ({"prompt": "{prompt}"}, "name", "missing"),
    ([1, 2], "", "JSON object"),
])
def test_a_bad_file_is_named_with_its_field_and_the_others_still_load(tmp_path, data, field, words):
    bad = write(tmp_path, "bad.json", data)
    write(tmp_path, "good.json", {"name": "Good", "steps": 9})
    styles, problems = load_styles(None, tmp_path)
    assert [s.name for s in styles] == ["Good"] and styles[0].steps == 9
    assert len(problems) == 1
    assert problems[0].startswith(f"{bad}: {field + ': ' if field else ''}") and words in problems[0], problems[0]


def test_two_user_files_with_one_name_keep_the_first(tmp_path):
    write(tmp_path, "a.json", {"name": "Same", "steps": 5})
    write(tmp_path, "b.json", {"name": "same", "steps": 6})
    styles, problems = load_styles(None, tmp_path)
    assert [(s.name, s.steps) for s in styles] == [("Same", 5)]
    assert len(problems) == 1 and "b.json" in problems[0] and "a.json" in problems[0]


def test_the_user_folder_is_latentbrushs_config_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr("sys.platform", "linux")
    assert user_styles_dir() == tmp_path / "latentbrush" / "styles"


def test_save_writes_a_file_that_loads_back_and_overwrites_its_own(tmp_path):
    folder = tmp_path / "styles"
    style = Style("My look: v2", models=("juggernautXL",), loras=(LoraRef("detail", 0.6),),
                  prompt="{prompt}, moody", negative_prompt="bright", sampler="Euler a", steps=18, cfg=6.0,
                  live=LiveStyle("Euler a", 5, 3.0))
    saved = save_style(style, folder)
    assert saved.path == str(folder / "my-look-v2.json") and saved.source == "user"
    styles, problems = load_styles(None, folder)
    assert problems == () and styles == (style,)  # every field survives the round trip
    save_style(replace(style, name="my look: V2", steps=22), folder)  # same name: the same file
    styles, _ = load_styles(None, folder)
    assert [(s.name, s.steps) for s in styles] == [("my look: V2", 22)] and len(list(folder.iterdir())) == 1
    with pytest.raises(StyleError, match="steps"):
        save_style(replace(style, name="Bad", steps=0), folder)
    assert len(list(folder.iterdir())) == 1  # nothing written for a style that would not load


# ----------------------------------------------------------------------------- applying


def test_the_template_takes_the_prompt_or_is_appended_after_a_comma():
    assert fill_template("a photo of {prompt}, 35mm", "a fox") == "a photo of a fox, 35mm"
    assert fill_template("{prompt}, oil paint", "") == "oil paint"  # no stray comma for an empty prompt
    assert fill_template("oil paint", "a fox ") == "a fox, oil paint"
    assert fill_template("", "a fox") == "a fox"
    assert fill_template("{prompt} and {prompt}", "cats") == "cats and cats"
    assert fill_template("{prompt} with {braces}", "x") == "x with {braces}"  # only {prompt} is a slot


def test_apply_sets_prompt_negative_and_sampling_and_leaves_the_rest():
    style = Style("Ink", prompt="ink sketch of {prompt}", negative_prompt="color", sampler="DPM++ 2M Karras",
                  steps=24, cfg=7.5)
    chosen = GenerationSettings(prompt="a cat", negative_prompt="blurry", seed=5, strength=0.4, batch=2)
    styled, notes = apply_style(style, chosen, hello())
    assert notes == ()
    assert styled == replace(chosen, prompt="ink sketch of a cat", negative_prompt="color, blurry",
                             sampler="DPM++ 2M Karras", steps=24, cfg=7.5)


def test_the_first_model_the_server_has_wins_and_none_keeps_the_choice():
    style = Style("S", models=("realisticVision", "JUGGERNAUTXL", "dreamshaper"))
    styled, notes = apply_style(style, GenerationSettings(model="dreamshaper"), hello())
    assert styled.model == "juggernautXL" and notes == ()  # the server's spelling
    styled, notes = apply_style(Style("S", models=("gone",)), GenerationSettings(model=""), hello())
    assert styled.model == "" and len(notes) == 1 and "gone" in notes[0] and "dreamshaper" in notes[0]
    styled, notes = apply_style(style, GenerationSettings(model="x"), None)  # not connected: cannot check
    assert styled.model == "x" and len(notes) == 1


def test_only_the_loras_the_server_offers_are_used_and_the_rest_are_named():
    style = Style("S", loras=(LoraRef("detail", 0.7), LoraRef("gone", 1.0), LoraRef("Mine", 0.2)))
    chosen = GenerationSettings(loras=(LoraRef("mine", 0.9),))
    styled, notes = apply_style(style, chosen, hello(loras=("detail", "mine")))
    assert styled.loras == (LoraRef("mine", 0.9), LoraRef("detail", 0.7))  # the painter's weight for "mine" wins
    assert notes == ("style S: LoRAs skipped (the server does not offer them): gone",)
    styled, notes = apply_style(style, GenerationSettings(), hello(loras=()))
    assert styled.loras == () and "detail, gone, Mine" in notes[0]


def test_pinned_fields_win_over_the_style():
    style = Style("S", models=("juggernautXL",), sampler="DPM++ 2M Karras", steps=30, cfg=4.0)
    chosen = GenerationSettings(model="dreamshaper", sampler="Euler a", steps=7, cfg=9.0)
    styled, _ = apply_style(style, chosen, hello(), keep={"steps", "model"})
    assert (styled.model, styled.sampler, styled.steps, styled.cfg) == ("dreamshaper", "DPM++ 2M Karras", 7, 4.0)
    styled, _ = apply_style(style, chosen, hello(), keep={"model", "sampler", "steps", "cfg"})
    assert (styled.model, styled.sampler, styled.steps, styled.cfg) == ("dreamshaper", "Euler a", 7, 9.0)


def test_live_uses_the_live_block_and_the_servers_limits():
    style = Style("S", sampler="DPM++ 2M Karras", steps=45, cfg=7.0, live=LiveStyle("Euler a", 6, 3.0))
    styled, notes = apply_style(style, GenerationSettings(), hello(), live=True)
    assert (styled.sampler, styled.steps, styled.cfg) == ("Euler a", 6, 3.0) and notes == ()
    styled, notes = apply_style(style, GenerationSettings(steps=11), hello())
    assert styled.steps == 40 and notes == ("style S: 45 steps -> 40 (the server's limit)",)
    partial = Style("P", steps=30, live=LiveStyle(steps=4))  # a field the live block lacks keeps the choice
    styled, _ = apply_style(partial, GenerationSettings(sampler="Euler a", cfg=5.0), hello(), live=True)
    assert (styled.sampler, styled.steps, styled.cfg) == ("Euler a", 4, 5.0)


def test_a_sampler_the_server_lacks_keeps_the_chosen_one():
    style = Style("S", sampler="Heun", steps=10)
    styled, notes = apply_style(style, GenerationSettings(sampler="Euler a"), hello())
    assert (styled.sampler, styled.steps) == ("Euler a", 10) and "Heun" in notes[0]


def test_styled_loras_reach_the_job_request():
    plan = plan_whole_canvas(Size(64, 64))
    styled, _ = apply_style(Style("S", loras=(LoraRef("detail", 0.5),)), GenerationSettings(prompt="x"),
                            hello(loras=("detail",)))
    job = build_request("txt2img", plan, styled, job_id="job-1")
    assert job.loras == (LoraRef("detail", 0.5),)
    assert build_request("txt2img", plan, GenerationSettings(prompt="x"), job_id="job-2").loras is None


def test_style_from_dict_defaults():
    style = style_from_dict({"name": "  Plain  "})
    assert style == Style("Plain") and style.prompt == "{prompt}" and style.steps is None
