"""Requests built from plans survive the protocol codec unchanged and pass check_job."""

from __future__ import annotations

import pytest
from latentbrush.plugin.core.planning import plan_generate, plan_region, plan_whole_canvas
from latentbrush.plugin.core.requests import (
    ControlSpec,
    GenerationSettings,
    ReferenceSpec,
    RequestError,
    TransferFormats,
    build_request,
    choose_operation,
    default_preprocessor,
    new_job_id,
)
from latentbrush.protocol import (
    ProtocolError,
    Submit,
    as_v1_0,
    blob_hash,
    check_job,
    decode_client_message,
    encode_message,
    job_inputs,
)
from latentbrush.protocol.geometry import Rect, Size

IMAGE = blob_hash(b"image")
MASK = blob_hash(b"mask")
SETTINGS = GenerationSettings(prompt="a red barn", negative_prompt="blurry", steps=12, cfg=5.5, seed=42, batch=2)


def round_trip(job):
    decoded = decode_client_message(encode_message(Submit(job)))
    assert isinstance(decoded, Submit), decoded
    return decoded.job


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint", "upscale"])
def test_each_operation_round_trips_and_checks(op):
    canvas = Size(1001, 601)
    plan = plan_whole_canvas(canvas) if op == "upscale" else plan_region(canvas, Rect(950, 300, 51, 40))
    if op == "txt2img":
        plan = plan_generate(plan)
    settings = SETTINGS if op != "img2img" else GenerationSettings(prompt="x", strength=0.4)
    job = build_request(op, plan, settings, job_id=new_job_id(), image=IMAGE, mask=MASK,
                        formats=TransferFormats("bgra8", "bgra8", 256))
    assert round_trip(job) == job
    assert check_job(job, 4096 * 4096) is None
    assert job.op == op
    assert (job.preview_format, job.result_format, job.preview_max_side) == ("bgra8", "bgra8", 256)
    if op == "inpaint":
        assert (job.region.x, job.region.width) == (plan.region.x, plan.region.width)
        assert (job.mask_grow, job.mask_feather, job.mask_blend) == (plan.grow, plan.feather, plan.blend)
        assert (job.prompt, job.negative_prompt, job.seed, job.batch, job.steps, job.cfg) == (
            "a red barn", "blurry", 42, 2, 12, 5.5)
    roles = {role: items[0].blob for role, items in job_inputs(job).items()}
    assert job.image is None and job.mask is None  # 1.1: the blobs are named inputs
    if op == "txt2img":  # no image; the selection's mask shapes the alpha
        assert roles == {"mask": MASK} and job.context == job.region
    if op == "img2img":
        assert job.strength == 0.4 and roles == {"image": IMAGE, "mask": MASK}
    if op in ("inpaint", "upscale"):
        assert roles == ({"image": IMAGE, "mask": MASK} if op == "inpaint" else {"image": IMAGE})
    old = as_v1_0(job)  # what the client sends a 1.0 server
    assert not isinstance(old, ProtocolError) and old.inputs is None and old.mask == roles.get("mask")
    if op == "upscale":
        assert job.upscale is not None and job.upscale.scale == 2.0 and job.region == job.context


def test_img2img_without_selection_sends_no_mask():
    job = build_request("img2img", plan_whole_canvas(Size(64, 64)), GenerationSettings(strength=0.5),
                        job_id="j", image=IMAGE, mask=MASK)
    assert "mask" not in job_inputs(job) and job.mask_grow == 0


def test_bad_settings_name_the_field():
    plan = plan_whole_canvas(Size(64, 64))
    with pytest.raises(RequestError) as info:
        build_request("txt2img", plan, GenerationSettings(steps=0), job_id="j")
    assert info.value.error.field == "steps"
    with pytest.raises(RequestError) as info:
        build_request("inpaint", plan_region(Size(64, 64), Rect(1, 1, 5, 5)), SETTINGS, job_id="j", image=IMAGE)
    assert info.value.error.field == "mask"
    with pytest.raises(RequestError) as info:
        build_request("img2img", plan, SETTINGS, job_id="j")
    assert info.value.error.field == "image"
    with pytest.raises(RequestError) as info:
        build_request("paint", plan, SETTINGS, job_id="j")
    assert info.value.error.field == "op"
    with pytest.raises(RequestError) as info:
        build_request("inpaint", plan_region(Size(64, 64), Rect(1, 1, 5, 5)), GenerationSettings(prefill="bogus"),
                      job_id="j", image=IMAGE, mask=MASK)
    assert info.value.error.field == "prefill"


def test_operation_rule():
    assert choose_operation(True, 1.0) == "inpaint"
    assert choose_operation(False, 1.0) == "txt2img"
    assert choose_operation(True, 0.5) == choose_operation(False, 0.3) == "img2img"


def test_controls_become_control_inputs_in_order():
    plan = plan_region(Size(512, 512), Rect(100, 100, 64, 64))
    scribble, depth = blob_hash(b"scribble"), blob_hash(b"depth")
    settings = GenerationSettings(controls=(
        ControlSpec(object(), mode="scribble", preprocessor="scribble"),
        ControlSpec(object(), model="control_v11f1p_sd15_depth", weight=0.6, start=0.1, end=0.7),
    ))
    job = round_trip(build_request("inpaint", plan, settings, job_id="j", image=IMAGE, mask=MASK,
                                   controls=(scribble, depth)))
    assert check_job(job) is None
    controls = job_inputs(job)["control"]
    assert [(c.blob, c.mode, c.model, c.preprocessor, c.weight, c.start, c.end) for c in controls] == [
        (scribble, "scribble", "", "scribble", 1.0, 0.0, 1.0),
        (depth, "", "control_v11f1p_sd15_depth", "", 0.6, 0.1, 0.7),
    ]
    with pytest.raises(RequestError, match="2 controls but 1 control images"):
        build_request("inpaint", plan, settings, job_id="j", image=IMAGE, mask=MASK, controls=(scribble,))
    refused = as_v1_0(job)  # a 1.0 server cannot take them: the client says so instead of submitting
    assert isinstance(refused, ProtocolError) and refused.field == "job.inputs[2].role"


def test_references_become_reference_inputs_after_the_controls():
    plan = plan_region(Size(512, 512), Rect(100, 100, 64, 64))
    scribble, photo, palette = blob_hash(b"scribble"), blob_hash(b"photo"), blob_hash(b"palette")
    settings = GenerationSettings(controls=(ControlSpec(object(), mode="scribble"),), references=(
        ReferenceSpec(object()), ReferenceSpec(object(), mode="style", model="ip-adapter_sd15", weight=0.4)))
    job = round_trip(build_request("txt2img", plan, settings, job_id="j", controls=(scribble,),
                                   references=(photo, palette)))
    assert check_job(job) is None
    assert [i.role for i in job.inputs] == ["control", "reference", "reference"]
    assert [(r.blob, r.mode, r.model, r.weight, r.start, r.end) for r in job_inputs(job)["reference"]] == [
        (photo, "reference", "", 1.0, None, None), (palette, "style", "ip-adapter_sd15", 0.4, None, None)]
    with pytest.raises(RequestError, match="2 references but 1 reference images"):
        build_request("img2img", plan, settings, job_id="j", image=IMAGE, controls=(scribble,), references=(photo,))


@pytest.mark.parametrize(("mode", "offered", "expected"), [
    ("scribble", ("", "scribble", "canny"), "scribble"), ("depth", ("", "scribble"), ""), ("", ("",), "")])
def test_a_mode_uses_its_own_preprocessor_when_the_server_has_it(mode, offered, expected):
    assert default_preprocessor(mode, offered) == expected


def test_unblur_is_sent_only_with_the_refine_pass():
    plan = plan_whole_canvas(Size(256, 256))
    refined = GenerationSettings(refine=True, refine_strength=0.6, unblur=0.8)
    job = round_trip(build_request("upscale", plan, refined, job_id="j", image=IMAGE))
    assert job.upscale.unblur == 0.8 and check_job(job) is None
    for settings in (GenerationSettings(refine=False, unblur=0.8), GenerationSettings(refine=True)):
        job = build_request("upscale", plan, settings, job_id="j", image=IMAGE)
        assert job.upscale.unblur is None  # absent: a 1.0 server takes the job as before
        assert not isinstance(as_v1_0(job), ProtocolError)
    assert isinstance(as_v1_0(build_request("upscale", plan, refined, job_id="j", image=IMAGE)), ProtocolError)


def test_a_control_image_job_has_one_control_and_the_box_as_it_is():
    plan = plan_whole_canvas(Size(300, 200))
    settings = GenerationSettings(prompt="x", batch=3, controls=(ControlSpec(None, mode="pose", preprocessor="pose"),))
    job = round_trip(build_request("preprocess", plan, settings, job_id="j", controls=(IMAGE,)))
    assert (job.op, job.batch, job.preview_format, job.region, job.context) == (
        "preprocess", 1, "none", Rect(0, 0, 300, 200), Rect(0, 0, 300, 200))
    assert [(i.role, i.preprocessor) for i in job.inputs] == [("control", "pose")]
    assert isinstance(as_v1_0(job), ProtocolError)  # a 1.0 server has no preprocess
