"""The GIMP procedure table and its mapping to the core's settings (plugin/hosts/gimp/procedures.py)."""

from __future__ import annotations

import pytest
from latentbrush.plugin.core.requests import OPERATIONS, GenerationSettings
from latentbrush.plugin.hosts.gimp.procedures import (
    DEFAULT_SERVER,
    PROCEDURES,
    capped_to_server,
    procedure_named,
    server_url,
    settings_from_values,
)
from latentbrush.protocol import JobRequest, Limits, UpscaleParams, field_range


def test_every_operation_has_one_procedure_and_there_is_a_cancel():
    ops = [p.operation for p in PROCEDURES]
    assert sorted(op for op in ops if op) == sorted(OPERATIONS)
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
    assert (up.scale, up.upscaler) == (3.0, "lanczos")


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
