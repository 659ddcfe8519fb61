"""Textual-inversion embeddings: ``<models>/embeddings/*.safetensors``, used in a prompt by their file name.

A1111 and ComfyUI both keep them in ``embeddings/``. Only ``.safetensors`` is read: A1111's ``.pt`` files are
pickles, which can run code when loaded (refused like ``.ckpt`` checkpoints). An SD 1.5 embedding holds one
tensor (A1111's ``emb_params``, n x 768); an SDXL one ``clip_l`` (n x 768) and ``clip_g`` (n x 1280). Each
loads with diffusers' ``load_textual_inversion(token=<file name>)`` the first time a model runs, into the
models whose text encoders have its widths, and stays: its name in a prompt then means its vectors.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pt", ".bin", ".ckpt", ".pth")
SDXL_KEYS = ("clip_l", "clip_g")


@dataclass(frozen=True)
class EmbeddingEntry:
    name: str  # the file name without .safetensors: what a prompt writes
    location: str
    widths: tuple[int, ...]  # (width,) for one text encoder, (clip_l, clip_g) for SDXL


def _widths(path: Path) -> tuple[int, ...] | None:
    with safe_open(str(path), framework="pt") as f:
        shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)
    if all(key in shapes for key in SDXL_KEYS):
        return tuple(shapes[key][-1] for key in SDXL_KEYS)
    if len(shapes) == 1:  # A1111's emb_params, or diffusers' {token: tensor}
        return (next(iter(shapes.values()))[-1],)
    return None


class EmbeddingRegistry:
    """Embeddings by name, scanned once at start-up."""

    def __init__(self, folders: tuple[Path, ...] = ()) -> None:
        """``folders``: ``ModelFolders.embeddings``, in search order (a name found again later is skipped)."""
        self._entries: dict[str, EmbeddingEntry] = {}
        self.refused: dict[str, str] = {}
        for root in folders:
            for path in sorted(root.rglob("*")) if root.is_dir() else ():
                if path.name.startswith(".") or not path.is_file():
                    continue
                if path.suffix.lower() in PICKLE_SUFFIXES:
                    self._refuse(path.stem, "pickle files can run code when loaded; use the .safetensors version")
                elif path.suffix.lower() == ".safetensors":
                    self._add(path)

    def _add(self, path: Path) -> None:
        try:
            widths = _widths(path)
        except Exception as exc:  # a truncated or foreign file must not stop the scan
            self._refuse(path.stem, f"unreadable safetensors file ({str(exc)[:120]})")
            return
        if widths is None:
            self._refuse(path.stem, "not a textual-inversion embedding (one tensor, or clip_l and clip_g)")
        elif path.stem in self._entries:
            log.warning("embedding %s at %s hides an earlier one with the same name; skipped", path.stem, path)
        else:
            self._entries[path.stem] = EmbeddingEntry(path.stem, str(path), widths)

    def _refuse(self, name: str, reason: str) -> None:
        log.warning("embedding %s not offered: %s", name, reason)
        self.refused[name] = reason

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[EmbeddingEntry, ...]:
        return tuple(self._entries.values())


@dataclass
class EmbeddingStats:
    loads: int = 0


STATS = EmbeddingStats()
_LOADED: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()  # tokenizer -> names


def _targets(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) pairs in the order of an SDXL embedding's clip_l, clip_g."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if hasattr(pipe, "text_encoder_2"):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return pairs


def load_embeddings(pipe: Any, entries: tuple[EmbeddingEntry, ...]) -> tuple[str, ...]:
    """Load the embeddings that fit ``pipe``'s text encoders, once per model; the names loaded."""
    targets = _targets(pipe)
    if any(t is None or e is None for t, e in targets) or not hasattr(pipe, "load_textual_inversion"):
        return ()  # an SDXL refiner (one encoder): A1111's SDXL embeddings need both
    first = targets[0][0]
    if first in _LOADED:
        return _LOADED[first]
    widths = tuple(int(encoder.config.hidden_size) for _tokenizer, encoder in targets)
    names: list[str] = []
    for entry in entries:
        if entry.widths != widths:
            continue  # another family's embedding
        try:
            _load(pipe, entry, targets)
        except ValueError as exc:  # the name is a word of the vocabulary already, or loaded twice
            log.warning("embedding %s not loaded: %s", entry.name, str(exc).splitlines()[0][:200])
            continue
        STATS.loads += 1
        names.append(entry.name)
    _LOADED[first] = tuple(names)
    return _LOADED[first]


def _load(pipe: Any, entry: EmbeddingEntry, targets: list[tuple[Any, Any]]) -> None:
    tensors = load_file(entry.location)
    parts = [tensors[key] for key in SDXL_KEYS] if len(targets) == 2 else [next(iter(tensors.values()))]
    for (tokenizer, encoder), vectors in zip(targets, parts, strict=True):
        pipe.load_textual_inversion(vectors.to(encoder.dtype), token=entry.name, tokenizer=tokenizer,
                                    text_encoder=encoder)
