"""``latentbrush``: inpaint, refine, generate and upscale images through a latentbrush server, once or live.

Heavy modules (Pillow, numpy, the client) load inside the command handlers, so ``--help`` is fast.
Exit codes: 0 done, 1 the job failed or was cancelled, 2 bad arguments or input, 3 no server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from latentbrush.protocol import (  # stdlib only: fast
    MAX_SIDE,
    REFERENCE_MODES,
    JobInput,
    JobRequest,
    LoraRef,
    UpscaleParams,
    field_range,
)
from latentbrush.protocol.transport import DEFAULT_URL

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3


def _ranged(cls: type, name: str) -> Callable[[str], float]:
    """An argparse type for the numeric field ``cls.name``: the protocol's range, checked before connecting.

    A connected server's lower limits (steps, batch, pixels) are checked against its hello before the
    job is submitted (``requests.validated``), which fails with exit code 2 naming the limit.
    """
    low, high = field_range(cls, name)
    kind = int if isinstance(low, int) and isinstance(high, int) else float

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low}..{high}")
        return value

    return parse


def _rect(text: str) -> tuple[int, int, int, int]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"--rect wants x,y,width,height, got {text!r}")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rect wants four integers, got {text!r}")
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"--rect width and height must be at least 1, got {text!r}")
    return x, y, w, h


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size wants WIDTHxHEIGHT, got {text!r}")
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"--size sides must be in 1..{MAX_SIDE}, got {text!r}")
    return w, h


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if not 0.01 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text} is outside 0.01..60 seconds")
    return value


def _add_connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--url", help=f"server address (default {DEFAULT_URL})")
    g.add_argument("--token", help="server token (default: read the local token file)")
    g.add_argument("--token-file", help="file holding the server token")
    g.add_argument("--local", action="store_true", help="start a latentbrush-server for this command and stop it after")
    g.add_argument("--models", metavar="DIR", help="with --local: the server's models folder")
    g.add_argument("--device", help="with --local: auto, cuda, cpu, mps ...")


@dataclass(frozen=True)
class ControlArg:
    """``--control MODE=IMAGE[:WEIGHT[:START:END]]`` as parsed; the image is read with the input."""

    mode: str
    path: str
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0


def _control(text: str) -> ControlArg:
    mode, sep, rest = text.partition("=")
    if not sep or not mode or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODE=IMAGE[:WEIGHT[:START:END]]")
    path, *numbers = rest.split(":")
    if len(numbers) not in (0, 1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give WEIGHT, or WEIGHT:START:END after the image")
    values = []
    for name, number in zip(("weight", "start", "end"), numbers, strict=False):
        try:
            values.append(_ranged(JobInput, name)(number))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {name} {exc}") from None
    arg = ControlArg(mode, path, *values)
    if arg.end <= arg.start:
        raise argparse.ArgumentTypeError(f"{text!r}: END must be greater than START")
    return arg


@dataclass(frozen=True)
class ReferenceArg:
    """``--reference MODE=IMAGE[:STRENGTH]`` as parsed; the image (any size) is read with the input."""

    mode: str
    path: str
    weight: float = 1.0


def _with_number(text: str, whole: str, what: str, check: Callable[[str], float]) -> tuple[str, float | None]:
    """``TEXT[:NUMBER]`` as (TEXT, checked NUMBER or None): a colon not followed by a number belongs to TEXT (a
    Windows path, C:\\pictures\\ref.png); ``whole`` (the option's argument) and ``what`` name a bad number."""
    head, colon, tail = text.rpartition(":")
    try:
        float(tail)
    except ValueError:
        return text, None
    if not colon:
        return text, None
    try:
        return head, check(tail)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{whole!r}: {what} {exc}") from None


def _reference(text: str) -> ReferenceArg:
    mode, sep, rest = text.partition("=")
    if not sep or mode not in REFERENCE_MODES or not rest:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODE=IMAGE[:STRENGTH], MODE one of "
                                         f"{', '.join(REFERENCE_MODES)}")
    path, weight = _with_number(rest, text, "strength", _ranged(JobInput, "weight"))
    if not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MODE=IMAGE[:STRENGTH]")
    return ReferenceArg(mode, path) if weight is None else ReferenceArg(mode, path, weight)


def _lora(text: str) -> LoraRef:
    """``--lora NAME[:WEIGHT]``; a colon not followed by a number is part of the name."""
    name, weight = _with_number(text, text, "weight", _ranged(LoraRef, "weight"))
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME[:WEIGHT]")
    return LoraRef(name) if weight is None else LoraRef(name, float(weight))


class _Given(argparse.Action):
    """Store the value and note that the option was given: an explicit flag wins over ``--style``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


@dataclass(frozen=True)
class RegionArg:
    """``--region MASK[:WEIGHT]=PROMPT`` as parsed; the mask image is read with the input."""

    path: str
    prompt: str
    weight: float = 1.0


def _region(text: str) -> RegionArg:
    mask, sep, prompt = text.partition("=")
    path, weight = _with_number(mask, text, "weight", _ranged(JobInput, "weight"))
    if not sep or not path or not prompt.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected MASK[:WEIGHT]=PROMPT")
    return RegionArg(path, prompt.strip()) if weight is None else RegionArg(path, prompt.strip(), weight)


def _add_generation(p: argparse.ArgumentParser, *, strength: float | None, controls: bool = True) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("-p", "--prompt", default="", help="what to paint")
    g.add_argument("--negative", default="", help="what to avoid (a style's negative prompt comes before it)")
    g.add_argument("--style", metavar="NAME", help="a style (`latentbrush styles`): its prompt template, negative "
                   "prompt, model, LoRAs, sampler, steps and CFG; --model, --sampler, --steps and --cfg still win")
    g.add_argument("--model", default="", action=_Given,
                   help="model name (default: the server's default; see `latentbrush models`)")
    g.add_argument("--sampler", default="Euler a", action=_Given)
    g.add_argument("--steps", type=_ranged(JobRequest, "steps"), default=20, action=_Given)
    g.add_argument("--cfg", type=_ranged(JobRequest, "cfg"), default=7.0, action=_Given)
    g.add_argument("--seed", type=_ranged(JobRequest, "seed"), default=None, help="default: the server picks one")
    if strength is not None:
        g.add_argument("--strength", type=_ranged(JobRequest, "strength"), default=strength,
                       help=f"0..1 (default {strength})")
    g.add_argument("--batch", type=_ranged(JobRequest, "batch"), default=1, help="images to make (one layer each)")
    g.add_argument("--lora", action="append", type=_lora, default=[], metavar="NAME[:WEIGHT]",
                   help="apply a LoRA from the server's list (`latentbrush models`) at WEIGHT (-4..4, default 1); "
                        "repeatable; a prompt may also carry <lora:NAME:WEIGHT> tags")
    if controls:
        g.add_argument("--control", action="append", type=_control, default=[], metavar="MODE=IMAGE[:W[:START:END]]",
                       help="steer with a ControlNet: MODE (scribble, canny, lineart, depth, ...) from IMAGE, "
                            "the input's size; weight W (default 1), active from START to END of the steps "
                            "(0..1); repeatable")
        g.add_argument("--reference", action="append", type=_reference, default=[], metavar="MODE=IMAGE[:S]",
                       help="steer with a reference picture (IP-Adapter), any size: MODE reference (content and "
                            "style), style or composition (layout); strength S 0..2 (default 1); repeatable")
        g.add_argument("--region", action="append", type=_region, default=[], metavar="MASK[:W]=PROMPT",
                       help="paint PROMPT where MASK (the input's size; white or opaque = the region) is, with "
                            "strength W 0..2 (default 1); the main prompt paints the rest and is added to each "
                            "region's; repeatable")
        g.add_argument("--refiner", default="", metavar="NAME",
                       help="an SDXL refiner (`latentbrush models` marks them) that takes over the last part of the "
                            "denoising from an SDXL --model")
        g.add_argument("--refiner-at", type=_ranged(JobRequest, "refiner_at"), default=None, metavar="F",
                       help="the fraction of the denoising after which the --refiner takes over (0..1, default 0.8)")
    g.add_argument("--blend-outward", type=_ranged(JobRequest, "mask_outward"), default=0, metavar="PX",
                   help="let the result's soft edge reach PX pixels past the mask (default 0: no pixel outside "
                        "the mask changes)")


def _add_io(p: argparse.ArgumentParser, *, input_required: bool = True, selection: bool = True) -> None:
    g = p.add_argument_group("files")
    g.add_argument("input", nargs=None if input_required else "?", help="input image (PNG, JPEG, ...)")
    if selection:
        g.add_argument("--mask", help="mask image, white = repaint (same size as the input)")
        g.add_argument("--rect", type=_rect, help="rectangular selection x,y,width,height instead of a mask")
    g.add_argument("-o", "--output", help="composited result (default: <input>-<command>.png)")
    g.add_argument("--layer-out", help="the result layer as RGBA PNG (default: <output>.layer.png)")
    g.add_argument("--previews", metavar="DIR", help="save every preview frame as PNG in DIR")
    g.add_argument("--preview-max-side", type=_ranged(JobRequest, "preview_max_side"), default=512,
                   help="longest side of preview frames")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentbrush", description="Inpaint, refine, generate and upscale images through a latentbrush server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inpaint", help="repaint the masked part of an image")
    _add_io(p)
    _add_generation(p, strength=1.0)
    _add_connection(p)

    p = sub.add_parser("img2img", help="refine an image (or the masked part) at a strength")
    _add_io(p)
    _add_generation(p, strength=0.5)
    _add_connection(p)

    p = sub.add_parser("generate", help="paint from noise: the whole canvas, or the mask's area")
    _add_io(p, input_required=False)
    p.add_argument("--size", type=_size, default=None, help="canvas WIDTHxHEIGHT when there is no input image")
    _add_generation(p, strength=None)
    _add_connection(p)

    p = sub.add_parser("upscale", help="enlarge an image with an upscaler model (or Lanczos)")
    _add_io(p, selection=False)
    g = p.add_argument_group("upscale")
    g.add_argument("--upscaler", default="", help="upscaler name (default: the best installed; 'lanczos' = no model)")
    g.add_argument("--scale", type=_ranged(UpscaleParams, "scale"), default=2.0)
    g.add_argument("--refine", action="store_true", help="refine the upscaled image with img2img in tiles")
    g.add_argument("--refine-strength", type=_ranged(UpscaleParams, "refine_strength"), default=0.3)
    g.add_argument("--unblur", type=_ranged(UpscaleParams, "unblur"), default=0.0, metavar="W",
                   help="with --refine: steer each refine tile with the server's tile ControlNet at weight W "
                        "(keeps the picture at higher refine strengths; default 0 = off)")
    _add_generation(p, strength=None, controls=False)
    _add_connection(p)

    p = sub.add_parser("preprocess", help="make a control image (canny edges, scribble, depth, pose ...) of an image")
    _add_io(p, selection=False)
    g = p.add_argument_group("preprocess")
    g.add_argument("--preprocessor", required=True, help="one of the server's preprocessors (`latentbrush models`)")
    g.add_argument("--rect", type=_rect, help="only this box x,y,width,height of the image")
    g.add_argument("--annotation", metavar="FILE", help="write what the preprocessor found (pose keypoints) as JSON")
    _add_connection(p)

    p = sub.add_parser("live", help="repaint whenever a file changes (any painting app that saves to a file)")
    g = p.add_argument_group("live")
    g.add_argument("--watch", required=True, metavar="FILE", help="the picture to watch; each saved version is "
                   "one job, a newer version supersedes the job of an older one")
    g.add_argument("--op", choices=("img2img", "inpaint", "generate"), default="img2img",
                   help="what to do with each version (default img2img)")
    g.add_argument("--mask", help="mask image, white = repaint (the file's size)")
    g.add_argument("--rect", type=_rect, help="rectangular selection x,y,width,height instead of a mask")
    g.add_argument("-o", "--output", help="composited result, rewritten after each job (default: <file>-live.png)")
    g.add_argument("--layer-out", help="the result layer as RGBA PNG (default: <output>.layer.png)")
    g.add_argument("--interval", type=_seconds, default=0.1, help="seconds between looks at the file (default 0.1)")
    g.add_argument("--debounce", type=_seconds, default=0.2,
                   help="seconds the file must stay unchanged before a version counts (default 0.2)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress output besides the result lines")
    _add_generation(p, strength=0.5)
    _add_connection(p)

    p = sub.add_parser("models", help="list the server's models, upscalers and samplers")
    _add_connection(p)

    sub.add_parser("styles", help="list the styles --style can name: the built-in ones and yours")

    p = sub.add_parser("demo", help="draw a sample picture and run inpaint, img2img and generate on a local server")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--steps", type=_ranged(JobRequest, "steps"), default=8)
    p.add_argument("--models", metavar="DIR", help="models folder (default: the built-in tiny model)")
    p.add_argument("--device", help="auto, cuda, cpu, mps ...")
    p.add_argument("--url", help="use this running server instead of starting one")
    p.add_argument("--token", help=argparse.SUPPRESS)
    p.add_argument("--token-file", help="token of the --url server")
    p.add_argument("-q", "--quiet", action="store_true")

    from .server_command import add_parser as add_server_parser  # stdlib only: fast

    add_server_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "server":  # no Pillow nor client needed
        from .server_command import run_server_command

        return run_server_command(args)
    from .commands import run_command  # Pillow, numpy and the client load only now

    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_JOB_FAILED


if __name__ == "__main__":
    sys.exit(main())
