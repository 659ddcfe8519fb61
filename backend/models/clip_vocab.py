"""CLIP byte-level BPE vocabularies: the real one shipped in ``configs/clip-tokenizer`` and a tiny one for tests.

The real SD tokenizer is OpenAI CLIP's BPE (MIT). Its ``vocab.json``/``merges.txt`` are derived once from
``bpe_simple_vocab_16e6.txt.gz`` (``configs/build_configs.py``) so nothing is fetched from the Hub at runtime.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

from transformers import CLIPTokenizer

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
SHARED_TOKENIZER_DIR = CONFIGS_DIR / "clip-tokenizer"
MODEL_MAX_LENGTH = 77  # CLIP's context; text encoder max_position_embeddings must match
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP table mapping each byte to a printable character (same order as CLIP's own code)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _base_vocab() -> list[str]:
    chars = list(bytes_to_unicode().values())
    return chars + [c + "</w>" for c in chars]


def vocab_from_bpe_gz(bpe_gz: bytes) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The CLIP ViT-L/14 vocab (49408 tokens) from OpenAI's BPE merges file, sliced as CLIP's SimpleTokenizer does."""
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    tokens = [*_base_vocab(), *("".join(m) for m in merges), BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges  # type: ignore[return-value]


def tiny_vocab(
    words: tuple[str, ...] = ("a", "cat", "photo", "of", "the"),
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A minimal valid CLIP-layout vocab (~520 tokens): all bytes plus merges that make ``words`` single tokens."""
    tokens = _base_vocab()
    merges: list[tuple[str, str]] = []
    for word in words:
        current = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            if (current, right) not in merges:
                merges.append((current, right))
            current += right
            if current not in tokens:
                tokens.append(current)
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_vocab(vocab: dict[str, int], merges: list[tuple[str, str]], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(" ".join(m) for m in merges)]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_shipped_tokenizer(config_dir: Path) -> CLIPTokenizer:
    """The real CLIP tokenizer with the special tokens of ``config_dir/tokenizer_config.json``.

    Skeletons keep only their ``tokenizer_config.json`` (SDXL's tokenizer_2 pads with "!"); the 1.5 MB
    vocabulary is shipped once and shared. transformers 5 ignores ``vocab_file=``: pass ``vocab=``/``merges=``.
    """
    settings = json.loads((config_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings.pop("tokenizer_class", None)
    return CLIPTokenizer(
        vocab=str(SHARED_TOKENIZER_DIR / "vocab.json"), merges=str(SHARED_TOKENIZER_DIR / "merges.txt"), **settings
    )


def make_tiny_tokenizer() -> CLIPTokenizer:
    vocab, merges = tiny_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MODEL_MAX_LENGTH)
