"""The GIMP procedure table and its mapping to the core's settings (plugin/hosts/gimp/procedures.py)."""

from __future__ import annotations

import pytest
from latentbrush.plugin.core.planning import plan_whole_canvas
from latentbrush.plugin.core.requests import (
    OPERATIONS,
    ControlSpec,
    GenerationSettings,
    ReferenceSpec,
    RegionSpec,
    build_request,
    new_job_id,
)
from latentbrush.plugin.hosts.gimp.procedures import (
    CONTROL_MODES,
    DEFAULT_SERVER,
    PROCEDURES,
    REFERENCE_MODES,
    capped_to_server,
    procedure_named,
    server_url,
    settings_from_values,
)
from latentbrush.protocol import JobInput, JobRequest, Limits, UpscaleParams, blob_hash, field_range, job_inputs
from latentbrush.protocol.geometry import Size


def test_every_operation_has_one_procedure_and_there_is_a_cancel():
    ops = [p.operation for p in PROCEDURES]
    # preprocess ("make control image") is a control row's button in Krita; GIMP picks a ready layer instead
    assert sorted(op for op in ops if op) == sorted(op for op in OPERATIONS if op != "preprocess")
    assert ops.count("") == 1
    assert all(p.name.startswith("plug-in-latentbrush-") for p in PROCEDURES)
    assert len({p.name for p in PROCEDURES}) == len(PROCEDURES)


@pytest.mark.parametrize("proc", [p for p in PROCEDURES if p.operation])
def test_defaults_make_valid_settings(proc):
    values = {arg.name: arg.default for arg in proc.args}
    settings = settings_from_values(values, proc.operation)
    assert settings.seed is None  # "random seed" is on by default: the server picks
    for arg in proc.args:
        if arg.minimum is not None:
            assert arg.minimum <= arg.default <= arg.maximum, arg.name


def test_values_map_onto_generation_settings():
    values = {"prompt": "orb", "negative-prompt": "blur", "model": "tiny", "steps": 7, "seed": 42,
              "random-seed": False, "cfg": 5.5, "strength": 0.4}
    s = settings_from_values(values, "img2img")
    assert (s.prompt, s.negative_prompt, s.model, s.steps, s.seed, s.cfg, s.strength) == (
        "orb", "blur", "tiny", 7, 42, 5.5, 0.4)
    assert settings_from_values(values, "txt2img").strength == 1.0  # generate always starts from noise
    up = settings_from_values({"scale": 3.0, "upscaler": "lanczos"}, "upscale")
    assert (up.scale, up.upscaler, up.refine, up.unblur) == (3.0, "lanczos", False, 0.0)


def test_upscale_refines_with_unblur_when_asked():
    upscale = procedure_named("plug-in-latentbrush-upscale")
    args = {arg.name: arg for arg in upscale.args}
    assert (args["unblur"].minimum, args["unblur"].maximum) == field_range(UpscaleParams, "unblur")
    values = {arg.name: arg.default for arg in upscale.args} | {"refine": True, "refine-strength": 0.5,
                                                                 "unblur": 0.7, "prompt": "sharp"}
    settings = settings_from_values(values, "upscale")
    job = build_request("upscale", plan_whole_canvas(Size(64, 64)), settings, job_id="j", image=blob_hash(b"i"))
    assert (job.upscale.refine, job.upscale.refine_strength, job.upscale.unblur, job.prompt) == (
        True, 0.5, 0.7, "sharp")


def test_seed_covers_the_protocol_range_and_random_ignores_it():
    args = procedure_named("plug-in-latentbrush-inpaint").args
    spec = next(a for a in args if a.name == "seed")
    assert (spec.kind, spec.minimum, spec.maximum) == ("uint", 0, 2**32 - 1)
    assert settings_from_values({"seed": 2**32 - 1, "random-seed": False}, "inpaint").seed == 2**32 - 1
    assert settings_from_values({"seed": 5, "random-seed": True}, "inpaint").seed is None


def test_server_url_precedence():
    assert server_url({"server": "ws://a:1"}, {"LATENTBRUSH_SERVER": "ws://b:2"}) == "ws://a:1"
    assert server_url({"server": ""}, {"LATENTBRUSH_SERVER": "ws://b:2"}) == "ws://b:2"
    assert server_url({}, {}) == DEFAULT_SERVER


def test_unknown_procedure_is_named():
    with pytest.raises(KeyError, match="plug-in-nope"):
        procedure_named("plug-in-nope")


def test_argument_ranges_are_the_protocols_field_limits():
    for proc in PROCEDURES:
        for arg in proc.args:
            if arg.name in ("steps", "cfg", "strength", "seed"):
                assert (arg.minimum, arg.maximum) == field_range(JobRequest, arg.name), (proc.name, arg.name)
            elif arg.name == "scale":
                assert (arg.minimum, arg.maximum) == field_range(UpscaleParams, "scale")


def test_a_connected_servers_limits_cap_steps_and_batch():
    limits = Limits(max_frame_bytes=1 << 20, max_pixels=1 << 20, max_queue=4, max_batch=2, max_steps=150)
    capped, notes = capped_to_server(GenerationSettings(steps=200, batch=3, cfg=9.0), limits)
    assert (capped.steps, capped.batch, capped.cfg) == (150, 2, 9.0)
    assert notes == ("steps 200 -> 150 (the server's limit)", "batch 3 -> 2 (the server's limit)")
    same = GenerationSettings(steps=150)
    assert capped_to_server(same, limits) == (same, ())


GUIDE_NAMES = ("control-layer", "control-mode", "control-strength", "control-start", "control-end",
               "reference-layer", "reference-mode", "reference-strength")


@pytest.mark.parametrize("proc", PROCEDURES, ids=lambda p: p.name)
def test_generate_inpaint_and_refine_take_one_control_and_one_reference(proc):
    names = [arg.name for arg in proc.args]
    if proc.operation in ("txt2img", "img2img", "inpaint"):
        assert [n for n in names if n in GUIDE_NAMES] == list(GUIDE_NAMES)
        assert names[-1] == "server"  # the guides sit between the generation fields and the server
    else:
        assert not set(names) & set(GUIDE_NAMES)


def test_guide_arguments_are_layers_choices_and_the_protocols_ranges():
    args = {arg.name: arg for arg in procedure_named("plug-in-latentbrush-generate").args}
    for name in ("control-layer", "reference-layer"):
        assert (args[name].kind, args[name].default) == ("layer", None)  # none: no control, no reference
    assert args["control-mode"].kind == "choice" and args["control-mode"].choices == CONTROL_MODES
    assert [value for value, _ in CONTROL_MODES] == [
        "scribble", "lineart", "softedge", "canny", "depth", "normal", "pose", "tile"]
    assert args["reference-mode"].choices == REFERENCE_MODES
    assert [value for value, _ in REFERENCE_MODES] == ["reference", "style", "composition"]
    for name, field in (("control-strength", "weight"), ("control-start", "start"), ("control-end", "end"),
                        ("reference-strength", "weight")):
        assert (args[name].kind, args[name].minimum, args[name].maximum) == ("double", *field_range(JobInput, field))
    assert (args["control-strength"].maximum, args["control-end"].default) == (2.0, 1.0)


def test_no_layer_means_no_control_and_no_reference():
    values = {"control-layer": None, "control-mode": "canny", "reference-layer": None, "reference-mode": "style"}
    settings = settings_from_values(values, "txt2img", ("", "scribble", "canny"))
    assert (settings.controls, settings.references) == ((), ())


def test_a_control_layer_becomes_a_control_spec_with_the_servers_preprocessor():
    layer = object()  # a Gimp.Layer in the plug-in: the settings only carry it to the host
    values = {"control-layer": layer, "control-mode": "scribble", "control-strength": 0.8, "control-start": 0.1,
              "control-end": 0.9}
    settings = settings_from_values(values, "inpaint", ("", "scribble", "canny"))
    assert settings.controls == (ControlSpec(layer, mode="scribble", preprocessor="scribble", weight=0.8, start=0.1,
                                             end=0.9),)
    # a mode the server has no preprocessor for (or no hello): the picture is the control image as it is
    assert settings_from_values(values, "inpaint").controls[0].preprocessor == ""
    depth = settings_from_values({**values, "control-mode": "depth"}, "inpaint", ("", "scribble", "canny"))
    assert (depth.controls[0].mode, depth.controls[0].preprocessor) == ("depth", "")


def test_a_reference_layer_becomes_a_reference_spec():
    layer = object()
    settings = settings_from_values({"reference-layer": layer, "reference-mode": "style",
                                     "reference-strength": 0.6}, "img2img")
    assert settings.references == (ReferenceSpec(layer, mode="style", weight=0.6),)
    assert settings.controls == ()


def test_two_region_slots_become_region_specs_when_they_have_a_layer_and_a_prompt():
    sky, sea = object(), object()
    args = {arg.name: arg for arg in procedure_named("plug-in-latentbrush-inpaint").args}
    assert [(args[f"region-{n}-layer"].kind, args[f"region-{n}-prompt"].kind) for n in (1, 2)] == [
        ("layer", "string"), ("layer", "string")]
    values = {"region-1-layer": sky, "region-1-prompt": " a stormy sky ", "region-2-layer": sea,
              "region-2-prompt": "a calm sea"}
    settings = settings_from_values(values, "txt2img")
    assert settings.regions == (RegionSpec(sky, "a stormy sky"), RegionSpec(sea, "a calm sea"))
    half = settings_from_values({"region-1-layer": sky, "region-2-prompt": "a calm sea"}, "txt2img")
    assert half.regions == ()  # a layer without a prompt, a prompt without a layer: no region
    assert "region-1-layer" not in {a.name for a in procedure_named("plug-in-latentbrush-upscale").args}


@pytest.mark.parametrize("mode", [value for value, _ in CONTROL_MODES])
def test_a_dialogs_control_makes_a_valid_request(mode):
    proc = procedure_named("plug-in-latentbrush-generate")
    values = {**{arg.name: arg.default for arg in proc.args}, "control-layer": object(), "control-mode": mode,
              "control-strength": 2.0, "control-start": 0.25, "control-end": 0.75}
    settings = settings_from_values(values, proc.operation, ("", "scribble", "canny"))
    blob = blob_hash(b"control pixels")
    job = build_request("txt2img", plan_whole_canvas(Size(64, 64)), settings, job_id=new_job_id(), controls=(blob,))
    (control,) = job_inputs(job)["control"]
    assert (control.blob, control.mode, control.weight, control.start, control.end) == (blob, mode, 2.0, 0.25, 0.75)
