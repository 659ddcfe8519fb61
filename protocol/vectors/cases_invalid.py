"""Invalid conformance cases: each input must give the error code and field written here."""

from __future__ import annotations

from typing import Any

from vector_kit import C2S, HASH_A, S2C, case, error, frame, job, png, rect, sha, size, text

MIB = 1048576
RGBA_2X2 = bytes(range(16))
PNG_1X1 = png(1, 1, b"\x00\x00\x00\xff")


def _submit(name: str, sent_job: Any, code: str, field: str | None, *, check: str = "decode",
            limits: dict[str, int] | None = None, note: str = "") -> dict[str, Any]:
    return case(name, C2S, "text", text({"type": "submit", "job": sent_job}), error(code, field),
                check=check, limits=limits, note=note)


def _client(name: str, data: Any, code: str, field: str | None, **kw: Any) -> dict[str, Any]:
    return case(name, C2S, "text", data if isinstance(data, (str, bytes, list)) else text(data),
                error(code, field), **kw)


def _blob(name: str, data: bytes | list[Any], code: str, field: str | None, **kw: Any) -> dict[str, Any]:
    return case(name, C2S, "binary", data, error(code, field), **kw)


def _blob_header(**fields: Any) -> dict[str, Any]:
    header = {"type": "blob", "hash": sha(RGBA_2X2), "format": "rgba8", "width": 2, "height": 2}
    header.update(fields)
    return {k: v for k, v in header.items() if v is not None}


def json_syntax() -> list[dict[str, Any]]:
    return [
        _client("not_json", "hello", "bad_json", None),
        _client("empty_text", "", "bad_json", None),
        _client("json_array", '[{"type":"query_queue"}]', "bad_json", None),
        _client("json_string", '"query_queue"', "bad_json", None),
        _client("json_null", "null", "bad_json", None),
        _client("truncated_json", '{"type":"cancel","job_id":"j1"', "bad_json", None),
        _client("invalid_utf8", b'{"type":"cancel","job_id":"\xff"}', "bad_json", None,
                note="the decoder given bytes; over a WebSocket this text frame never reaches it: "
                "the WebSocket layer closes the connection with 1007 (SPEC.md section 2)"),
        _client("utf8_bom", '\ufeff{"type":"query_queue"}', "bad_json", None),
        _client("nan", '{"type":"submit","job":{"id":"j1","cfg":NaN}}', "bad_json", None),
        _client("infinity", '{"type":"submit","job":{"id":"j1","cfg":Infinity}}', "bad_json", None),
        _client("negative_infinity", '{"type":"submit","job":{"id":"j1","cfg":-Infinity}}', "bad_json", None),
        _client("number_overflows_double", '{"type":"submit","job":{"id":"j1","cfg":1e400}}', "bad_json", None),
        _client("integer_41_digits", '{"type":"submit","job":{"id":"j1","steps":' + "1" * 41 + "}}", "bad_json", None),
        _client("duplicate_key", '{"type":"cancel","job_id":"j1","job_id":"j2"}', "bad_json", None),
        _client("nested_10_levels", {"type": "submit", "job": {"a": [[[[[[[[1]]]]]]]]}}, "bad_json", None,
                note="the 1 sits at level 10; at most 8 levels below the top object are allowed"),
        _client("nested_100000_levels", ['{"type":"submit","job":', {"repeat": "[", "count": 100000},
                                         {"repeat": "]", "count": 100000}, "}"], "bad_json", None),
        _client("text_over_1_mib", ['{"type":"hello","protocol":1,"client":"',
                                    {"repeat": "a", "count": MIB}, '"}'], "too_large", None),
    ]


def message_shape() -> list[dict[str, Any]]:
    return [
        _client("missing_type", {"job_id": "j1"}, "missing_field", "type"),
        _client("type_not_string", {"type": 5}, "bad_field", "type"),
        _client("type_null", {"type": None, "job_id": "j1"}, "bad_field", "type"),
        _client("unknown_type", {"type": "frobnicate"}, "unknown_type", "type"),
        _client("type_wrong_case", {"type": "Cancel", "job_id": "j1"}, "unknown_type", "type"),
        _client("server_message_from_client", {"type": "queued", "job_id": "j1", "position": 0},
                "unknown_type", "type"),
        _client("hello_missing_protocol", {"type": "hello", "client": "x"}, "missing_field", "protocol"),
        _client("hello_protocol_string", {"type": "hello", "protocol": "1", "client": "x"}, "bad_field", "protocol"),
        _client("hello_protocol_float", '{"type":"hello","protocol":1.0,"client":"x"}', "bad_field", "protocol"),
        _client("hello_protocol_bool", {"type": "hello", "protocol": True, "client": "x"}, "bad_field", "protocol"),
        _client("hello_client_129_chars", {"type": "hello", "protocol": 1, "client": "c" * 129},
                "bad_field", "client"),
        _client("hello_token_513_chars", {"type": "hello", "protocol": 1, "client": "x", "token": "t" * 513},
                "bad_field", "token"),
        _client("hello_client_id_with_space", {"type": "hello", "protocol": 1, "client": "x", "client_id": "a b"},
                "bad_field", "client_id"),
        _client("hello_negative_minor", {"type": "hello", "protocol": 1, "client": "x", "minor": -1},
                "bad_field", "minor"),
        _client("hello_capabilities_9_formats",
                {"type": "hello", "protocol": 1, "client": "x", "capabilities": {"preview_formats": ["jpeg"] * 9}},
                "bad_field", "capabilities.preview_formats"),
        _client("hello_capability_not_string",
                {"type": "hello", "protocol": 1, "client": "x", "capabilities": {"result_formats": [1]}},
                "bad_field", "capabilities.result_formats[0]"),
        _client("hello_version_2", {"type": "hello", "protocol": 2, "client": "x"}, "version_mismatch", "protocol",
                check="hello", note="decodes fine; the server then refuses it and closes the connection"),
        _client("hello_version_0", {"type": "hello", "protocol": 0, "client": "x"}, "version_mismatch", "protocol",
                check="hello"),
        _client("cancel_missing_job_id", {"type": "cancel"}, "missing_field", "job_id"),
        _client("cancel_job_id_65_chars", {"type": "cancel", "job_id": "j" * 65}, "bad_field", "job_id"),
        _client("cancel_job_id_empty", {"type": "cancel", "job_id": ""}, "bad_field", "job_id"),
        _client("cancel_job_id_trailing_newline", {"type": "cancel", "job_id": "j1\n"}, "bad_field", "job_id"),
        _client("cancel_job_id_number", {"type": "cancel", "job_id": 17}, "bad_field", "job_id"),
        _client("cancel_unknown_field", {"type": "cancel", "job_id": "j1", "force": True}, "unknown_field", "force"),
        _client("query_queue_unknown_field", {"type": "query_queue", "all": True}, "unknown_field", "all"),
        _client("unknown_field_lone_surrogate", '{"type":"query_queue","\\ud800":1}', "unknown_field", "\\ud800",
                note="the name is quoted with the surrogate written as the six characters \\ud800, so the "
                "error stays UTF-8"),
        _client("query_blobs_not_array", {"type": "query_blobs", "hashes": HASH_A}, "bad_field", "hashes"),
        _client("query_blobs_65_hashes", {"type": "query_blobs", "hashes": [HASH_A] * 65}, "bad_field", "hashes"),
        _client("query_blobs_uppercase_hex", {"type": "query_blobs", "hashes": [HASH_A, "sha256:" + "A" * 64]},
                "bad_field", "hashes[1]"),
        _client("query_blobs_short_hash", {"type": "query_blobs", "hashes": ["sha256:abc"]}, "bad_field", "hashes[0]"),
    ]


def submit_fields() -> list[dict[str, Any]]:
    return [
        _client("submit_missing_job", {"type": "submit"}, "missing_field", "job"),
        _client("submit_job_not_object", {"type": "submit", "job": "inpaint"}, "bad_field", "job"),
        _submit("submit_missing_op", {k: v for k, v in job().items() if k != "op"}, "missing_field", "job.op"),
        _submit("submit_unknown_op", job(op="outpaint"), "bad_field", "job.op"),
        _submit("submit_op_wrong_case", job() | {"op": "Inpaint"}, "bad_field", "job.op"),
        _submit("submit_id_null", job(id="x") | {"id": None}, "bad_field", "job.id"),
        _submit("submit_region_null", job() | {"region": None}, "bad_field", "job.region"),
        _submit("submit_canvas_zero_width", job(canvas=size(0, 512)), "bad_field", "job.canvas.width"),
        _submit("submit_canvas_negative_height", job(canvas=size(512, -5)), "bad_field", "job.canvas.height"),
        _submit("submit_canvas_65537_wide", job(canvas=size(65537, 512)), "bad_field", "job.canvas.width"),
        _submit("submit_region_zero_height", job(region=rect(0, 0, 10, 0)), "bad_field", "job.region.height"),
        _submit("submit_region_missing_x", job(region={"y": 0, "width": 8, "height": 8}), "missing_field",
                "job.region.x"),
        _submit("submit_region_x_float", job(region=rect(0, 0, 8, 8)) | {"region": {"x": 0.5, "y": 0, "width": 8,
                                                                                    "height": 8}},
                "bad_field", "job.region.x"),
        _submit("submit_unknown_job_field", job(denoise=0.5), "unknown_field", "job.denoise"),
        _submit("submit_unknown_region_field", job(region=rect(0, 0, 8, 8) | {"w": 8}), "unknown_field",
                "job.region.w"),
        _submit("submit_type_inside_job", job(type="submit"), "unknown_field", "job.type",
                note="only the top-level object carries type"),
        _submit("submit_steps_zero", job(steps=0), "bad_field", "job.steps"),
        _submit("submit_steps_201", job(steps=201), "bad_field", "job.steps"),
        _submit("submit_steps_float", job(steps=20.5), "bad_field", "job.steps"),
        _submit("submit_steps_string", job(steps="20"), "bad_field", "job.steps"),
        _submit("submit_cfg_string", job(cfg="7"), "bad_field", "job.cfg"),
        _submit("submit_cfg_negative", job(cfg=-1), "bad_field", "job.cfg"),
        _submit("submit_cfg_bool", job(cfg=True), "bad_field", "job.cfg"),
        _submit("submit_strength_1_5", job(strength=1.5), "bad_field", "job.strength"),
        _submit("submit_seed_negative", job(seed=-1), "bad_field", "job.seed"),
        _submit("submit_seed_over_u32", job(seed=4294967296), "bad_field", "job.seed"),
        _submit("submit_batch_zero", job(batch=0), "bad_field", "job.batch"),
        _submit("submit_prompt_8001_chars", job(prompt="p" * 8001), "bad_field", "job.prompt"),
        _client("submit_prompt_lone_surrogate",
                '{"type":"submit","job":{"id":"j1","op":"txt2img","canvas":{"width":8,"height":8},'
                '"region":{"x":0,"y":0,"width":8,"height":8},"prompt":"\\ud800"}}',
                "bad_field", "job.prompt"),
        _submit("submit_prompt_number", job(prompt=5), "bad_field", "job.prompt"),
        _submit("submit_model_257_chars", job(model="m" * 257), "bad_field", "job.model"),
        _submit("submit_image_md5", job(image="md5:" + "0" * 32), "bad_field", "job.image"),
        _submit("submit_prefill_unknown", job(prefill="magic"), "bad_field", "job.prefill"),
        _submit("submit_prefill_color_two_items", job(prefill_color=[1, 2]), "bad_field", "job.prefill_color"),
        _submit("submit_prefill_color_256", job(prefill_color=[0, 0, 256]), "bad_field", "job.prefill_color[2]"),
        _submit("submit_upscale_scale_9", job("upscale", upscale={"scale": 9}), "bad_field", "job.upscale.scale"),
        _submit("submit_upscale_seam_fix_unknown", job("upscale", upscale={"seam_fix": "all"}), "bad_field",
                "job.upscale.seam_fix"),
        _submit("submit_upscale_refine_not_bool", job("upscale", upscale={"refine": "yes"}), "bad_field",
                "job.upscale.refine"),
        _submit("submit_stream_empty", job(stream=""), "bad_field", "job.stream"),
        _submit("submit_stream_65_chars", job(stream="s" * 65), "bad_field", "job.stream"),
        _submit("submit_stream_space", job(stream="live doc"), "bad_field", "job.stream"),
        _submit("submit_stream_number", job(stream=3), "bad_field", "job.stream"),
        _submit("submit_upscale_unknown_field", job("upscale", upscale={"denoise": 0.2}), "unknown_field",
                "job.upscale.denoise"),
    ]


def job_checks() -> list[dict[str, Any]]:
    canvas = size(512, 512)

    def check(name: str, sent_job: dict[str, Any], code: str, field: str, **kw: Any) -> dict[str, Any]:
        return _submit(name, sent_job, code, field, check="job", **kw)

    return [
        check("region_one_pixel_past_right_edge", job(canvas=canvas, region=rect(385, 0, 128, 8)), "out_of_bounds",
              "job.region"),
        check("region_one_pixel_past_bottom_edge", job(canvas=canvas, region=rect(0, 505, 8, 8)), "out_of_bounds",
              "job.region"),
        check("region_negative_x", job(canvas=canvas, region=rect(-1, 0, 8, 8)), "out_of_bounds", "job.region"),
        check("context_outside_canvas", job(canvas=canvas, region=rect(0, 0, 8, 8), context=rect(-8, 0, 64, 64)),
              "out_of_bounds", "job.context"),
        check("region_outside_context", job(canvas=canvas, region=rect(60, 60, 8, 8), context=rect(0, 0, 64, 64)),
              "out_of_bounds", "job.region", note="region ends at 68, the context at 64"),
        check("img2img_without_image", job("img2img") | {"image": None}, "missing_field", "job.image"),
        check("inpaint_without_mask", job("inpaint") | {"mask": None}, "missing_field", "job.mask"),
        check("upscale_without_image", job("upscale") | {"image": None}, "missing_field", "job.image"),
        check("txt2img_with_image", job("txt2img", image=HASH_A), "bad_field", "job.image"),
        check("txt2img_with_strength", job("txt2img", strength=0.5), "bad_field", "job.strength"),
        check("upscale_with_mask", job("upscale", mask=HASH_A), "bad_field", "job.mask"),
        check("upscale_params_on_inpaint", job("inpaint", upscale={"refine": True}), "bad_field", "job.upscale"),
        check("upscale_with_resolution", job("upscale", resolution=size(512, 512)), "bad_field", "job.resolution"),
        check("upscale_batch_2", job("upscale", batch=2), "bad_field", "job.batch"),
        check("upscale_seam_fix_without_refine", job("upscale", upscale={"seam_fix": "band"}), "bad_field",
              "job.upscale.seam_fix"),
        check("upscale_unblur_without_refine", job("upscale", upscale={"unblur": 0.6}), "bad_field",
              "job.upscale.unblur", note="1.1: the tile ControlNet steers the refine pass"),
        _submit("submit_upscale_unblur_2_5", job("upscale", upscale={"refine": True, "unblur": 2.5}), "bad_field",
                "job.upscale.unblur"),
        check("upscale_overlap_half_tile", job("upscale", upscale={"tile": 64, "overlap": 32}), "bad_field",
              "job.upscale.overlap"),
        check("upscale_refine_padding_half_tile",
              job("upscale", upscale={"refine": True, "refine_tile": 256, "refine_padding": 128}), "bad_field",
              "job.upscale.refine_padding"),
        check("preview_format_gif", job(preview_format="gif"), "not_supported", "job.preview_format"),
        check("result_format_jpeg", job(result_format="jpeg"), "not_supported", "job.result_format",
              note="results carry alpha; jpeg is not a result format"),
        check("steps_over_server_limit", job(steps=151), "too_large", "job.steps", limits={"max_steps": 150}),
        check("batch_over_server_limit", job(batch=9), "too_large", "job.batch", limits={"max_batch": 8}),
        check("context_over_max_pixels", job(region=rect(0, 0, 64, 64), context=rect(0, 0, 512, 512)), "too_large",
              "job.context", limits={"max_pixels": 262143}),
        check("resolution_over_max_pixels", job(resolution=size(1024, 1024)), "too_large", "job.resolution",
              limits={"max_pixels": 1048575}),
        check("upscale_output_over_max_pixels", job("upscale", region=rect(0, 0, 512, 512), upscale={"scale": 4}),
              "too_large", "job.upscale", limits={"max_pixels": 4194303},
              note="2048 x 2048 = 4194304 output pixels"),
    ]


def client_frames() -> list[dict[str, Any]]:
    good = _blob_header()
    head = text(good).encode()
    return [
        _blob("frame_empty", b"", "bad_frame", None),
        _blob("frame_3_bytes", b"\x00\x00\x00", "bad_frame", None),
        _blob("header_length_zero", frame(b"", RGBA_2X2), "bad_frame", None),
        _blob("header_length_past_end", frame(head, b"", head_len=len(head) + 1), "bad_frame", None),
        _blob("header_length_4_gib", frame(head, RGBA_2X2, head_len=0xFFFFFFFF), "bad_frame", None),
        _blob("header_length_over_64_kib", ["00010001", "7b", {"repeat": "20", "count": 65535}, "7d"], "bad_frame",
              None, note="a 65537-byte header ('{', 65535 spaces, '}'), even though it is all there"),
        _blob("header_not_json", frame(b"blob please", RGBA_2X2), "bad_json", None),
        _blob("header_not_utf8", frame(b'{"type":"blob\xc3"}', RGBA_2X2), "bad_json", None),
        _blob("header_json_array", frame(b"[1,2,3]", RGBA_2X2), "bad_json", None),
        _blob("header_nan", frame(b'{"type":"blob","width":NaN}', RGBA_2X2), "bad_json", None),
        _blob("header_missing_type", frame({k: v for k, v in good.items() if k != "type"}, RGBA_2X2),
              "missing_field", "type"),
        _blob("header_unknown_type", frame(good | {"type": "image"}, RGBA_2X2), "unknown_type", "type"),
        _blob("header_preview_from_client", frame(good | {"type": "preview"}, RGBA_2X2), "unknown_type", "type"),
        _blob("blob_unknown_field", frame(good | {"compressed": False}, RGBA_2X2), "unknown_field", "compressed"),
        _blob("blob_missing_hash", frame(_blob_header(hash=None), RGBA_2X2), "missing_field", "hash"),
        _blob("blob_format_tiff", frame(_blob_header(format="tiff"), RGBA_2X2), "bad_field", "format"),
        _blob("blob_format_uppercase", frame(_blob_header(format="RGBA8"), RGBA_2X2), "bad_field", "format"),
        _blob("blob_width_zero", frame(_blob_header(width=0), b""), "bad_field", "width"),
        _blob("blob_height_negative", frame(_blob_header(height=-2), RGBA_2X2), "bad_field", "height"),
        _blob("blob_stride_zero", frame(_blob_header(stride=0), RGBA_2X2), "bad_field", "stride"),
        _blob("blob_hash_mismatch", frame(_blob_header(hash=sha(b"other")), RGBA_2X2), "hash_mismatch", "hash"),
        _blob("blob_raw_one_byte_short", frame(_blob_header(hash=sha(RGBA_2X2[:-1])), RGBA_2X2[:-1]), "bad_image",
              "payload"),
        _blob("blob_raw_one_byte_long", frame(_blob_header(hash=sha(RGBA_2X2 + b"\x00")), RGBA_2X2 + b"\x00"),
              "bad_image", "payload"),
        _blob("blob_raw_padding_after_last_row",
              frame(_blob_header(stride=12, hash=sha(RGBA_2X2 + b"\x00" * 8)), RGBA_2X2 + b"\x00" * 8),
              "bad_image", "payload", note="2 rows of stride 12 is 20 bytes, not 24"),
        _blob("blob_stride_shorter_than_row", frame(_blob_header(stride=7), RGBA_2X2), "bad_field", "stride"),
        _blob("blob_stride_on_png", frame(_blob_header(format="png", width=1, height=1, stride=4,
                                                       hash=sha(PNG_1X1)), PNG_1X1), "bad_field", "stride"),
        _blob("blob_png_empty_payload", frame(_blob_header(format="png", hash=sha(b"")), b""), "bad_image", "payload"),
        _blob("blob_over_max_pixels", frame(_blob_header(width=11, height=10), b""), "too_large", "width",
              limits={"max_pixels": 100}),
        _blob("frame_over_max_frame_bytes", frame(good, RGBA_2X2), "too_large", None,
              limits={"max_frame_bytes": 64}),
        _blob("blob_patch_base_without_rect", frame(_blob_header(base=HASH_A), RGBA_2X2), "missing_field", "rect"),
        _blob("blob_patch_rect_without_base", frame(_blob_header(rect=rect(0, 0, 1, 1)), RGBA_2X2[:4]),
              "missing_field", "base"),
        _blob("blob_patch_bad_base", frame(_blob_header(base="sha256:abc", rect=rect(0, 0, 1, 1)), RGBA_2X2[:4]),
              "bad_field", "base"),
        _blob("blob_patch_encoded_format", frame(_blob_header(format="png", base=HASH_A, rect=rect(0, 0, 1, 1)),
                                                 png(1, 1, bytes(4))), "bad_field", "base"),
        _blob("blob_patch_rect_outside", frame(_blob_header(base=HASH_A, rect=rect(1, 1, 2, 1)), RGBA_2X2[:8]),
              "out_of_bounds", "rect"),
        _blob("blob_patch_payload_of_whole_image", frame(_blob_header(base=HASH_A, rect=rect(0, 0, 1, 2)), RGBA_2X2),
              "bad_image", "payload", note="a patch's payload covers rect: 1 x 2 pixels are 8 bytes"),
    ]


def server_side() -> list[dict[str, Any]]:
    preview = {"type": "preview", "job_id": "j1", "step": 1, "total": 20, "rect": rect(0, 0, 2, 2),
               "format": "rgba8", "width": 2, "height": 2}
    result = {"type": "result", "job_id": "j1", "index": 0, "rect": rect(0, 0, 2, 2), "format": "rgba8",
              "width": 2, "height": 2}

    def s2c(name: str, data: Any, code: str, field: str | None, **kw: Any) -> dict[str, Any]:
        return case(name, S2C, "text", data if isinstance(data, str) else text(data), error(code, field), **kw)

    hello_v11 = {"type": "hello", "protocol": 1, "minor": 1, "server": "s", "client_id": "c1", "resumed": False,
                 "device": "cpu", "dtype": "float32", "models": [], "upscalers": [], "samplers": ["LCM"],
                 "limits": {"max_frame_bytes": 1048576, "max_pixels": 16777216, "max_queue": 32, "max_batch": 8,
                            "max_steps": 150}}

    def s2c_frame(name: str, data: bytes, code: str, field: str | None, **kw: Any) -> dict[str, Any]:
        return case(name, S2C, "binary", data, error(code, field), **kw)

    return [
        s2c("server_unknown_type", {"type": "weather", "sunny": True}, "unknown_type", "type",
            note="a client ignores this message (a later 1.x server may send new types)"),
        s2c("server_queued_missing_position", {"type": "queued", "job_id": "j1"}, "missing_field", "position"),
        s2c("server_hello_missing_limits", {"type": "hello", "protocol": 1, "minor": 0, "server": "s",
                                            "client_id": "c1", "resumed": False, "device": "cpu", "dtype": "float32",
                                            "models": [], "upscalers": [], "samplers": []},
            "missing_field", "limits"),
        s2c("server_hello_preset_steps_zero", {**hello_v11, "presets": {"lcm": {"sampler": "LCM", "steps": 0,
                                                                                 "cfg": 1.0}}},
            "bad_field", "presets.lcm.steps", note="1.1: a preset's steps are 1..200 as job.steps"),
        s2c("server_hello_preset_missing_cfg", {**hello_v11, "presets": {"lcm": {"sampler": "LCM", "steps": 4}}},
            "missing_field", "presets.lcm.cfg"),
        s2c("server_hello_presets_not_object", {**hello_v11, "presets": [{"sampler": "LCM", "steps": 4, "cfg": 1}]},
            "bad_field", "presets"),
        s2c("server_hello_preset_name_too_long", {**hello_v11, "presets": {"x" * 65: {"sampler": "LCM", "steps": 4,
                                                                                       "cfg": 1}}},
            "bad_field", "presets." + "x" * 64 + "...", note="names are at most 64 characters; the error cuts them"),
        s2c("server_model_preset_cfg_too_high",
            {**hello_v11, "models": [{"name": "m", "base": "sd15", "inpaint": False, "resolution": 512,
                                      "preset": {"sampler": "LCM", "steps": 4, "cfg": 31}}]},
            "bad_field", "models[0].preset.cfg"),
        s2c("server_model_preset_sampler_number",
            {**hello_v11, "models": [{"name": "m", "base": "sd15", "inpaint": False, "resolution": 512,
                                      "preset": {"sampler": 4, "steps": 4, "cfg": 1}}]},
            "bad_field", "models[0].preset.sampler"),
        s2c("server_done_info_not_object", {"type": "done", "job_id": "j1", "results": 1, "info": []},
            "bad_field", "info"),
        s2c("server_error_missing_code", {"type": "error", "message": "m"}, "missing_field", "code"),
        s2c("server_queue_unknown_state", {"type": "queue", "jobs": [{"job_id": "j1", "state": "paused"}]},
            "bad_field", "jobs[0].state"),
        s2c("server_cancelled_reason_number", {"type": "cancelled", "job_id": "j1", "reason": 1}, "bad_field",
            "reason", note="lenient means unknown members, not wrong types"),
        s2c("server_nan", '{"type":"progress","job_id":"j1","step":NaN,"total":1}', "bad_json", None),
        s2c_frame("preview_raw_wrong_length", frame(preview, RGBA_2X2[:-4]), "bad_image", "payload"),
        s2c_frame("preview_width_zero", frame(preview | {"width": 0}, b""), "bad_field", "width"),
        s2c_frame("result_missing_rect", frame({k: v for k, v in result.items() if k != "rect"}, RGBA_2X2),
                  "missing_field", "rect"),
        s2c_frame("result_stride_shorter_than_row", frame(result | {"stride": 4}, RGBA_2X2), "bad_field", "stride"),
        s2c_frame("result_stride_on_png", frame(result | {"format": "png", "stride": 8}, PNG_1X1), "bad_field",
                  "stride"),
        s2c_frame("result_png_empty", frame(result | {"format": "png"}, b""), "bad_image", "payload"),
        s2c_frame("server_frame_header_truncated", frame(result, RGBA_2X2)[:20], "bad_frame", None),
    ]


def job_inputs() -> list[dict[str, Any]]:
    """1.1 named inputs (SPEC.md 9.9): the field walk, then the input rules, then the operation table."""
    image, mask = {"role": "image", "blob": HASH_A}, {"role": "mask", "blob": HASH_A}
    control = {"role": "control", "blob": HASH_A}

    def sent(op: str, *inputs: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return job(op, image=None, mask=None, inputs=list(inputs), **fields)

    def check(name: str, sent_job: dict[str, Any], code: str, field: str, **kw: Any) -> dict[str, Any]:
        return _submit(name, sent_job, code, field, check="job", **kw)

    return [
        _submit("inputs_not_array", job("txt2img", inputs={"role": "image"}), "bad_field", "job.inputs"),
        _submit("inputs_17_items", sent("txt2img", *[control] * 17), "bad_field", "job.inputs"),
        _submit("input_missing_blob", sent("txt2img", {"role": "control"}), "missing_field", "job.inputs[0].blob"),
        _submit("input_role_upper_case", sent("img2img", {"role": "Image", "blob": HASH_A}), "bad_field",
                "job.inputs[0].role"),
        _submit("input_weight_2_5", sent("txt2img", control | {"weight": 2.5}), "bad_field", "job.inputs[0].weight"),
        _submit("input_unknown_member", sent("txt2img", control | {"strength": 1}), "unknown_field",
                "job.inputs[0].strength"),
        check("inputs_and_image_field", job("img2img", inputs=[mask]), "bad_field", "job.image",
              note="image/mask either as fields or as inputs, not both"),
        check("input_role_unknown", sent("img2img", image, {"role": "depth", "blob": HASH_A}), "bad_field",
              "job.inputs[1].role"),
        check("input_two_images", sent("img2img", image, image), "bad_field", "job.inputs[1].role"),
        check("input_image_with_weight", sent("img2img", image | {"weight": 1}), "bad_field", "job.inputs[0].weight",
              note="a parameter the role does not take"),
        check("input_reference_with_mode", sent("txt2img", {"role": "reference", "blob": HASH_A, "mode": "canny"}),
              "bad_field", "job.inputs[0].mode", note="a reference's mode is reference, style or composition"),
        check("input_reference_with_preprocessor", sent("txt2img", {"role": "reference", "blob": HASH_A,
                                                                    "preprocessor": "canny"}),
              "bad_field", "job.inputs[0].preprocessor", note="preprocessors belong to control inputs"),
        check("input_reference_end_before_start", sent("txt2img", {"role": "reference", "blob": HASH_A,
                                                                   "start": 0.6, "end": 0.4}),
              "bad_field", "job.inputs[0].end"),
        _submit("input_reference_weight_negative", sent("txt2img", {"role": "reference", "blob": HASH_A,
                                                                    "weight": -0.1}),
                "bad_field", "job.inputs[0].weight"),
        _submit("input_reference_model_too_long", sent("txt2img", {"role": "reference", "blob": HASH_A,
                                                                   "model": "x" * 257}),
                "bad_field", "job.inputs[0].model"),
        _submit("input_mode_too_long", sent("txt2img", control | {"mode": "x" * 33}), "bad_field",
                "job.inputs[0].mode"),
        check("input_region_with_start", sent("txt2img", {"role": "region", "blob": HASH_A, "start": 0.1}),
              "bad_field", "job.inputs[0].start"),
        check("input_end_equals_start", sent("img2img", image, control | {"start": 0.5, "end": 0.5}), "bad_field",
              "job.inputs[1].end"),
        check("input_start_1_default_end", sent("img2img", image, control | {"start": 1.0}), "bad_field",
              "job.inputs[1].end", note="end defaults to 1"),
        check("inpaint_inputs_without_mask", sent("inpaint", image), "missing_field", "job.inputs"),
        check("img2img_inputs_without_image", sent("img2img", control), "missing_field", "job.inputs"),
        check("txt2img_image_input", sent("txt2img", image), "bad_field", "job.inputs[0].role"),
        check("upscale_control_input", sent("upscale", image, control), "bad_field", "job.inputs[1].role"),
        check("upscale_reference_input", sent("upscale", image, {"role": "reference", "blob": HASH_A}), "bad_field",
              "job.inputs[1].role"),
        check("preprocess_without_control", sent("preprocess", image), "bad_field", "job.inputs[0].role",
              note="preprocess takes its picture as the control input"),
        check("preprocess_two_controls", sent("preprocess", control | {"preprocessor": "canny"},
                                              control | {"preprocessor": "canny"}), "bad_field", "job.inputs[1].role"),
        check("preprocess_no_preprocessor", sent("preprocess", control), "bad_field", "job.inputs[0].preprocessor",
              note="the default preprocessor \"\" would return the picture unchanged"),
        check("preprocess_batch_2", sent("preprocess", control | {"preprocessor": "canny"}, batch=2), "bad_field",
              "job.batch"),
    ]


def invalid_cases() -> list[dict[str, Any]]:
    return (
        json_syntax() + message_shape() + submit_fields() + job_checks() + job_inputs() + client_frames()
        + server_side()
    )
