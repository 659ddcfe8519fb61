"""Cross-field job checks (SPEC.md 9), upscale geometry, blob sizes and error reporting helpers."""

from __future__ import annotations

import dataclasses

import pytest
from latentbrush.protocol import (
    FATAL_CODES,
    ErrorCode,
    JobInput,
    ProtocolError,
    blob_hash,
    check_blob,
    check_job,
    check_server_hello,
    decode_client_frame,
    decode_client_message,
    encode_frame,
    encode_message,
    upscale_rect,
    upscale_size,
)
from latentbrush.protocol.messages import (
    BlobHeader,
    Error,
    JobRequest,
    Limits,
    Rect,
    ServerHello,
    Size,
    Submit,
    UpscaleParams,
)

HASH = "sha256:" + "0" * 64
LIMITS = Limits(max_frame_bytes=1 << 20, max_pixels=512 * 512, max_queue=4, max_batch=4, max_steps=50)


def make_job(op: str = "inpaint", **fields: object) -> JobRequest:
    base: dict[str, object] = {
        "id": "j1",
        "op": op,
        "canvas": Size(100, 80),
        "region": Rect(10, 10, 20, 20),
        "image": HASH if op != "txt2img" else None,
        "mask": HASH if op == "inpaint" else None,
    }
    base.update(fields)
    return JobRequest(**base)  # type: ignore[arg-type]


def _fault(job: JobRequest, **kw: object) -> tuple[str, str | None] | None:
    error = check_job(job, **kw)  # type: ignore[arg-type]
    if error is None:
        return None
    assert error.job_id == job.id, "job errors name the job"
    return error.code.value, error.field


@pytest.mark.parametrize(
    "region",
    [Rect(0, 0, 100, 80), Rect(0, 0, 1, 1), Rect(99, 79, 1, 1), Rect(0, 79, 100, 1), Rect(99, 0, 1, 80)],
    ids=["whole_canvas", "top_left_pixel", "bottom_right_pixel", "bottom_row", "right_column"],
)
def test_regions_touching_canvas_edges_are_inside(region: Rect) -> None:
    assert _fault(make_job(region=region)) is None


@pytest.mark.parametrize(
    "region",
    [Rect(-1, 0, 10, 10), Rect(0, -1, 10, 10), Rect(91, 0, 10, 10), Rect(0, 71, 10, 10), Rect(0, 0, 101, 80),
     Rect(100, 0, 1, 1), Rect(-65536, -65536, 1, 1)],
    ids=["left", "top", "right", "bottom", "too_wide", "just_past_right", "far_away"],
)
def test_regions_one_pixel_outside_fail(region: Rect) -> None:
    assert _fault(make_job(region=region)) == ("out_of_bounds", "job.region")


def test_context_rules() -> None:
    assert _fault(make_job(region=Rect(10, 10, 20, 20), context=Rect(10, 10, 20, 20))) is None
    assert _fault(make_job(region=Rect(10, 10, 20, 20), context=Rect(0, 0, 100, 80))) is None
    assert _fault(make_job(context=Rect(0, 0, 101, 80))) == ("out_of_bounds", "job.context")
    assert _fault(make_job(region=Rect(10, 10, 20, 20), context=Rect(11, 10, 40, 40))) == (
        "out_of_bounds",
        "job.region",
    )
    assert _fault(make_job(region=Rect(10, 10, 20, 20), context=Rect(0, 0, 29, 40))) == (
        "out_of_bounds",
        "job.region",
    )


@pytest.mark.parametrize(
    ("op", "fields", "fault"),
    [
        ("txt2img", {}, None),
        ("txt2img", {"mask": HASH}, None),
        ("img2img", {"mask": HASH, "strength": 0.3}, None),
        ("img2img", {"image": None}, ("missing_field", "job.image")),
        ("inpaint", {"mask": None}, ("missing_field", "job.mask")),
        ("inpaint", {"image": None, "mask": None}, ("missing_field", "job.image")),
        ("upscale", {}, None),
        ("upscale", {"upscale": UpscaleParams(refine=True, seam_fix="band")}, None),
        ("txt2img", {"image": HASH}, ("bad_field", "job.image")),
        ("txt2img", {"strength": 0.99}, ("bad_field", "job.strength")),
        ("upscale", {"mask": HASH}, ("bad_field", "job.mask")),
        ("img2img", {"upscale": UpscaleParams()}, ("bad_field", "job.upscale")),
        ("upscale", {"resolution": Size(64, 64)}, ("bad_field", "job.resolution")),
        ("upscale", {"batch": 2}, ("bad_field", "job.batch")),
        ("upscale", {"upscale": UpscaleParams(seam_fix="half_tile")}, ("bad_field", "job.upscale.seam_fix")),
        ("upscale", {"upscale": UpscaleParams(tile=64, overlap=31)}, None),
        ("upscale", {"upscale": UpscaleParams(tile=64, overlap=32)}, ("bad_field", "job.upscale.overlap")),
        ("upscale", {"upscale": UpscaleParams(refine_tile=256, refine_padding=127)}, None),
        ("upscale", {"upscale": UpscaleParams(refine_tile=256, refine_padding=128)},
         ("bad_field", "job.upscale.refine_padding")),
    ],
)
def test_operation_rules(op: str, fields: dict[str, object], fault: tuple[str, str] | None) -> None:
    assert _fault(make_job(op, **fields)) == fault


def test_formats_default_and_custom_lists() -> None:
    assert _fault(make_job(preview_format="none")) is None
    assert _fault(make_job(preview_format="webp", result_format="bgra8")) is None
    assert _fault(make_job(preview_format="avif")) == ("not_supported", "job.preview_format")
    assert _fault(make_job(result_format="jpeg")) == ("not_supported", "job.result_format")
    assert _fault(make_job(preview_format="webp"), preview_formats=("jpeg",)) == (
        "not_supported",
        "job.preview_format",
    )
    assert _fault(make_job(result_format="avif"), result_formats=("png", "avif")) is None


def test_server_limits() -> None:
    assert _fault(make_job(steps=50, batch=4), limits=LIMITS) is None
    assert _fault(make_job(steps=51), limits=LIMITS) == ("too_large", "job.steps")
    assert _fault(make_job(batch=5), limits=LIMITS) == ("too_large", "job.batch")
    assert _fault(make_job(steps=200, batch=16)) is None, "no limits given: only the field ranges apply"


def test_pixel_limits_exactly_at_and_one_over() -> None:
    canvas = Size(2000, 2000)
    at = make_job(canvas=canvas, region=Rect(0, 0, 512, 512))
    assert _fault(at, max_pixels=512 * 512) is None
    over = make_job(canvas=canvas, region=Rect(0, 0, 512, 512), context=Rect(0, 0, 513, 512))
    assert _fault(over, max_pixels=512 * 512) == ("too_large", "job.context")
    assert _fault(at, limits=LIMITS) is None, "limits supplies max_pixels"
    assert _fault(at, max_pixels=512 * 512 - 1, limits=LIMITS) == ("too_large", "job.context")
    res = make_job(canvas=canvas, region=Rect(0, 0, 64, 64), resolution=Size(1024, 1024))
    assert _fault(res, max_pixels=512 * 512) == ("too_large", "job.resolution")
    up = make_job("upscale", canvas=canvas, region=Rect(0, 0, 256, 256), upscale=UpscaleParams(scale=2.0))
    assert _fault(up, max_pixels=512 * 512) is None
    up4 = dataclasses.replace(up, upscale=UpscaleParams(scale=2.01))
    assert _fault(up4, max_pixels=512 * 512) == ("too_large", "job.upscale")


def test_first_fault_wins_in_spec_order() -> None:
    job = make_job("txt2img", region=Rect(-1, 0, 5, 5), image=HASH, preview_format="gif", steps=200)
    assert _fault(job, limits=LIMITS) == ("out_of_bounds", "job.region")
    job = dataclasses.replace(job, region=Rect(0, 0, 5, 5))
    assert _fault(job, limits=LIMITS) == ("bad_field", "job.image")
    job = dataclasses.replace(job, image=None)
    assert _fault(job, limits=LIMITS) == ("not_supported", "job.preview_format")
    job = dataclasses.replace(job, preview_format="jpeg")
    assert _fault(job, limits=LIMITS) == ("too_large", "job.steps")


@pytest.mark.parametrize(
    ("region", "params", "size", "rect"),
    [
        (Rect(0, 0, 100, 80), UpscaleParams(scale=2.0), Size(200, 160), Rect(0, 0, 200, 160)),
        (Rect(10, 10, 3, 5), UpscaleParams(scale=1.5), Size(5, 8), Rect(17, 16, 5, 8)),  # 4.5 -> 5, 7.5 -> 8
        (Rect(1, 1, 1, 1), UpscaleParams(scale=1.0), Size(1, 1), Rect(1, 1, 1, 1)),
        (Rect(20, 10, 40, 20), UpscaleParams(scale=3.0, target=Size(100, 30)), Size(100, 30), Rect(50, 15, 100, 30)),
    ],
)
def test_upscale_size_and_rect(region: Rect, params: UpscaleParams, size: Size, rect: Rect) -> None:
    job = make_job("upscale", canvas=Size(1000, 1000), region=region, upscale=params)
    assert upscale_size(job) == size
    assert upscale_rect(job) == rect


def test_upscale_defaults_apply_without_params() -> None:
    job = make_job("upscale", region=Rect(0, 0, 30, 21))
    assert upscale_size(job) == Size(60, 42)


def test_check_blob_needs_the_context_size() -> None:
    job = make_job(region=Rect(10, 10, 20, 20), context=Rect(0, 0, 64, 48))
    assert check_blob(job, "image", 64, 48) is None
    error = check_blob(job, "mask", 48, 64)
    assert error is not None and (error.code, error.field, error.job_id) == (ErrorCode.SIZE_MISMATCH, "job.mask", "j1")
    assert check_blob(make_job(), "image", 20, 20) is None, "without a context the region is the context"


def test_a_reference_blob_may_have_any_size() -> None:
    blob = "sha256:" + "a" * 64
    job = make_job(context=Rect(0, 0, 64, 48), inputs=(JobInput("control", blob), JobInput("reference", blob)))
    assert check_blob(job, "inputs[1].blob", 1000, 30) is None  # a picture of its own (SPEC.md 9.9)
    error = check_blob(job, "inputs[0].blob", 1000, 30)
    assert error is not None and (error.code, error.field) == (ErrorCode.SIZE_MISMATCH, "job.inputs[0].blob")


def test_error_message_from_protocol_error() -> None:
    bad = decode_client_message(encode_message(Submit(make_job(steps=1))).replace('"steps":1', '"steps":0'))
    assert isinstance(bad, ProtocolError)
    assert (bad.code, bad.field, bad.job_id) == (ErrorCode.BAD_FIELD, "job.steps", "j1")
    msg = Error.from_error(bad)
    assert (msg.code, msg.field, msg.job_id) == ("bad_field", "job.steps", "j1")
    assert Error.from_error(bad, job_id="other").job_id == "other"
    round_trip = encode_message(msg)
    assert '"code":"bad_field"' in round_trip and '"job_id":"j1"' in round_trip


@pytest.mark.parametrize(
    ("text", "job_id"),
    [
        ('{"type":"cancel","job_id":"j7","x":1}', None),  # a bad cancel must not end the job it names
        ('{"type":"submit","job":{"id":"j8","op":"nope"}}', "j8"),
        ('{"type":"submit","job":{"id":"bad id","op":"nope"}}', None),
        ('{"type":"submit","job":{"id":["j9"]}}', None),
        ('{"type":"submit","job":"j10"}', None),
    ],
)
def test_decode_errors_name_the_job_when_they_can(text: str, job_id: str | None) -> None:
    error = decode_client_message(text)
    assert isinstance(error, ProtocolError)
    assert error.job_id == job_id


def test_only_handshake_errors_are_fatal() -> None:
    assert {c.value for c in FATAL_CODES} == {"version_mismatch", "unauthorized", "forbidden_origin"}
    assert not ProtocolError(ErrorCode.BAD_JSON, "x").fatal
    assert ProtocolError(ErrorCode.UNAUTHORIZED, "x").fatal


def test_blob_formats_a_server_does_not_offer() -> None:
    payload = bytes(16)
    frame = encode_frame(BlobHeader(hash=blob_hash(payload), format="rgba8", width=2, height=2), payload)
    assert not isinstance(decode_client_frame(frame, 1 << 20, formats=("rgba8", "png")), ProtocolError)
    error = decode_client_frame(frame, 1 << 20, formats=("png",))
    assert isinstance(error, ProtocolError) and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, "format")


def test_client_checks_the_server_hello_version() -> None:
    limits = Limits(max_frame_bytes=1, max_pixels=1, max_queue=1, max_batch=1, max_steps=1)
    hello = ServerHello(protocol=1, minor=0, server="s", client_id="c", resumed=False, device="cpu",
                        dtype="float32", models=(), upscalers=(), samplers=(), limits=limits)
    assert check_server_hello(hello) is None
    error = check_server_hello(dataclasses.replace(hello, protocol=2))
    assert error is not None and (error.code, error.field) == (ErrorCode.VERSION_MISMATCH, "protocol")
