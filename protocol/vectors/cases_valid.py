"""Valid conformance cases: each input decodes to the expected message (written out by hand)."""

from __future__ import annotations

from typing import Any

from vector_kit import (
    C2S,
    HASH_A,
    HASH_B,
    HELLO_FORMAT_DEFAULTS,
    JPEG_2X2,
    S2C,
    WEBP_2X2,
    case,
    decoded_job,
    frame,
    job,
    png,
    rect,
    sha,
    size,
    text,
)

RGBA_2X2 = bytes(range(16))
WHOLE_4X3 = bytes(range(48))  # a 4x3 rgba8 image; PATCH_2X2 is its box x 1..2, y 1..2
PATCH_2X2 = WHOLE_4X3[20:28] + WHOLE_4X3[36:44]
GRAY_3X2 = bytes([0, 128, 255, 255, 128, 0])
PNG_2X1 = png(2, 1, bytes([255, 0, 0, 255, 0, 255, 0, 128]))
# bgra8 2x2 with stride 12: 8 bytes of pixels + 4 padding bytes in the first row, none after the last
BGRA_PADDED = bytes(range(8)) + b"\xee" * 4 + bytes(range(8, 16))

MODEL = {"name": "tiny", "base": "tiny", "inpaint": False, "resolution": 64, "source": "builtin"}


def model_decoded(model: dict[str, Any]) -> dict[str, Any]:
    return {**model, "samplers": model.get("samplers", [])}  # 1.1: [] = every sampler of the hello fits


LIMITS = {"max_frame_bytes": 67108864, "max_pixels": 16777216, "max_queue": 32, "max_batch": 8, "max_steps": 150}
SERVER_HELLO = {
    "type": "hello",
    "protocol": 1,
    "minor": 0,
    "server": "latentbrush-server/0.1",
    "client_id": "c0ffee00c0ffee00c0ffee00c0ffee00",
    "resumed": False,
    "device": "cpu",
    "dtype": "float32",
    "models": [MODEL],
    "upscalers": ["lanczos"],
    "samplers": ["Euler a", "Euler", "DDIM"],
    "limits": LIMITS,
}


def _message(sent: dict[str, Any], decoded: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"message": decoded if decoded is not None else sent}


def _submit(name: str, sent_job: dict[str, Any], note: str = "") -> dict[str, Any]:
    sent = {"type": "submit", "job": sent_job}
    decoded = {"type": "submit", "job": decoded_job(sent_job)}
    return case(name, C2S, "text", text(sent), _message(sent, decoded), check="job", note=note)


def _blob(name: str, header: dict[str, Any], payload: bytes, decoded_header: dict[str, Any] | None = None,
          note: str = "") -> dict[str, Any]:
    expect = {"header": decoded_header or header, "payload_hex": payload.hex()}
    return case(name, C2S, "binary", frame(header, payload), expect, note=note)


def client_text() -> list[dict[str, Any]]:
    hello_min = {"type": "hello", "protocol": 1, "client": "vectors/1"}
    hello_min_decoded = {
        **hello_min,
        "token": "",
        "minor": 0,
        "capabilities": {"preview_formats": ["jpeg"], "result_formats": ["png"]},
    }
    hello_full = {
        "type": "hello",
        "protocol": 1,
        "minor": 0,
        "client": "latentbrush-krita/0.1 (Krita 5.2)",
        "token": "s3cret-token",
        "client_id": "c0ffee00c0ffee00c0ffee00c0ffee00",
        "capabilities": {"preview_formats": ["jpeg", "rgba8"], "result_formats": ["png", "bgra8"]},
    }
    hello_future = {
        "type": "hello",
        "protocol": 1,
        "minor": 3,
        "client": "future-client",
        "compression": "zstd",
        "capabilities": {"preview_formats": ["avif"], "result_formats": ["png"], "hdr": True},
    }
    hello_future_decoded = {
        "type": "hello",
        "protocol": 1,
        "minor": 3,
        "client": "future-client",
        "token": "",
        "capabilities": {"preview_formats": ["avif"], "result_formats": ["png"]},
    }
    return [
        case("hello_minimal", C2S, "text", text(hello_min), _message(hello_min, hello_min_decoded), check="hello"),
        case("hello_full_resume", C2S, "text", text(hello_full), _message(hello_full), check="hello"),
        case(
            "hello_unknown_members_ignored",
            C2S,
            "text",
            text(hello_future),
            _message(hello_future, hello_future_decoded),
            check="hello",
            note="the hello is the one client message a server decodes leniently (SPEC 14)",
        ),
        case(
            "hello_whitespace_and_key_order",
            C2S,
            "text",
            ' {\n  "client" : "x",\t"protocol": 1 ,"type":"hello"\n} ',
            _message({}, {"type": "hello", "protocol": 1, "client": "x", "token": "", "minor": 0,
                          "capabilities": {"preview_formats": ["jpeg"], "result_formats": ["png"]}}),
            check="hello",
        ),
        _submit("submit_txt2img_minimal", job("txt2img")),
        _submit(
            "submit_inpaint_full",
            job(
                "inpaint",
                id="krita:doc-3.job_17",
                canvas=size(1024, 768),
                region=rect(400, 300, 96, 80),
                context=rect(320, 212, 256, 256),
                prompt="a red fox, oil painting",
                negative_prompt="blurry",
                model="sd15-inpainting",
                sampler="DPM++ 2M Karras",
                steps=30,
                cfg=5.5,
                seed=4294967295,
                strength=0.85,
                batch=4,
                resolution=size(512, 512),
                mask_grow=4,
                mask_feather=8,
                mask_blend=8,
                mask_outward=0,
                prefill="color",
                prefill_color=[255, 0, 128],
                preview_format="rgba8",
                preview_max_side=256,
                result_format="bgra8",
            ),
        ),
        _submit(
            "submit_region_touches_all_canvas_edges",
            job("img2img", canvas=size(300, 200), region=rect(0, 0, 300, 200), strength=0.4),
            note="touching the canvas edges is inside",
        ),
        _submit(
            "submit_context_null_means_region",
            job("inpaint", context=None) | {"context": None, "seed": None},
            note="null for an optional field reads as absent",
        ),
        _submit("submit_cfg_integer_is_a_number", job("txt2img", cfg=7)),
        _submit("submit_unicode_prompt", job("txt2img", prompt="猫 🐈 «ünïcödé»\n\t\u0000")),
        _submit(
            "submit_upscale_refine",
            job(
                "upscale",
                region=rect(0, 0, 512, 512),
                upscale={"upscaler": "lanczos", "scale": 1.5, "refine": True, "seam_fix": "half_tile",
                         "tile": 256, "overlap": 127},
                preview_format="none",
            ),
        ),
        _submit("submit_upscale_target", job("upscale", upscale={"target": size(1000, 1000)})),
        _submit("submit_upscale_refine_unblur", job("upscale", upscale={"refine": True, "refine_strength": 0.5,
                                                                         "unblur": 0.8})),
        case("cancel", C2S, "text", '{"type":"cancel","job_id":"j1"}', _message({"type": "cancel", "job_id": "j1"})),
        case(
            "query_blobs",
            C2S,
            "text",
            text({"type": "query_blobs", "hashes": [HASH_A, HASH_B]}),
            _message({"type": "query_blobs", "hashes": [HASH_A, HASH_B]}),
        ),
        case(
            "query_blobs_empty",
            C2S,
            "text",
            '{"type":"query_blobs","hashes":[]}',
            _message({"type": "query_blobs", "hashes": []}),
        ),
        case("query_queue", C2S, "text", '{"type":"query_queue"}', _message({"type": "query_queue"})),
        case("query_models", C2S, "text", '{"type":"query_models"}', _message({"type": "query_models"})),
    ]


def client_binary() -> list[dict[str, Any]]:
    return [
        _blob("blob_rgba8_2x2", {"type": "blob", "hash": sha(RGBA_2X2), "format": "rgba8", "width": 2, "height": 2},
              RGBA_2X2),
        _blob(
            "blob_bgra8_padded_stride",
            {"type": "blob", "hash": sha(BGRA_PADDED), "format": "bgra8", "width": 2, "height": 2, "stride": 12},
            BGRA_PADDED,
            note="payload = stride * (height - 1) + width * 4: no padding after the last row",
        ),
        _blob("blob_gray8_mask", {"type": "blob", "hash": sha(GRAY_3X2), "format": "gray8", "width": 3, "height": 2},
              GRAY_3X2),
        _blob("blob_png", {"type": "blob", "hash": sha(PNG_2X1), "format": "png", "width": 2, "height": 1}, PNG_2X1),
        _blob("blob_jpeg", {"type": "blob", "hash": sha(JPEG_2X2), "format": "jpeg", "width": 2, "height": 2},
              JPEG_2X2),
        _blob("blob_webp", {"type": "blob", "hash": sha(WEBP_2X2), "format": "webp", "width": 2, "height": 2},
              WEBP_2X2),
        _blob("blob_patch_rgba8",
              {"type": "blob", "hash": sha(WHOLE_4X3), "format": "rgba8", "width": 4, "height": 3, "base": HASH_A,
               "rect": rect(1, 1, 2, 2)},
              PATCH_2X2,
              note="1.1 patch: the payload is rect's pixels; hash addresses the whole 4x3 image (its bytes are "
                   "range(48)), which the server checks after applying the patch to base, not the decoder"),
    ]


def server_text() -> list[dict[str, Any]]:
    def hello_as_decoded(sent: dict[str, Any]) -> dict[str, Any]:
        return {**SERVER_HELLO, "default_model": "", **HELLO_FORMAT_DEFAULTS, **sent,
                "models": [model_decoded(m) for m in sent["models"]]}

    hello_decoded = hello_as_decoded(SERVER_HELLO)
    hello_newer = {**SERVER_HELLO, "minor": 2, "gpu_memory": 24, "limits": {**LIMITS, "max_loras": 4}}
    hello_newer_decoded = {**hello_decoded, "minor": 2}
    hello_controls = {**SERVER_HELLO, "minor": 1, "preprocessors": ["", "scribble", "canny"],
                      "controls": [{"name": "control_v11p_sd15_scribble", "mode": "scribble", "family": "sd15"},
                                   {"name": "t2i-adapter-sketch-sdxl-1.0", "mode": "scribble", "family": "sdxl",
                                    "kind": "t2i_adapter"}]}
    controls_decoded = {**hello_as_decoded(hello_controls),
                        "controls": [{**hello_controls["controls"][0], "kind": "controlnet"},
                                     hello_controls["controls"][1]]}
    hello_references = {**SERVER_HELLO, "minor": 1, "reference_modes": ["reference", "style", "composition"],
                        "references": [{"name": "ip-adapter_sd15", "family": "sd15"},
                                       {"name": "ip-adapter-plus_sdxl_vit-h", "family": "sdxl"}]}
    lightning = {"sampler": "Euler trailing", "steps": 4, "cfg": 1}
    hello_presets = {**SERVER_HELLO, "minor": 1, "samplers": ["Euler a", "LCM", "Euler trailing"],
                     "models": [MODEL, {**MODEL, "name": "sdxl_lightning_4step", "base": "sdxl", "resolution": 1024,
                                        "source": "folder", "preset": lightning}],
                     "presets": {"lcm": {"sampler": "LCM", "steps": 4, "cfg": 1.0}, "lightning-4step": lightning}}
    done = {"type": "done", "job_id": "j1", "results": 2, "seeds": [7, 8],
            "info": {"model": "tiny", "seconds": 1.25, "nested": {"list": [1, "two", None, True]}}}
    queue = {"type": "queue", "jobs": [{"job_id": "j2", "state": "started", "op": "inpaint"},
                                       {"job_id": "j3", "state": "queued", "position": 1, "op": "upscale"}]}
    models = {"type": "models", "models": [MODEL], "upscalers": ["lanczos", "4x-UltraSharp"],
              "samplers": ["Euler a"], "default_model": "tiny"}
    return [
        case("server_hello", S2C, "text", text(SERVER_HELLO), _message(SERVER_HELLO, hello_decoded)),
        case("server_hello_with_controls", S2C, "text", text(hello_controls), _message(hello_controls,
             controls_decoded), note="1.1: control models (ControlNets, T2I-Adapters) and preprocessors"),
        case("server_hello_with_references", S2C, "text", text(hello_references), _message(hello_references,
             hello_as_decoded(hello_references)), note="1.1: reference models (IP-Adapters) and their modes"),
        case("server_hello_with_presets", S2C, "text", text(hello_presets), _message(hello_presets,
             hello_as_decoded(hello_presets)),
             note="1.1: few-step presets by name, and a model's own preset (SPEC 9.3); cfg 1 equals 1.0"),
        case(
            "server_hello_newer_minor_unknown_members_ignored",
            S2C,
            "text",
            text(hello_newer),
            _message(hello_newer, hello_newer_decoded),
            note="clients ignore unknown members at every level (SPEC 14)",
        ),
        case("queued", S2C, "text", '{"type":"queued","job_id":"j1","position":3}',
             _message({"type": "queued", "job_id": "j1", "position": 3})),
        case("started_with_seed", S2C, "text", '{"type":"started","job_id":"j1","total":20,"seed":42}',
             _message({"type": "started", "job_id": "j1", "total": 20, "seed": 42})),
        case("started_without_seed", S2C, "text", '{"type":"started","job_id":"j1","total":9}',
             _message({"type": "started", "job_id": "j1", "total": 9})),
        case("progress_default_stage", S2C, "text", '{"type":"progress","job_id":"j1","step":1,"total":20}',
             _message({"type": "progress", "job_id": "j1", "step": 1, "total": 20, "stage": "denoise"})),
        case("progress_unknown_stage", S2C, "text",
             '{"type":"progress","job_id":"j1","step":2,"total":4,"stage":"sharpen"}',
             _message({"type": "progress", "job_id": "j1", "step": 2, "total": 4, "stage": "sharpen"})),
        case("done", S2C, "text", text(done), _message(done)),
        case("done_minimal", S2C, "text", '{"type":"done","job_id":"j1","results":1}',
             _message({"type": "done", "job_id": "j1", "results": 1, "seeds": [], "info": {}})),
        case("cancelled", S2C, "text", '{"type":"cancelled","job_id":"j1"}',
             _message({"type": "cancelled", "job_id": "j1"})),
        case("cancelled_superseded", S2C, "text", '{"type":"cancelled","job_id":"j1","reason":"superseded"}',
             _message({"type": "cancelled", "job_id": "j1", "reason": "superseded"}),
             note="1.1: a newer job of the same live stream took over (SPEC 9.11)"),
        case("cancelled_unknown_reason", S2C, "text", '{"type":"cancelled","job_id":"j1","reason":"preempted"}',
             _message({"type": "cancelled", "job_id": "j1", "reason": "preempted"}),
             note="a later 1.x reason decodes; clients read an unknown reason as absent"),
        case("error_with_field_and_job", S2C, "text",
             '{"type":"error","code":"out_of_bounds","message":"rectangle is not inside the canvas",'
             '"field":"job.region","job_id":"j1"}',
             _message({"type": "error", "code": "out_of_bounds", "message": "rectangle is not inside the canvas",
                       "field": "job.region", "job_id": "j1"})),
        case("error_unknown_code_accepted", S2C, "text",
             '{"type":"error","code":"gpu_on_fire","message":"a later 1.x code"}',
             _message({"type": "error", "code": "gpu_on_fire", "message": "a later 1.x code"}),
             note="clients treat unknown codes like internal"),
        case("blobs", S2C, "text", text({"type": "blobs", "have": [HASH_A], "missing": [HASH_B]}),
             _message({"type": "blobs", "have": [HASH_A], "missing": [HASH_B]})),
        case("blob_stored", S2C, "text", text({"type": "blob_stored", "hash": HASH_A, "width": 2, "height": 2}),
             _message({"type": "blob_stored", "hash": HASH_A, "width": 2, "height": 2})),
        case("queue", S2C, "text", text(queue), _message(queue)),
        case("models", S2C, "text", text(models), _message(models, {**models, "models": [model_decoded(MODEL)]})),
    ]


def server_binary() -> list[dict[str, Any]]:
    preview_jpeg = {"type": "preview", "job_id": "j1", "step": 3, "total": 20, "rect": rect(400, 300, 96, 80),
                    "format": "jpeg", "width": 2, "height": 2}
    preview_raw = {"type": "preview", "job_id": "j1", "step": 20, "total": 20, "rect": rect(0, 0, 64, 64),
                   "format": "rgba8", "width": 2, "height": 2, "index": 1}
    result_png = {"type": "result", "job_id": "j1", "index": 0, "rect": rect(10, 20, 2, 1), "format": "png",
                  "width": 2, "height": 1, "seed": 42}
    result_raw = {"type": "result", "job_id": "j1", "index": 0, "rect": rect(0, 0, 2, 2), "format": "bgra8",
                  "width": 2, "height": 2, "stride": 12}
    result_future = {**result_png, "colorspace": "srgb"}
    return [
        case("preview_jpeg_smaller_than_rect", S2C, "binary", frame(preview_jpeg, JPEG_2X2),
             {"header": {**preview_jpeg, "index": 0}, "payload_hex": JPEG_2X2.hex()},
             note="a 2x2 picture stretched over a 96x80 rect"),
        case("preview_rgba8", S2C, "binary", frame(preview_raw, RGBA_2X2),
             {"header": preview_raw, "payload_hex": RGBA_2X2.hex()}),
        case("result_png", S2C, "binary", frame(result_png, PNG_2X1),
             {"header": result_png, "payload_hex": PNG_2X1.hex()}),
        case("result_bgra8_stride", S2C, "binary", frame(result_raw, BGRA_PADDED),
             {"header": result_raw, "payload_hex": BGRA_PADDED.hex()}),
        case("result_unknown_header_member_ignored", S2C, "binary", frame(result_future, PNG_2X1),
             {"header": result_png, "payload_hex": PNG_2X1.hex()}),
    ]


def job_inputs() -> list[dict[str, Any]]:
    """1.1 named inputs (SPEC.md 9.9): valid for the protocol; a server may still lack a role (not_supported)."""
    image, mask = {"role": "image", "blob": HASH_A}, {"role": "mask", "blob": HASH_B}
    control = {"role": "control", "blob": HASH_A, "model": "", "preprocessor": "canny", "weight": 0.8,
               "start": 0.0, "end": 0.6}

    def submit(name: str, sent_job: dict[str, Any], note: str = "") -> dict[str, Any]:
        sent = {"type": "submit", "job": sent_job}
        decoded = {"type": "submit", "job": decoded_job(sent_job)}
        return case(name, C2S, "text", text(sent), _message(sent, decoded), check="job", note=note)

    return [
        submit("submit_inpaint_inputs", job("inpaint", image=None, mask=None, inputs=[image, mask]),
               note="the same job as image and mask in their 1.0 fields"),
        submit("submit_img2img_inputs_control", job("img2img", image=None, inputs=[image, control])),
        submit("submit_preprocess_canny", job("preprocess", inputs=[{"role": "control", "blob": HASH_A,
                                                                      "preprocessor": "canny"}]),
               note="1.1: the control image of a picture, to paint over"),
        submit("submit_txt2img_two_controls_by_mode", job("txt2img", inputs=[
            {"role": "control", "blob": HASH_A, "mode": "scribble", "preprocessor": "scribble"},
            {"role": "control", "blob": HASH_B, "model": "control_v11p_sd15_canny", "weight": 0.5, "end": 0.8},
        ]), note="1.1: the ControlNet picked by mode, or named"),
        submit("submit_txt2img_regions", job("txt2img", inputs=[
            {"role": "region", "blob": HASH_A, "prompt": "a fox", "weight": 1.5},
            {"role": "region", "blob": HASH_B, "prompt": "snow", "negative_prompt": "people"},
        ]), note="roles without the one-per-job rule may repeat"),
        submit("submit_reference_input_defaults", job("txt2img", inputs=[{"role": "reference", "blob": HASH_A}]),
               note="absent parameters stay absent when decoded; they take the role's defaults"),
        submit("submit_inpaint_references_with_modes", job("inpaint", image=None, mask=None, inputs=[
            image, mask, {"role": "reference", "blob": HASH_A, "mode": "style", "weight": 0.8},
            {"role": "reference", "blob": HASH_B, "model": "ip-adapter_sd15", "mode": "composition", "weight": 0.5,
             "start": 0.2, "end": 0.9},
        ]), note="1.1: several references, each with its mode, strength and step span"),
        submit("submit_inputs_empty_with_image", job("img2img", inputs=[]), note="inputs: [] is no inputs"),
        submit("submit_img2img_live_stream", job("img2img", image=None, inputs=[image], strength=0.4,
                                                 stream="live-doc.3:main"),
               note="1.1: a live stream's job supersedes the session's earlier jobs of the stream (SPEC 9.11)"),
        submit("submit_stream_null_is_absent", job("txt2img") | {"stream": None}, note="no stream, no superseding"),
    ]


def valid_cases() -> list[dict[str, Any]]:
    return client_text() + job_inputs() + client_binary() + server_text() + server_binary()
