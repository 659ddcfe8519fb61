"""``latentbrush styles`` and ``--style NAME``: the shared styles (``core/styles.py``) from the command line."""

from __future__ import annotations

import argparse
import sys

from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.plugin.core.styles import (
    BUILTIN_DIR,
    PINNABLE,
    Style,
    StyleError,
    apply_style,
    find_style,
    load_styles,
    user_styles_dir,
)
from latentbrush.protocol import ServerHello

from .main import EXIT_OK


def _warn(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"latentbrush {args.command}: {text}", file=sys.stderr, flush=True)


def chosen_style(args: argparse.Namespace) -> Style | None:
    """The ``--style`` style, looked up before connecting: an unknown name is a usage error listing the styles."""
    name = getattr(args, "style", None)
    if not name:
        return None
    styles, problems = load_styles(BUILTIN_DIR, user_styles_dir())
    for problem in problems:  # a broken file of someone else's style must not stop this one
        _warn(args, f"style skipped: {problem}")
    style = find_style(styles, name)
    if style is None:
        raise StyleError(f"no style named {name!r}; the styles are: {', '.join(s.name for s in styles)} "
                         "(`latentbrush styles` shows them)", "--style")
    return style


def with_style(args: argparse.Namespace, settings: GenerationSettings, style: Style | None,
               hello: ServerHello | None) -> GenerationSettings:
    """``settings`` with the style applied against the connected server; --model/--sampler/--steps/--cfg given on
    the command line win. What the server lacks (a model, LoRAs) is said on stderr."""
    if style is None:
        return settings
    keep = set(getattr(args, "given", ())) & PINNABLE
    settings, notes = apply_style(style, settings, hello, keep=keep, live=args.command == "live")
    for note in notes:
        _warn(args, note)
    return settings


def _sampling(sampler: str, steps: int | None, cfg: float | None) -> str:
    parts = [sampler or "chosen sampler", f"{steps} steps" if steps is not None else "chosen steps",
             f"CFG {cfg:g}" if cfg is not None else "chosen CFG"]
    return ", ".join(parts)


def list_styles(args: argparse.Namespace) -> int:
    folder = user_styles_dir()
    styles, problems = load_styles(BUILTIN_DIR, folder)
    for style in styles:
        print(f"{style.name}  [{style.source}]" + (f"  {style.description}" if style.description else ""))
        print(f"  models:   {', '.join(style.models) if style.models else '(the chosen model)'}")
        print(f"  template: {style.prompt}")
        if style.negative_prompt:
            print(f"  negative: {style.negative_prompt}")
        if style.loras:
            print("  loras:    " + ", ".join(f"{lora.name}:{lora.weight:g}" for lora in style.loras))
        live = style.live
        print(f"  sampling: {_sampling(style.sampler, style.steps, style.cfg)}; "
              f"live: {_sampling(live.sampler, live.steps, live.cfg)}")
    print(f"your styles: {folder} (a file there with a built-in's name replaces it)")
    for problem in problems:
        print(f"latentbrush styles: skipped {problem}", file=sys.stderr)
    return EXIT_OK
