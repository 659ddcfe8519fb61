"""The controller driving the headless host against the scriptable server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest
from latentbrush.plugin.core import events as ev
from latentbrush.plugin.core.client import Client, ReconnectPolicy
from latentbrush.plugin.core.controller import Controller, ControllerError
from latentbrush.plugin.core.messages import painter_message
from latentbrush.plugin.core.requests import ControlSpec, GenerationSettings, ReferenceSpec, RequestError
from latentbrush.plugin.hosts.headless import HeadlessHost, composite_over
from latentbrush.protocol.geometry import Rect, Size
from PIL import Image
from plugin_fake_server import FakeServer, result_color, wait_for


def canvas_image(width=96, height=64) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")


def run(test, minor=None, **server_options):
    async def main():
        server = FakeServer(**server_options)
        if minor is not None:
            server.minor = minor  # play a server of this minor from its hello on
        await server.start()
        client = Client(server.url, token=server.token)
        await client.connect()
        try:
            return await asyncio.wait_for(test(server, client), 60)
        finally:
            await client.close()
            await server.stop()

    return asyncio.run(main())


def test_inpaint_previews_result_layer_and_status():
    host = HeadlessHost(canvas_image(), rect=Rect(40, 20, 16, 12))

    async def test(server, client):
        controller = Controller(host, client)
        record = await controller.run(GenerationSettings(prompt="a small red house", seed=9, steps=3), "inpaint")
        return record, controller

    record, controller = run(test, steps=3)
    assert record.state == "done", record.error
    assert record.op == "inpaint" and record.plan.mask_bounds == Rect(40, 20, 16, 12)
    context = record.request.context
    assert context == record.plan.context  # the plan's box is the wire Rect itself
    assert host.preview_count == 3 and not host.preview_visible
    [layer] = host.layers
    assert layer.name == "[Generated] a small red house (9)"
    assert layer.bounds == record.plan.region
    assert layer.image.getpixel((0, 0)) == (*result_color(0, 9), 255)
    assert any("step 3/3" in s.text for s in host.statuses)
    assert host.statuses[-1].progress == 1.0 and "done" in host.statuses[-1].text
    assert record.seeds == (9,) and record.provenance()["model"] == "fake"
    assert controller.history.get(record.job_id) is record


def test_batch_gives_one_layer_per_image_and_bgra_hosts_get_bgra():
    host = HeadlessHost(canvas_image(), pixel_format="bgra8")

    async def test(server, client):
        return await Controller(host, client).run(GenerationSettings(prompt="sky", seed=3, batch=2), "txt2img")

    record = run(test)
    assert record.state == "done"
    assert [layer.name for layer in host.layers] == ["[Generated] sky (3)", "[Generated] sky (4)"]
    # the host asked for bgra8 and decodes it as such: colours come out right
    assert host.layers[1].image.getpixel((5, 5)) == (*result_color(1, 4), 255)
    assert all(layer.bounds == Rect(0, 0, 96, 64) for layer in host.layers)


def test_upscale_resizes_canvas_then_adds_the_layer():
    host = HeadlessHost(canvas_image(50, 30))

    async def test(server, client):
        return await Controller(host, client).run(GenerationSettings(scale=2.5, upscaler="lanczos"), "upscale")

    record = run(test)
    assert record.state == "done"
    assert host.canvas.size == (125, 75)  # 50 * 2.5, 30 * 2.5 (half up)
    [layer] = host.layers
    assert layer.bounds == Rect(0, 0, 125, 75) and layer.name == "[Upscaled] lanczos x2.5"
    # upscale previews come in upscaled-canvas pixels and are shown on the canvas as it was
    bounds, _ = host.last_preview
    assert bounds == Rect(0, 0, 50, 30)


def test_cancel_removes_preview_and_records_cancelled():
    host = HeadlessHost(canvas_image(), rect=Rect(0, 0, 20, 20))

    async def test(server, client):
        server.gated = True
        controller = Controller(host, client)
        record = await controller.submit(GenerationSettings(prompt="x"), "inpaint")
        await wait_for(lambda: controller.history.get(record.job_id).state == "started", "start")
        await controller.cancel()
        session = server.sessions[client.client_id]
        await wait_for(lambda: session.state(record.job_id) == "cancelling", "cancel received")
        server.gate.set()
        return await controller.wait(record.job_id)

    record = run(test)
    assert record.state == "cancelled" and not host.layers and not host.preview_visible
    assert host.statuses[-1].text == "Cancelled"


def test_inpaint_without_selection_is_refused_before_any_upload():
    host = HeadlessHost(canvas_image())

    async def test(server, client):
        with pytest.raises(ControllerError, match="select"):
            await Controller(host, client).submit(GenerationSettings(), "inpaint")
        return server.uploads

    assert run(test) == 0


def test_refused_request_ends_the_record_with_the_field():
    host = HeadlessHost(canvas_image(), rect=Rect(10, 10, 8, 8))

    async def test(server, client):
        controller = Controller(host, client)
        with pytest.raises(Exception, match="unknown_model"):
            await controller.submit(GenerationSettings(model="missing"), "inpaint")
        return controller.history.records[-1]

    record = run(test)
    assert record.state == "error" and record.error_code == "unknown_model"
    assert record.error == painter_message("unknown_model", "inpaint", "job.model")  # plain words, no field path
    assert "job.model" not in record.error


def test_a_server_that_is_gone_ends_the_running_job_and_removes_its_preview():
    host = HeadlessHost(canvas_image(), rect=Rect(10, 10, 8, 8))

    async def test(server, client):
        server.gated = True
        controller = Controller(host, client)
        record = await controller.submit(GenerationSettings(prompt="x"), "inpaint")
        server.gate.set()
        await wait_for(lambda: host.preview_visible, "a preview")
        server.gate.clear()
        client.abandon_all(ev.SERVER_STOPPED, "the local server exited with code -9")
        return controller.history.get(record.job_id)

    record = run(test, steps=50)
    assert record.state == "error" and record.error_code == ev.SERVER_STOPPED
    assert record.error == painter_message(ev.SERVER_STOPPED, "inpaint") and "Restart" in record.error
    assert not host.preview_visible and not host.layers
    assert host.statuses[-1].text == record.error


def test_cancel_while_the_link_is_down_ends_the_job_here():
    host = HeadlessHost(canvas_image(), rect=Rect(10, 10, 8, 8))

    async def test(server, client):
        server.gated = True
        client.reconnect_policy = ReconnectPolicy(initial_delay=30.0, job_grace=None)
        controller = Controller(host, client)
        record = await controller.submit(GenerationSettings(prompt="x"), "inpaint")
        await wait_for(lambda: controller.history.get(record.job_id).state == "started", "start")
        await server.drop_connections()
        await wait_for(lambda: not client.connected, "link down")
        await controller.cancel()  # raises nothing
        return controller.history.get(record.job_id)

    record = run(test)
    assert record.state == "cancelled" and host.statuses[-1].text == "Cancelled" and not host.preview_visible


def test_status_lines_use_the_ui_names_of_operations():
    host = HeadlessHost(canvas_image(), rect=Rect(10, 10, 40, 30))

    async def test(server, client):
        return await Controller(host, client).run(GenerationSettings(strength=0.5), "img2img")

    assert run(test).state == "done"
    assert host.statuses and all("img2img" not in s.text for s in host.statuses)
    assert any(s.text.startswith("Refine: ") for s in host.statuses)


def test_host_failure_becomes_a_job_error():
    host = HeadlessHost(canvas_image(), rect=Rect(10, 10, 8, 8))

    def broken(name, pixels):
        raise RuntimeError("layer stack is locked")

    host.add_result_layer = broken

    async def test(server, client):
        return await Controller(host, client).run(GenerationSettings(), "inpaint")

    record = run(test)
    assert record.state == "error" and "layer stack is locked" in record.error
    assert not host.preview_visible


def test_unchanged_context_is_not_uploaded_twice():
    host = HeadlessHost(canvas_image(), rect=Rect(10, 10, 8, 8))

    async def test(server, client):
        controller = Controller(host, client)
        await controller.run(GenerationSettings(seed=1), "inpaint")
        await controller.run(GenerationSettings(seed=2), "inpaint")
        return server.uploads, client.stats.blobs_skipped

    assert run(test) == (2, 2)  # image + mask once, then both skipped


def test_composite_is_exact_where_alpha_is_zero_or_full():
    rng = np.random.default_rng(0)
    dst = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    src = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    src[:4, :, 3] = 0
    src[4:6, :, 3] = 255
    out = composite_over(dst, src)
    assert np.array_equal(out[:4], dst[:4]) and np.array_equal(out[4:6], src[4:6])
    host = HeadlessHost(Image.fromarray(dst, "RGBA"))
    assert host.canvas_size() == Size(8, 8)


def test_select_all_and_inpaint_repaints_the_whole_canvas():
    host = HeadlessHost(canvas_image(), rect=Rect(0, 0, 96, 64))

    async def test(server, client):
        controller = Controller(host, client)
        inpainted = await controller.run(GenerationSettings(seed=3), "inpaint")
        default = await controller.run(GenerationSettings(seed=4))  # the Generate button: no mask needed
        return inpainted, default, list(server.submitted)

    inpainted, default, (sent_inpaint, sent_default) = run(test)
    assert inpainted.state == "done" and inpainted.op == "inpaint"
    assert sent_inpaint.op == "inpaint" and sent_inpaint.region == Rect(0, 0, 96, 64)
    assert [i.role for i in sent_inpaint.inputs] == ["image", "mask"]
    assert host.layers[0].bounds == Rect(0, 0, 96, 64)
    assert default.op == "txt2img" and sent_default.inputs is None


@pytest.mark.parametrize(("outward", "region"), [(0, Rect(40, 20, 16, 12)), (6, Rect(34, 14, 28, 24))])
def test_the_selection_caps_the_result_unless_the_painter_blends_outward(outward, region):
    host = HeadlessHost(canvas_image(), rect=Rect(40, 20, 16, 12))

    async def test(server, client):
        await Controller(host, client).run(GenerationSettings(seed=3, blend_outward=outward), "inpaint")
        return server.submitted[-1]

    sent = run(test)
    assert sent.mask_outward == outward and sent.region == region
    assert sent.mask_grow >= outward and sent.mask_blend > 0  # a hard selection: the blend ramps inside it
    assert host.layers[0].bounds == region


def test_a_1_0_server_gets_zero_edges_so_the_selection_still_caps_the_result():
    host = HeadlessHost(canvas_image(), rect=Rect(40, 20, 16, 12))

    async def test(server, client):
        await Controller(host, client).run(GenerationSettings(seed=3), "inpaint")
        return server.submitted[-1]

    sent = run(test, minor=0)
    assert (sent.mask_grow, sent.mask_feather, sent.mask_blend, sent.mask_outward) == (0, 0, 0, None)
    assert sent.image and sent.mask and sent.inputs is None


def test_a_control_image_of_the_selected_box_lands_in_a_new_layer():
    """"Make control image from canvas": the visible pixels of the selection's box go up as the one control
    input (no image, no mask), and the preprocessor's picture comes back as a new opaque layer on that box."""
    host = HeadlessHost(canvas_image(), rect=Rect(10, 8, 40, 30))

    async def test(server, client):
        controller = Controller(host, client)
        control = ControlSpec(None, mode="canny", preprocessor="canny")
        settings = GenerationSettings(prompt="ignored", controls=(control,))
        record = await controller.run(settings, "preprocess")
        return record, server.submitted[-1]

    record, sent = run(test)
    assert record.state == "done", record.error
    assert sent.op == "preprocess" and sent.region == sent.context == Rect(10, 8, 40, 30)
    assert sent.image is None and sent.mask is None and sent.batch == 1 and sent.preview_format == "none"
    [control] = sent.inputs
    assert (control.role, control.preprocessor, control.mode) == ("control", "canny", "canny")
    [layer] = host.layers
    assert layer.name == "[Control] canny" and layer.bounds == Rect(10, 8, 40, 30)
    assert host.canvas_size() == Size(96, 64)  # nothing else on the canvas moved


def test_a_control_image_needs_a_preprocessor():
    host = HeadlessHost(canvas_image())

    async def test(server, client):
        controller = Controller(host, client)
        with pytest.raises(RequestError, match="preprocessor"):
            await controller.submit(GenerationSettings(controls=(ControlSpec(None),)), "preprocess")
        return server.submitted

    assert run(test) == []


def test_a_reference_is_read_over_the_whole_canvas_and_uploaded_with_the_job():
    """A reference layer is a picture of its own: the host reads it over the canvas, not the job's context."""
    host = HeadlessHost(canvas_image(640, 576), rect=Rect(40, 20, 16, 12))  # a context of 512 x 512 in it
    reference = Image.new("RGBA", (640, 576), (0, 0, 0, 0))
    reference.paste(Image.new("RGBA", (30, 20), (200, 40, 40, 255)), (600, 540))

    async def test(server, client):
        settings = GenerationSettings(seed=2, references=(ReferenceSpec(reference, mode="style", weight=0.7),))
        record = await Controller(host, client).run(settings, "inpaint")
        return record, server.submitted[-1], dict(server.blobs)

    record, sent, blobs = run(test)
    assert record.state == "done", record.error
    [ref] = [i for i in sent.inputs if i.role == "reference"]
    assert (ref.mode, ref.weight, ref.model) == ("style", 0.7, "")
    assert blobs[ref.blob] == (640, 576) and sent.context.width == 512  # canvas-sized, not the context's


def test_regions_send_each_layers_opacity_over_the_context_with_its_prompt():
    """Regional prompting: a region layer's alpha over the job's context is its mask; prompts go with it."""
    from latentbrush.plugin.core.client import Blob
    from latentbrush.plugin.core.requests import RegionSpec

    host = HeadlessHost(canvas_image(), rect=Rect(40, 20, 16, 12))
    left = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    left.paste(Image.new("RGBA", (48, 64), (255, 0, 0, 128)), (0, 0))  # half opaque on the left half

    async def test(server, client):
        settings = GenerationSettings(seed=2, regions=(RegionSpec(left, "a red boat", weight=0.8),
                                                       RegionSpec(left.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                                                  "a lighthouse", negative_prompt="fog")))
        record = await Controller(host, client).run(settings, "inpaint")
        upscale = await Controller(host, client).run(replace(settings, seed=3), "upscale")  # takes no regions
        return record, upscale, server.submitted

    record, upscale, sent = run(test)
    assert record.state == "done" and upscale.state == "done", (record.error, upscale.error)
    regions = [i for i in sent[0].inputs if i.role == "region"]
    assert [(r.prompt, r.negative_prompt, r.weight) for r in regions] == [("a red boat", "", 0.8),
                                                                          ("a lighthouse", "fog", 1.0)]
    box = sent[0].context
    alpha = np.asarray(left)[box.y:box.bottom, box.x:box.right, 3]
    assert regions[0].blob == Blob(alpha.tobytes(), "gray8", box.width, box.height).hash
    assert not any(i.role == "region" for i in sent[1].inputs or ())
