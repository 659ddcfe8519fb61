"""Regional prompting (issue 15 item 4): region masks -> blend weights, the masked cross-attention, and jobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAKE_HASH, job
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from latentbrush.backend.engine import Engine
from latentbrush.backend.events import EngineError
from latentbrush.backend.inputs import InputPixels
from latentbrush.backend.regions.attention import RegionalAttnProcessor, RegionConditioning, RegionText
from latentbrush.backend.regions.masks import blend_weights, token_grid
from latentbrush.protocol import ErrorCode, JobInput

# ---------------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize(("tokens", "latent", "grid"), [
    (64 * 64, (64, 64), (64, 64)), (32 * 32, (64, 64), (32, 32)), (8 * 8, (64, 64), (8, 8)),
    (4 * 3, (13, 9), (4, 3)),  # odd sides round up at each halving: 13x9 -> 7x5 -> 4x3
    (16 * 24, (16, 24), (16, 24)),
])
def test_token_grid_follows_the_unets_halvings(tokens: int, latent: tuple[int, int], grid: tuple[int, int]) -> None:
    assert token_grid(tokens, *latent) == grid


def test_token_grid_refuses_a_count_no_halving_gives() -> None:
    with pytest.raises(ValueError, match="no downscale"):
        token_grid(100, 64, 64)


def test_blend_weights_give_the_background_everything_where_no_region_reaches() -> None:
    left = np.zeros((16, 16), np.uint8)
    left[:, :8] = 255
    weights = blend_weights([left], [1.0], 4, 4)
    assert weights.shape == (2, 4, 4) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=0, atol=1e-6)
    assert (weights[0, :, 2:] == 1.0).all() and (weights[1, :, 2:] == 0.0).all()  # exactly: the plain prompt there
    assert (weights[1, :, :2] == 1.0).all() and (weights[0, :, :2] == 0.0).all()


def test_blend_weights_share_overlaps_and_a_weak_region_lets_the_background_through() -> None:
    full = np.full((8, 8), 255, np.uint8)
    both = blend_weights([full, full], [1.0, 1.0], 2, 2)
    np.testing.assert_allclose(both[:, 0, 0], [0.0, 0.5, 0.5])
    weak = blend_weights([full], [0.5], 2, 2)
    np.testing.assert_allclose(weak[:, 0, 0], [0.5, 0.5])
    off = blend_weights([full], [0.0], 2, 2)
    assert (off[0] == 1.0).all() and (off[1] == 0.0).all()  # weight 0: the region does nothing
    with pytest.raises(ValueError, match="one weight"):
        blend_weights([full], [], 2, 2)


# ---------------------------------------------------------------------------------------------- attention


def _layer() -> Attention:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8).eval()


def test_the_processor_gives_each_token_its_regions_prompt_and_leaves_the_rest_exact() -> None:
    layer, base = _layer(), AttnProcessor2_0()
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 4 * 4, 16, generator=generator)  # [negative, positive], a 4x4 token grid
    plain_text = torch.randn(2, 5, 8, generator=generator)
    region_text = torch.randn(1, 7, 8, generator=generator)  # another length: encoded on its own
    left = np.zeros((4, 4), np.uint8)
    left[:, :2] = 255
    conditioning = RegionConditioning((RegionText(left, 1.0, region_text),), 4, 4, guidance=True)
    with torch.no_grad():
        out = RegionalAttnProcessor(base, conditioning)(layer, hidden, plain_text)
        plain = base(layer, hidden, plain_text)
        regional = base(layer, hidden[1:], region_text)
    grid = out.reshape(2, 4, 4, 16)
    torch.testing.assert_close(out[0], plain[0], rtol=0, atol=0)  # the negative half: untouched
    torch.testing.assert_close(grid[1, :, 2:], plain.reshape(2, 4, 4, 16)[1, :, 2:], rtol=0, atol=0)
    torch.testing.assert_close(grid[1, :, :2], regional.reshape(1, 4, 4, 16)[0, :, :2], rtol=0, atol=0)
    own = Attention(query_dim=16, heads=2, dim_head=8).eval()
    with torch.no_grad():  # self-attention (no text): as it was
        torch.testing.assert_close(RegionalAttnProcessor(base, conditioning)(own, hidden), base(own, hidden))


def test_a_regions_negative_prompt_changes_the_negative_half_under_it_only() -> None:
    layer, base = _layer(), AttnProcessor2_0()
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, 16, 16, generator=generator)
    text = torch.randn(2, 5, 8, generator=generator)
    top = np.zeros((4, 4), np.uint8)
    top[:2] = 255
    negative = torch.randn(1, 5, 8, generator=generator)
    conditioning = RegionConditioning((RegionText(top, 1.0, text[1:], negative),), 4, 4, guidance=True)
    with torch.no_grad():
        out = RegionalAttnProcessor(base, conditioning)(layer, hidden, text).reshape(2, 4, 4, 16)
        plain = base(layer, hidden, text).reshape(2, 4, 4, 16)
        under = base(layer, hidden[:1], negative).reshape(1, 4, 4, 16)
    torch.testing.assert_close(out[0, 2:], plain[0, 2:], rtol=0, atol=0)
    torch.testing.assert_close(out[0, :2], under[0, :2], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- jobs


def region_input(mask: np.ndarray, index: int, **params) -> InputPixels:
    return InputPixels(JobInput("region", FAKE_HASH, **params), mask, f"job.inputs[{index}].blob")


def halves() -> tuple[np.ndarray, np.ndarray]:
    left = np.zeros((128, 128), np.uint8)
    left[:, :64] = 255
    return left, 255 - left


def run_regions(engine: Engine, make_events, *items: InputPixels, **fields):
    request = job(prompt="a harbour at dusk", cfg=5.0, inputs=tuple(i.input for i in items), **fields)
    assert engine.check(request) is None
    return engine.run(request, {"region": items} if items else {}, make_events())


def test_two_regions_steer_their_halves_and_an_empty_region_changes_nothing(tiny_engine: Engine,
                                                                             make_events) -> None:
    left, right = halves()
    plain = run_regions(tiny_engine, make_events)
    two = run_regions(tiny_engine, make_events, region_input(left, 0, prompt="a red boat"),
                      region_input(right, 1, prompt="a lighthouse", negative_prompt="fog"))
    nowhere = run_regions(tiny_engine, make_events, region_input(np.zeros((128, 128), np.uint8), 0, prompt="a boat"))
    assert np.abs(two.images[0].astype(int) - plain.images[0].astype(int)).mean() > 0.5
    np.testing.assert_array_equal(nowhere.images[0], plain.images[0])  # no pixel under it: the plain prompt's result
    assert two.info["regions"] == [
        {"prompt": "a red boat", "weight": 1.0, "negative": False, "coverage": 0.5},
        {"prompt": "a lighthouse", "weight": 1.0, "negative": True, "coverage": 0.5},
    ]


def test_a_region_at_weight_0_is_the_plain_result(tiny_engine: Engine, make_events) -> None:
    left, _ = halves()
    plain = run_regions(tiny_engine, make_events)
    off = run_regions(tiny_engine, make_events, region_input(left, 0, prompt="a red boat", weight=0.0))
    np.testing.assert_array_equal(off.images[0], plain.images[0])


def test_regions_work_for_img2img_and_inpaint_and_leave_the_attention_as_it_was(tiny_engine: Engine, make_events,
                                                                                 picture) -> None:
    left, _ = halves()
    image = picture(128, 128)
    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 32:96] = 255
    for op, given in (("img2img", {"image": image}), ("inpaint", {"image": image, "mask": mask})):
        items = {role: (InputPixels(JobInput(role, FAKE_HASH), pixels, f"job.inputs[{n}].blob"),)
                 for n, (role, pixels) in enumerate(given.items())}
        items["region"] = (region_input(left, len(given), prompt="a red boat"),)
        request = job(op=op, prompt="a harbour", strength=0.8,
                      inputs=tuple(item.input for role_items in items.values() for item in role_items))
        out = tiny_engine.run(request, items, make_events())
        assert out.info["regions"][0]["prompt"] == "a red boat" and out.images[0].shape == (128, 128, 4)
    pipe = tiny_engine.cache.get(tiny_engine.registry.get("tiny"))[0].pipeline("txt2img")
    assert not any(type(p).__name__ == "RegionalAttnProcessor" for p in pipe.unet.attn_processors.values())


def test_a_region_without_a_prompt_is_a_bad_field(tiny_engine: Engine, make_events) -> None:
    left, _ = halves()
    items = (region_input(left, 0, prompt="  "),)
    request = job(inputs=tuple(i.input for i in items))
    with pytest.raises(EngineError) as caught:
        tiny_engine.run(request, {"region": items}, make_events())
    assert (caught.value.code, caught.value.field) == (ErrorCode.BAD_FIELD, "job.inputs[0].prompt")


def test_regions_with_reference_images_are_refused_by_name(tiny_engine: Engine) -> None:
    request = job(inputs=(JobInput("reference", FAKE_HASH), JobInput("region", FAKE_HASH, prompt="a boat")))
    error = tiny_engine.check(request)
    assert error is not None and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, "job.inputs[1].role")
    assert "regions and reference images" in error.message


def test_regions_on_a_transformer_model_are_refused_by_name(tiny_engine: Engine) -> None:
    request = job(model="tiny-sd3", inputs=(JobInput("region", FAKE_HASH, prompt="a boat"),))
    error = tiny_engine.check(request)
    assert error is not None and (error.code, error.field) == (ErrorCode.NOT_SUPPORTED, "job.inputs[0].role")
    assert "SD 1.5 and SDXL" in error.message
    assert tiny_engine.check(job(model="tiny-sdxl", inputs=(JobInput("region", FAKE_HASH, prompt="a boat"),))) is None
