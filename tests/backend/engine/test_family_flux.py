"""The Flux.1 family through the engine: ``tiny-flux`` (dev-shaped) for every op, a Fill-shaped model from a
diffusers folder for inpaint, distilled guidance, no negative prompt, packed-latent previews, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.events import JobCancelled
from latentbrush.backend.models.tiny_dit import build_tiny_flux
from latentbrush.backend.ops.previews import unpack_latents
from latentbrush.protocol import ErrorCode, Rect, Size

SMALL = {"canvas": Size(64, 64), "region": Rect(0, 0, 64, 64), "resolution": Size(64, 64)}


@pytest.fixture(scope="module")
def fill_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A models folder holding a FLUX.1-Fill-shaped diffusers folder, as downloaded from the Hub."""
    root: Path = tmp_path_factory.mktemp("flux-models")
    build_tiny_flux(fill=True, seed=2).save_pretrained(root / "tiny-flux-fill")
    return Engine(EngineSettings(models_dir=root, device="cpu"))


def inputs_for(op: str, picture) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    image = picture(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:40, 24:56] = 255
    fields = {"image": True} if op != "txt2img" else {}
    if op == "inpaint":
        fields["mask"] = True
    return fields, engine_inputs(image if op != "txt2img" else None, mask if op == "inpaint" else None), image, mask


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_every_op_runs_with_a_preview_per_step(tiny_engine: Engine, make_job, make_events, picture, op: str) -> None:
    fields, inputs, image, mask = inputs_for(op, picture)
    events = make_events()
    job = make_job(model="tiny-flux", op=op, steps=4, strength=0.5, cfg=3.5, preview_format="jpeg", **SMALL,
                   **fields)
    out = tiny_engine.run(job, inputs, events)
    ((total, _seed),) = events.of("started")
    assert total == (4 if op == "txt2img" else 2)
    assert [step for step, *_ in events.previews] == list(range(1, total + 1))
    assert out.images[0].shape == (64, 64, 4) and out.info["task"] == op and out.info["t5"] is True
    if op == "inpaint":
        assert np.array_equal(out.images[0][mask == 0, :3], image[mask == 0, :3])
        assert not np.array_equal(out.images[0][mask == 255, :3], image[mask == 255, :3])


def test_previews_change_from_step_to_step(tiny_engine: Engine, make_job, make_events) -> None:
    events = make_events()
    tiny_engine.run(make_job(model="tiny-flux", steps=3, preview_format="jpeg", **SMALL), {}, events)
    pictures = [rgb for _step, _total, rgb, _rect, _index in events.previews]
    assert all(p.shape == (64, 64, 3) for p in pictures)
    assert not np.array_equal(pictures[0], pictures[-1])  # x0 sharpens as the noise goes


def test_cfg_is_the_distilled_guidance_and_the_negative_prompt_is_not_used(tiny_engine: Engine, make_job,
                                                                           events) -> None:
    low, high = (tiny_engine.run(make_job(model="tiny-flux", cfg=cfg, **SMALL), {}, events) for cfg in (1.0, 6.0))
    assert not np.array_equal(low.images[0], high.images[0])  # guidance_embeds: cfg steers the model
    negative = tiny_engine.run(make_job(model="tiny-flux", cfg=6.0, negative_prompt="blurry", **SMALL), {}, events)
    assert np.array_equal(negative.images[0], high.images[0])  # no true CFG: one pass a step, negative unused


def test_schnell_sampler_misfit_and_hello(tiny_engine: Engine, make_job) -> None:
    infos = {m.name: m for m in tiny_engine.describe().models}
    assert infos["tiny-flux"].samplers == ("Euler a", "Euler")  # FlowMatchHeun takes no custom sigmas / mu
    error = tiny_engine.check(make_job(model="tiny-flux", sampler="Heun"))
    assert error is not None and error.code == ErrorCode.BAD_FIELD and error.field == "job.sampler"


def test_unpacking_matches_the_pipeline() -> None:
    packed = torch.randn(1, (48 // 16) * (80 // 16), 64, generator=torch.Generator().manual_seed(3))
    expected = FluxPipeline._unpack_latents(packed, 48, 80, 8)
    assert torch.equal(unpack_latents(packed, 80 / 48), expected)
    spatial = torch.zeros(1, 16, 6, 10)
    assert unpack_latents(spatial, 1.0) is spatial


def test_fill_model_is_detected_and_inpaints(fill_engine: Engine, make_job, make_events, picture) -> None:
    info = {m.name: m for m in fill_engine.describe().models}["tiny-flux-fill"]
    assert (info.base, info.inpaint, info.source) == ("flux", True, "folder")
    fields, inputs, image, mask = inputs_for("inpaint", picture)
    events = make_events()
    out = fill_engine.run(make_job(model="tiny-flux-fill", op="inpaint", steps=2, preview_format="jpeg", **SMALL,
                                   **fields), inputs, events)
    model = fill_engine.load("tiny-flux-fill")
    assert type(model.pipeline("inpaint")).__name__ == "FluxFillPipeline" and model.inpaint_unet
    assert out.info["task"] == "inpaint" and len(events.previews) == 2
    assert np.array_equal(out.images[0][mask == 0, :3], image[mask == 0, :3])
    # Generate on an inpainting model: its Fill pipeline with everything masked, as for 9-channel SD models
    txt = fill_engine.run(make_job(model="tiny-flux-fill", steps=2, **SMALL), {}, make_events())
    assert txt.images[0].shape == (64, 64, 4) and len(model._pipes) == 1


def test_cancel_inside_a_single_stream_block(tiny_engine: Engine, make_job, make_events) -> None:
    pipe = tiny_engine.load("tiny-flux").pipeline("txt2img")
    single = pipe.transformer.single_transformer_blocks
    events = make_events()
    finished: list[int] = []

    def cancel(_module, _args, _output) -> None:
        finished.append(0)
        events.cancel.set()

    handles = [single[0].register_forward_hook(cancel), single[1].register_forward_hook(lambda *_: finished.append(1))]
    try:
        with pytest.raises(JobCancelled):
            tiny_engine.run(make_job(model="tiny-flux", steps=3, **SMALL), {}, events)
    finally:
        for handle in handles:
            handle.remove()
    assert finished == [0] and events.of("result") == []


def test_taesd3_and_taef1_previews_from_the_models_folder(tmp_path: Path, make_job, make_events) -> None:
    """TAESD3 as a diffusers folder, TAEF1 as ComfyUI's decoder-only file: both found, both decode 16 channels
    (Flux's packed latent unpacked first)."""
    from diffusers import AutoencoderTiny
    from test_previews_taesd import write_comfy_decoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        taesd = AutoencoderTiny(latent_channels=16, encoder_block_out_channels=(8,) * 4,
                                decoder_block_out_channels=(8,) * 4).eval()
    taesd.save_pretrained(tmp_path / "vae_approx" / "taesd3")
    write_comfy_decoder(taesd, tmp_path / "vae_approx" / "taef1_decoder.safetensors")
    engine = Engine(EngineSettings(models_dir=tmp_path, device="cpu"))
    for model in ("tiny-sd3", "tiny-flux"):
        events = make_events()
        out = engine.run(make_job(model=model, steps=2, preview_format="jpeg", **SMALL), {}, events)
        assert out.info["preview"] == "taesd" and len(events.previews) == 2
        assert all(rgb.shape == (64, 64, 3) for _s, _t, rgb, _r, _i in events.previews)
