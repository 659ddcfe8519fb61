"""Named job inputs (SPEC.md 9.9): one view of both forms, and the conversion for a 1.0 server."""

from __future__ import annotations

from dataclasses import replace

from latentbrush.protocol import (
    ErrorCode,
    JobInput,
    JobRequest,
    ProtocolError,
    Rect,
    Size,
    as_v1_0,
    blob_keys,
    check_job,
    decode_client_message,
    encode_message,
    job_inputs,
    messages,
    to_dict,
)

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def job(**fields) -> JobRequest:
    base = {"id": "j1", "op": "inpaint", "canvas": Size(64, 64), "region": Rect(0, 0, 64, 64)}
    return JobRequest(**(base | fields))


def test_both_forms_give_the_same_inputs() -> None:
    legacy = job(image=A, mask=B)
    named = job(inputs=(JobInput("image", A), JobInput("mask", B)))
    assert job_inputs(legacy) == job_inputs(named) == {"image": (JobInput("image", A),), "mask": (JobInput("mask", B),)}
    assert blob_keys(legacy) == blob_keys(named) == (A, B)
    assert check_job(legacy) is None and check_job(named) is None


def test_as_v1_0_moves_image_and_mask_into_their_fields() -> None:
    named = job(inputs=(JobInput("mask", B), JobInput("image", A)))
    old = as_v1_0(named)
    assert old == job(image=A, mask=B)
    assert "inputs" not in to_dict(old)  # a strict 1.0 server would refuse the member
    assert as_v1_0(job(image=A, mask=B)) == job(image=A, mask=B)


def test_as_v1_0_keeps_the_selection_cap_without_mask_outward() -> None:
    capped = job(image=A, mask=B, mask_grow=16, mask_feather=25, mask_blend=25, mask_outward=0)
    old = as_v1_0(capped)
    # a 1.0 server has no cap: zero edges make its composite the sent mask itself
    assert old == job(image=A, mask=B)
    assert "mask_outward" not in to_dict(old)
    uncapped = job(image=A, mask=B, mask_grow=16)  # a 1.0-style job keeps its edges
    assert as_v1_0(uncapped) == uncapped


def test_as_v1_0_refuses_what_1_0_cannot_carry() -> None:
    named = job(op="img2img", inputs=(JobInput("image", A), JobInput("control", A, weight=0.5)))
    error = as_v1_0(named)
    assert isinstance(error, ProtocolError)
    assert (error.code, error.field, error.job_id) == (ErrorCode.NOT_SUPPORTED, "job.inputs[1].role", "j1")
    both = as_v1_0(job(image=A, inputs=(JobInput("mask", B),)))
    assert isinstance(both, ProtocolError) and both.field == "job.image"


def test_as_v1_0_refuses_loras_and_a_refiner_and_drops_their_empty_forms() -> None:
    with_lora = as_v1_0(job(op="txt2img", loras=(messages.LoraRef("detail", 0.8),)))
    assert isinstance(with_lora, ProtocolError) and (with_lora.code, with_lora.field) == (
        ErrorCode.NOT_SUPPORTED, "job.loras")
    refined = as_v1_0(job(op="txt2img", refiner="sdxl-refiner"))
    assert isinstance(refined, ProtocolError) and refined.field == "job.refiner"
    plain = as_v1_0(job(op="txt2img", loras=(), refiner_at=0.7))  # nothing a 1.0 server would miss
    assert isinstance(plain, JobRequest)
    assert "loras" not in to_dict(plain) and "refiner_at" not in to_dict(plain)


def test_parameters_default_per_role_and_round_trip() -> None:
    control = JobInput("control", A, weight=0.7)
    assert (control.param("weight"), control.param("start"), control.param("end"), control.param("model")) == (
        0.7, 0.0, 1.0, "")
    sent = job(op="img2img", inputs=(JobInput("image", A), control))
    decoded = decode_client_message(encode_message(messages.Submit(sent)))
    assert decoded == messages.Submit(sent)
    assert to_dict(sent)["inputs"] == [{"role": "image", "blob": A}, {"role": "control", "blob": A, "weight": 0.7}]


def test_empty_inputs_is_no_inputs() -> None:
    assert check_job(replace(job(op="img2img", image=A), inputs=())) is None
