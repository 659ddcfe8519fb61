"""The text-encoder output cache: a repeated prompt skips the encoders, and the picture stays the same."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from latentbrush.backend.engine import Engine
from latentbrush.backend.ops import op_img2img, op_txt2img
from latentbrush.backend.ops.denoise import DenoiseCall, run_denoise
from latentbrush.backend.ops.prompt_cache import PROMPTS, PromptCache, PromptKey, guidance_on

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning", "ignore:__array_wrap__ must accept:DeprecationWarning"
)


def tiny(engine: Engine):
    model, _ = engine.cache.get(engine.registry.get("tiny"))
    return model


def denoise(model, prompt: str, cfg: float = 5.0, negative: str = "", task=op_txt2img.TASK) -> np.ndarray:
    call = DenoiseCall(task, prompt, negative, "Euler", 2, cfg, 1.0, 7, 64, 64)
    image = np.full((64, 64, 3), 128, np.uint8) if task is op_img2img.TASK else None
    return run_denoise(model, call, image, None, threading.Event())


def test_a_repeated_prompt_hits_and_paints_the_same_as_without_the_cache(tiny_engine: Engine) -> None:
    model = tiny(tiny_engine)
    PROMPTS.clear()
    before = PROMPTS.stats.hits, PROMPTS.stats.misses
    first = denoise(model, "a red fox")
    second = denoise(model, "a red fox")
    assert (PROMPTS.stats.hits - before[0], PROMPTS.stats.misses - before[1]) == (1, 1)
    pipe = model.pipeline(op_txt2img.TASK)
    plain = pipe(prompt="a red fox", negative_prompt=None, num_inference_steps=2, guidance_scale=5.0,
                 generator=torch.Generator("cpu").manual_seed(7), output_type="np", width=64,
                 height=64)
    assert np.array_equal(first, second)  # a cached embedding is the embedding
    assert np.array_equal(first, np.clip(np.rint(plain.images[0] * 255.0), 0, 255).astype(np.uint8))


def test_the_key_is_model_prompt_negative_and_guidance(tiny_engine: Engine) -> None:
    model = tiny(tiny_engine)
    PROMPTS.clear()
    denoise(model, "a fox")
    denoise(model, "a fox", negative="blurry")
    denoise(model, "a fox", cfg=1.0)  # guidance off: no negative embedding at all
    denoise(model, "a fox", task=op_img2img.TASK)  # another pipeline of the same model: the same encoder
    assert len(PROMPTS) == 3
    pipe = model.pipeline(op_txt2img.TASK)
    assert guidance_on(pipe, 5.0) and not guidance_on(pipe, 1.0)
    off = PROMPTS.prompt_args(pipe, PromptKey("tiny", "a fox", None, False))
    assert set(off) == {"prompt_embeds"}


def test_old_entries_go_and_another_encoder_never_gets_them(tiny_engine: Engine) -> None:
    pipe = tiny(tiny_engine).pipeline(op_txt2img.TASK)
    cache = PromptCache(max_entries=2)
    for prompt in ("one", "two", "three"):
        cache.prompt_args(pipe, PromptKey("tiny", prompt, None, True))
    assert len(cache) == 2 and cache.stats.misses == 3
    cache.prompt_args(pipe, PromptKey("tiny", "three", None, True))
    assert cache.stats.hits == 1

    class Reloaded:  # the same model name, loaded again: its own text encoder
        def __getattr__(self, name):
            return getattr(pipe, name)

        text_encoder = type(pipe.text_encoder)(pipe.text_encoder.config)

    Reloaded.__call__ = pipe.__call__  # type: ignore[method-assign]
    cache.prompt_args(Reloaded(), PromptKey("tiny", "three", None, True))
    assert (cache.stats.hits, cache.stats.misses) == (1, 4)


@pytest.mark.parametrize("negative", [None, "blurry"])
def test_sdxl_pooled_embeddings_paint_the_same_as_the_text(negative) -> None:
    from latentbrush.backend.models.tiny import build_tiny_sdxl

    pipe = build_tiny_sdxl(inpaint=False)
    pipe.set_progress_bar_config(disable=True)
    common = {"num_inference_steps": 2, "guidance_scale": 5.0, "output_type": "np", "width": 64, "height": 64}
    cache = PromptCache()
    args = cache.prompt_args(pipe, PromptKey("tiny-xl", "a fox", negative, guidance_on(pipe, 5.0)))
    assert "pooled_prompt_embeds" in args and "negative_pooled_prompt_embeds" in args
    with torch.inference_mode():
        cached = pipe(**args, generator=torch.Generator("cpu").manual_seed(3), **common).images[0]
        text = pipe(prompt="a fox", negative_prompt=negative, generator=torch.Generator("cpu").manual_seed(3),
                    **common).images[0]
    assert np.array_equal(cached, text)
