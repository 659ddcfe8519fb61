"""Previews that look like the result: clipped to the composite alpha, at the region's size, TAESD found in the
models folder without a flag (diffusers folders and ComfyUI's decoder files), linear previews upscaled smoothly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from engine_helpers import engine_inputs
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.images import encode_preview
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.models.taesd import DECODER_FILE, DIFFUSERS, find_taesd, from_decoder_file
from latentbrush.backend.ops.previews import LinearDecoder, RegionPreview, TaesdDecoder
from latentbrush.protocol import Rect, Size
from safetensors.torch import save_file

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)

CONTEXT = Rect(0, 0, 128, 128)
REGION = Rect(24, 32, 80, 64)  # inside CONTEXT


def taesd_roots(models_dir: Path | None) -> tuple[Path, ...]:
    """Where the server looks for TAESD weights with this models folder (and no --reuse)."""
    return ModelFolders.from_models_dir(models_dir).taesd


def tiny_taesd(seed: int = 0) -> AutoencoderTiny:
    """An AutoencoderTiny with TAESD's block counts, 8 channels wide, seeded random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderTiny(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4).eval()


def write_comfy_decoder(taesd: AutoencoderTiny, path: Path) -> None:
    """``taesd``'s decoder in the layout of ComfyUI's vae_approx files (madebyollin's nn.Sequential, 0 = clamp)."""
    weights = {}
    for key, value in taesd.decoder.state_dict().items():
        _, index, rest = key.split(".", 2)  # "layers.<i>.<rest>"
        weights[f"{int(index) + 1}.{rest}"] = value.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path))


# ----------------------------------------------------------------------------- finding the weights


def test_taesd_is_found_in_the_usual_models_folder_layouts(tmp_path: Path) -> None:
    assert find_taesd("sd15", taesd_roots(tmp_path)) is None and find_taesd("sd15", taesd_roots(None)) is None
    tiny_taesd().save_pretrained(tmp_path / "vae_approx" / "taesdxl")
    write_comfy_decoder(tiny_taesd(), tmp_path / "vae_approx" / "taesd_decoder.safetensors")
    assert find_taesd("sdxl", taesd_roots(tmp_path)).path == tmp_path / "vae_approx" / "taesdxl"
    assert find_taesd("sd15", taesd_roots(tmp_path)).kind == DECODER_FILE
    tiny_taesd().save_pretrained(tmp_path / "taesd")  # a diffusers folder at the top wins over vae_approx/
    found = find_taesd("sd15", taesd_roots(tmp_path))
    assert found.path == tmp_path / "taesd" and found.kind == DIFFUSERS
    assert find_taesd("sd3", taesd_roots(tmp_path)) is None  # no taesd3 (test_family_flux.py finds TAESD3, TAEF1)


def test_an_explicit_taesd_folder_comes_first(tmp_path: Path) -> None:
    models, own = tmp_path / "models", tmp_path / "own-taesd"
    tiny_taesd().save_pretrained(models / "taesd")
    tiny_taesd().save_pretrained(own)  # --taesd naming the SD 1.5 folder itself, as before
    assert find_taesd("sd15", taesd_roots(models), own).path == own
    assert find_taesd("sdxl", taesd_roots(models), own) is None  # the folder itself is an SD 1.5 TAESD only


def test_a_comfyui_decoder_file_decodes_exactly_as_the_model_it_came_from(tmp_path: Path) -> None:
    taesd = tiny_taesd(seed=3)
    write_comfy_decoder(taesd, tmp_path / "taesd_decoder.safetensors")
    loaded = from_decoder_file(tmp_path / "taesd_decoder.safetensors")
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(latent).sample, taesd.decode(latent).sample)


def test_a_broken_taesd_file_falls_back_to_linear_previews(tmp_path: Path, make_job, events) -> None:
    (tmp_path / "vae_approx").mkdir()
    (tmp_path / "vae_approx" / "taesd_decoder.safetensors").write_bytes(b"not a safetensors file")
    engine = Engine(EngineSettings(models_dir=tmp_path, device="cpu"))
    out = engine.run(make_job(steps=1, resolution=Size(64, 64), region=Rect(0, 0, 64, 64)), {}, events)
    assert out.info["preview"] == "linear" and len(events.previews) == 1


@pytest.mark.parametrize("layout", ["taesd", "vae_approx/taesd", "vae_approx/taesd_decoder.safetensors"])
def test_taesd_in_the_models_folder_is_used_without_a_flag(tmp_path: Path, make_job, events, layout: str) -> None:
    if layout.endswith(".safetensors"):
        write_comfy_decoder(tiny_taesd(), tmp_path / layout)
    else:
        tiny_taesd().save_pretrained(tmp_path / layout)
    engine = Engine(EngineSettings(models_dir=tmp_path, device="cpu"))
    assert "taesd" not in {m.name for m in engine.describe().models}  # TAESD is no checkpoint to offer
    out = engine.run(make_job(steps=2, resolution=Size(64, 64), region=Rect(16, 8, 40, 24), canvas=Size(64, 64)),
                     {}, events)
    assert out.info["preview"] == "taesd"
    assert [p[2].shape for p in events.previews] == [(24, 40, 3)] * 2  # decoded, then at the region's size


# ----------------------------------------------------------------------------- the preview picture


def test_taesd_previews_are_decoded_at_the_preview_size() -> None:
    decoder = TaesdDecoder(tiny_taesd())
    latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    assert decoder(latent).shape == (128, 128, 3)  # full resolution, 8x the latent
    assert RegionPreview(decoder, CONTEXT, REGION, 512)(latent).shape == (64, 80, 3)
    assert RegionPreview(decoder, CONTEXT, REGION, 40)(latent).shape == (32, 40, 3)  # shrunk to max_side


def test_linear_previews_are_upscaled_smoothly_to_the_region_size() -> None:
    latent = torch.zeros(1, 4, 16, 16)
    latent[0, 0, :, ::2] = 2.0  # a column pattern: nearest-neighbour scaling would keep only two values
    decoded = LinearDecoder("sd15")(latent)
    assert decoded.shape == (16, 16, 3) and len(np.unique(decoded[..., 0])) == 2
    preview = RegionPreview(LinearDecoder("sd15"), CONTEXT, REGION, 512)(latent)
    assert preview.shape == (64, 80, 3)
    row = preview[32, :, 0].astype(int)
    assert len(np.unique(row)) > 4  # interpolated values between the two columns' colours
    assert np.abs(np.diff(row)).max() < np.ptp(decoded[..., 0].astype(int))  # no hard steps


def composite_alpha() -> np.ndarray:
    """A composite mask over CONTEXT: 0 around a soft-edged block."""
    alpha = np.zeros((CONTEXT.height, CONTEXT.width), np.uint8)
    alpha[40:88, 30:100] = 255
    alpha[38:40, 30:100] = alpha[88:90, 30:100] = 128
    return alpha


def test_a_clipped_preview_has_the_composite_alpha_over_the_region() -> None:
    original = np.full((CONTEXT.height, CONTEXT.width, 3), 7, np.uint8)
    alpha = composite_alpha()
    decoded = np.full((16, 16, 3), 200, np.uint8)
    preview = RegionPreview(lambda _x0: decoded, CONTEXT, REGION, 512, original, alpha, clip=True)(torch.zeros(1))
    region_alpha = alpha[REGION.y : REGION.bottom, REGION.x : REGION.right]
    assert preview.shape == (64, 80, 4)
    np.testing.assert_array_equal(preview[..., 3], region_alpha)
    assert (preview[..., :3][region_alpha > 0] == 200).all()
    assert (preview[..., :3][region_alpha == 0] == 7).all()  # drawn opaque, it still shows the canvas there
    flat = RegionPreview(lambda _x0: decoded, CONTEXT, REGION, 512, original, alpha)(torch.zeros(1))
    assert flat.shape == (64, 80, 3) and flat[38 - REGION.y, 50, 0] == round(7 + (200 - 7) * 128 / 255)


def test_a_clipped_preview_keeps_its_alpha_on_the_wire_in_formats_that_hold_it() -> None:
    picture = np.zeros((20, 30, 4), np.uint8)
    picture[..., 3] = np.arange(30, dtype=np.uint8) * 8
    raw = encode_preview(picture, "rgba8", 512)
    assert np.frombuffer(raw.data, np.uint8).reshape(20, 30, 4)[0, :, 3].tolist() == picture[0, :, 3].tolist()
    assert len(encode_preview(picture, "jpeg", 512).data) > 0  # jpeg: alpha dropped, still a picture


def test_an_inpaint_job_previews_with_the_results_alpha(tiny_engine: Engine, make_job, events, picture) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    mask = np.zeros((CONTEXT.height, CONTEXT.width), np.uint8)
    mask[44:84, 40:90] = 255
    job = make_job(op="inpaint", image=True, mask=True, canvas=Size(128, 128), context=CONTEXT, region=REGION,
                   mask_feather=4, mask_blend=4, steps=2, preview_format="bgra8")
    out = tiny_engine.run(job, engine_inputs(image, mask), events)
    (result,) = out.images
    assert out.info["preview"] == "linear" and len(events.previews) == 2
    for _step, _total, shown, rect, _index in events.previews:
        assert rect == REGION and shown.shape == (REGION.height, REGION.width, 4)
        np.testing.assert_array_equal(shown[..., 3], result[..., 3])  # exactly where the result will be
    soft = result[..., 3]
    assert (soft == 0).any() and ((soft > 0) & (soft < 255)).any()


def test_a_jpeg_preview_stays_opaque_blended_over_the_original(tiny_engine: Engine, make_job, events,
                                                               picture) -> None:
    image = picture(CONTEXT.width, CONTEXT.height)
    mask = np.zeros((CONTEXT.height, CONTEXT.width), np.uint8)
    mask[44:84, 40:90] = 255
    job = make_job(op="inpaint", image=True, mask=True, canvas=Size(128, 128), context=CONTEXT, region=REGION,
                   steps=1, preview_format="jpeg")
    tiny_engine.run(job, engine_inputs(image, mask), events)
    (shown,) = [p[2] for p in events.previews]
    assert shown.shape == (REGION.height, REGION.width, 3)
    np.testing.assert_array_equal(shown[0, 0], image[REGION.y, REGION.x, :3])  # outside the mask: the canvas
