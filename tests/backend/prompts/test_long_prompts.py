"""Long and weighted prompts: 75-token chunks reach the text encoder whole, weights scale as compel does,
BREAK starts a chunk, and plain prompts keep the pipeline's own encoding bit for bit."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from latentbrush.backend.models.tiny import build_tiny_sd15, build_tiny_sdxl
from latentbrush.backend.ops.prompt_cache import PromptCache, PromptKey
from latentbrush.backend.prompts.encode import compel_args

LONG = "a cat " * 60  # 120 tokens with the tiny vocabulary ("a" and "cat" are one token each)


@pytest.fixture(scope="module")
def sd15() -> Any:
    return build_tiny_sd15(inpaint=False)


@pytest.fixture(scope="module")
def sdxl() -> Any:
    return build_tiny_sdxl(inpaint=False)


def seen_ids(encoder: Any) -> tuple[list[list[int]], Any]:
    """Every input_ids row the encoder is called with, and the hook's handle."""
    seen: list[list[int]] = []

    def hook(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = args[0] if args else kwargs["input_ids"]
        seen.extend(ids.tolist())

    return seen, encoder.register_forward_pre_hook(hook, with_kwargs=True)


def own_encoding(pipe: Any, prompt: str, negative: str | None = None) -> tuple:
    with torch.no_grad():
        return pipe.encode_prompt(prompt=prompt, device="cpu", num_images_per_prompt=1,
                                  do_classifier_free_guidance=True, negative_prompt=negative)


def test_a_120_token_prompt_reaches_the_encoder_whole_in_two_chunks(sd15) -> None:
    tokenizer = sd15.tokenizer
    ids = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    assert len(ids) == 120
    seen, handle = seen_ids(sd15.text_encoder)
    try:
        args, chunks, negative_chunks = compel_args(sd15, LONG, None, True)
    finally:
        handle.remove()
    assert (chunks, negative_chunks) == (2, 1)
    assert args["prompt_embeds"].shape == (1, 154, 32) == args["negative_prompt_embeds"].shape
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    assert [bos, *ids[:75], eos] in seen
    assert [bos, *ids[75:], eos, *[pad] * 30] in seen  # the last 45 tokens, framed and padded


def test_the_negative_is_padded_with_empty_chunks(sd15) -> None:
    args, _, negative_chunks = compel_args(sd15, LONG, "the photo", True)
    own = own_encoding(sd15, "a cat", "the photo")
    empty = own_encoding(sd15, "")[0]
    negative = args["negative_prompt_embeds"]
    assert negative_chunks == 1
    assert torch.equal(negative[:, :77], own[1])  # its own chunk, as the pipeline encodes it
    assert torch.equal(negative[:, 77:], empty)  # then the empty prompt's


def test_weights_scale_a_token_away_from_the_empty_prompt(sd15) -> None:
    plain = own_encoding(sd15, "a cat")[0]
    empty = own_encoding(sd15, "")[0]
    weighted = compel_args(sd15, "a (cat:1.5)", None, False)[0]["prompt_embeds"]
    expected = plain.clone()
    expected[:, 2] = empty[:, 2] + (plain[:, 2] - empty[:, 2]) * 1.5  # BOS, "a", "cat": position 2
    torch.testing.assert_close(weighted, expected)
    down = compel_args(sd15, "a (cat:0.5)", None, False)[0]["prompt_embeds"]
    assert not torch.allclose(down, plain) and not torch.allclose(down, weighted)


def test_a1111_brackets_mean_1_1(sd15) -> None:
    round_ = compel_args(sd15, "a (cat)", None, False)[0]["prompt_embeds"]
    explicit = compel_args(sd15, "a (cat:1.1)", None, False)[0]["prompt_embeds"]
    assert torch.equal(round_, explicit)
    square = compel_args(sd15, "a [cat]", None, False)[0]["prompt_embeds"]
    assert torch.equal(square, compel_args(sd15, f"a (cat:{1 / 1.1!r})", None, False)[0]["prompt_embeds"])


def test_break_starts_a_new_chunk(sd15) -> None:
    tokenizer = sd15.tokenizer
    seen, handle = seen_ids(sd15.text_encoder)
    try:
        args, chunks, _ = compel_args(sd15, "a cat BREAK the photo", None, False)
    finally:
        handle.remove()
    assert chunks == 2 and args["prompt_embeds"].shape[1] == 154
    second = tokenizer("the photo")["input_ids"]  # BOS, the, photo, EOS
    assert [*second, *[tokenizer.pad_token_id] * (77 - len(second))] in seen
    torch.testing.assert_close(args["prompt_embeds"][:, 77:], own_encoding(sd15, "the photo")[0])


@pytest.mark.parametrize("negative", [None, "blurry photo"])
def test_plain_prompts_keep_the_pipelines_own_encoding(sd15, sdxl, negative) -> None:
    for pipe in (sd15, sdxl):
        encoded = PromptCache().encode(pipe, PromptKey("m", "a cat", negative, True))
        own = own_encoding(pipe, "a cat", negative)
        assert all(torch.equal(encoded.args[name], value) for name, value in zip(
            ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"),
            own, strict=False) if value is not None)
        zero_negative = negative is None and pipe is sdxl  # SDXL's zeros: no text encoded
        assert (encoded.chunks, encoded.negative_chunks) == (1, 0 if zero_negative else 1)


def test_sdxl_runs_both_encoders_per_chunk_and_pools_the_first(sdxl) -> None:
    args, chunks, negative_chunks = compel_args(sdxl, LONG, None, True)
    assert (chunks, negative_chunks) == (2, 0)  # SDXL's empty negative is zeros, not text
    assert args["prompt_embeds"].shape == (1, 154, 64)  # the two 32-wide encoders side by side
    assert not args["negative_prompt_embeds"].any() and not args["negative_pooled_prompt_embeds"].any()
    first_chunk = "a cat " * 37 + "a"  # the first 75 tokens
    own = own_encoding(sdxl, first_chunk)
    torch.testing.assert_close(args["pooled_prompt_embeds"], own[2])
    torch.testing.assert_close(args["prompt_embeds"][:, :77], own[0])


def test_a_long_prompt_goes_through_the_cache_with_its_chunk_counts(sd15) -> None:
    cache = PromptCache()
    key = PromptKey("m", LONG, "the photo", True)
    first = cache.encode(sd15, key)
    again = cache.encode(sd15, key)
    assert (first.chunks, first.negative_chunks) == (2, 1) == (again.chunks, again.negative_chunks)
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert math.prod(first.args["prompt_embeds"].shape) == 154 * 32


def test_a_weighted_run_of_spaces_is_nothing(sd15) -> None:
    # compel cannot down-weight a fragment without tokens; it means nothing, so it goes
    spaced = compel_args(sd15, "a [ ] cat", None, False)[0]["prompt_embeds"]
    assert torch.equal(spaced, compel_args(sd15, "a  cat", None, False)[0]["prompt_embeds"])
