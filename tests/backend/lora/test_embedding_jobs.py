"""Textual-inversion embeddings: loaded once per model, used by name (plain and weighted prompts alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.prompts.embeddings import STATS
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def plain_engine() -> Engine:
    return Engine(EngineSettings(models_dir=None, device="cpu"))


def encoder_inputs(engine: Engine) -> tuple[list[list[int]], object, object]:
    model = engine.load("tiny")
    pipe = model.pipeline("txt2img")
    seen: list[list[int]] = []

    def hook(_module, args, kwargs) -> None:
        seen.extend((args[0] if args else kwargs["input_ids"]).tolist())

    return seen, pipe, pipe.text_encoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_an_embedding_by_name_means_its_vectors(run_job, lora_engine: Engine, lora_models: Path) -> None:
    run_job(prompt="warm up")  # the first job on the model loads the folder's embeddings
    seen, pipe, handle = encoder_inputs(lora_engine)
    try:
        run_job(prompt="a cat mystyle, the photo")
        run_job(prompt="a (mystyle:1.2) cat")  # weighted: compel's path expands it the same way
    finally:
        handle.remove()
    tokenizer = pipe.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("mystyle", "mystyle_1")]  # a 2-vector embedding
    assert sum(1 for row in seen if all(i in row for i in ids)) == 2
    vectors = load_file(str(lora_models / "embeddings" / "mystyle.safetensors"))["emb_params"]
    table = pipe.text_encoder.get_input_embeddings().weight
    torch.testing.assert_close(table[ids], vectors)


def test_embeddings_change_only_prompts_that_name_them(run_job, plain_engine: Engine) -> None:
    named, _ = run_job(prompt="a cat mystyle")
    spelled, _ = run_job(plain_engine, prompt="a cat mystyle")  # there: just letters
    assert not np.array_equal(named, spelled)
    assert np.array_equal(run_job(prompt="a cat")[0], run_job(plain_engine, prompt="a cat")[0])


def test_embeddings_load_once_per_model(run_job) -> None:
    run_job(prompt="mystyle")
    loads = STATS.loads
    run_job(prompt="mystyle again")
    assert STATS.loads == loads
