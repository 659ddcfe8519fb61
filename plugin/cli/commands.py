"""The command handlers behind ``main.py``: load inputs, run jobs, write files, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core.client import ClientError, ConnectError
from latentbrush.plugin.core.controller import ControllerError
from latentbrush.plugin.core.requests import (
    ControlSpec,
    GenerationSettings,
    ReferenceSpec,
    RegionSpec,
    RequestError,
    default_preprocessor,
    is_refiner,
)
from latentbrush.plugin.core.styles import StyleError
from latentbrush.plugin.core.token import TokenError
from latentbrush.plugin.deps import MissingDependency
from latentbrush.plugin.hosts.headless import HeadlessHost
from latentbrush.protocol.geometry import Rect
from PIL import Image, UnidentifiedImageError

from .local_server import ServerStartError
from .main import EXIT_CONNECT, EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE, ControlArg, ReferenceArg
from .session import ConnectOptions, PreviewWriter, connected, run_job, write_results
from .style_command import chosen_style, list_styles, with_style

OPERATIONS = {"inpaint": "inpaint", "img2img": "img2img", "generate": "txt2img", "upscale": "upscale",
              "preprocess": "preprocess"}
DEFAULT_CANVAS = (512, 512)


class InputError(ValueError):
    """A file or option the command cannot use; the message names it."""


def run_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(args))
        if args.command == "models":
            return asyncio.run(list_models(args))
        if args.command == "styles":
            return list_styles(args)
        if args.command == "live":
            from .live import run_live_command

            return run_live_command(args)
        return asyncio.run(run_image_job(args))
    except (InputError, RequestError, ControllerError, StyleError) as exc:
        print(f"latentbrush {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConnectError, ServerStartError, TokenError, MissingDependency) as exc:
        print(f"latentbrush {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    except ClientError as exc:
        print(f"latentbrush {args.command}: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED


def connect_options(args: argparse.Namespace) -> ConnectOptions:
    return ConnectOptions(url=args.url, token=args.token, token_file=args.token_file,
                          local=getattr(args, "local", False), models=args.models, device=args.device)


def load_image(path: str, what: str, mode: str | None) -> Image.Image:
    """``path`` as ``mode`` (None: as stored, a palette resolved)."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{what} {path} is not a readable image: {exc}")


def make_host(args: argparse.Namespace) -> HeadlessHost:
    if args.input:
        canvas = load_image(args.input, "input image", "RGBA")
    else:
        size = getattr(args, "size", None) or DEFAULT_CANVAS
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    mask = rect = None
    if getattr(args, "mask", None):
        if getattr(args, "rect", None):
            raise InputError("give --mask or --rect, not both")
        mask = load_image(args.mask, "mask image", "L")
        if mask.size != canvas.size:
            raise InputError(f"mask {args.mask} is {mask.size[0]}x{mask.size[1]}, the input is "
                             f"{canvas.size[0]}x{canvas.size[1]}: they must match")
    elif getattr(args, "rect", None):
        rect = Rect(*args.rect)
    return HeadlessHost(canvas, mask=mask, rect=rect)


def control_images(args: argparse.Namespace, canvas: Image.Image) -> list[tuple[ControlArg, Image.Image]]:
    """Each ``--control`` image, read now (a bad file is a usage error before any connection)."""
    out = []
    for control in getattr(args, "control", []):
        image = load_image(control.path, f"control image ({control.mode})", "RGBA")
        if image.size != canvas.size:
            raise InputError(f"control image {control.path} is {image.size[0]}x{image.size[1]}, the canvas is "
                             f"{canvas.size[0]}x{canvas.size[1]}: they must match")
        out.append((control, image))
    return out


def control_specs(images: list[tuple[ControlArg, Image.Image]], offered: tuple[str, ...]) -> tuple[ControlSpec, ...]:
    """The controls for the job; each mode's own preprocessor when the server has one (``offered``)."""
    return tuple(ControlSpec(image, mode=c.mode, preprocessor=default_preprocessor(c.mode, offered), weight=c.weight,
                             start=c.start, end=c.end) for c, image in images)


def reference_layer(picture: Image.Image, canvas: tuple[int, int]) -> Image.Image:
    """A reference file as the layer a painter would paste it as: scaled to fit the canvas, centred, transparent
    around it (the host reads references over the whole canvas; the server crops to the opaque part)."""
    scale = min(canvas[0] / picture.width, canvas[1] / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    layer = Image.new("RGBA", canvas, (0, 0, 0, 0))
    offset = ((canvas[0] - size[0]) // 2, (canvas[1] - size[1]) // 2)
    layer.paste(picture.resize(size, Image.Resampling.LANCZOS), offset)
    return layer


def reference_specs(args: argparse.Namespace, canvas: Image.Image) -> tuple[ReferenceSpec, ...]:
    """Each ``--reference`` picture (any size), read now (a bad file is a usage error before any connection)."""
    out = []
    for ref in getattr(args, "reference", []):
        picture: ReferenceArg = ref
        image = load_image(picture.path, f"reference image ({picture.mode})", "RGBA")
        out.append(ReferenceSpec(reference_layer(image, canvas.size), mode=picture.mode, weight=picture.weight))
    return tuple(out)


def region_layer(mask: Image.Image) -> Image.Image:
    """A ``--region`` mask file as the layer a painter would draw it as: its opacity where the file has an alpha
    channel, else its brightness (white = the region)."""
    has_alpha = mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info)
    alpha = mask.convert("RGBA").getchannel("A") if has_alpha else mask.convert("L")
    layer = Image.new("RGBA", mask.size, (255, 255, 255, 0))
    layer.putalpha(alpha)
    return layer


def region_specs(args: argparse.Namespace, canvas: Image.Image) -> tuple[RegionSpec, ...]:
    """Each ``--region`` mask, read now (a bad file is a usage error before any connection)."""
    out = []
    for region in getattr(args, "region", []):
        mask = load_image(region.path, f"region mask ({region.prompt[:40]})", None)
        if mask.size != canvas.size:
            raise InputError(f"region mask {region.path} is {mask.size[0]}x{mask.size[1]}, the canvas is "
                             f"{canvas.size[0]}x{canvas.size[1]}: they must match")
        out.append(RegionSpec(region_layer(mask), region.prompt, weight=region.weight))
    return tuple(out)


def settings_from(args: argparse.Namespace) -> GenerationSettings:
    if args.command == "preprocess":  # the picture itself (the visible canvas, source None) is the one control
        return GenerationSettings(controls=(ControlSpec(None, preprocessor=args.preprocessor),))
    return GenerationSettings(
        prompt=args.prompt, negative_prompt=args.negative, model=args.model, sampler=args.sampler,
        steps=args.steps, cfg=args.cfg, seed=args.seed, strength=getattr(args, "strength", 1.0), batch=args.batch,
        blend_outward=getattr(args, "blend_outward", 0),
        upscaler=getattr(args, "upscaler", ""), scale=getattr(args, "scale", 2.0),
        refine=getattr(args, "refine", False), refine_strength=getattr(args, "refine_strength", 0.3),
        unblur=getattr(args, "unblur", 0.0), loras=tuple(getattr(args, "lora", ())),
        refiner=getattr(args, "refiner", ""), refiner_at=getattr(args, "refiner_at", None),
    )


def default_output(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    stem = Path(args.input).stem if args.input else "latentbrush"
    return Path(f"{stem}-{args.command}.png")


async def run_image_job(args: argparse.Namespace) -> int:
    op = OPERATIONS[args.command]
    host = make_host(args)
    settings = settings_from(args)
    style = chosen_style(args)  # an unknown name fails before connecting
    controls = control_images(args, host.canvas)
    settings = replace(settings, references=reference_specs(args, host.canvas), regions=region_specs(args, host.canvas))
    writer = PreviewWriter(Path(args.previews) if args.previews else None, args.command, host)
    host.preview_sink = writer
    started = time.monotonic()
    async with connected(connect_options(args), verbose=not args.quiet) as client:
        if controls:
            offered = client.hello.preprocessors if client.hello is not None else ()
            settings = replace(settings, controls=control_specs(controls, offered))
        settings = with_style(args, settings, style, client.hello)
        record = await run_job(client, host, op, settings, label=args.command, show_progress=not args.quiet,
                               previews=True, preview_max_side=args.preview_max_side)
    if record.state != hs.DONE:
        print(f"latentbrush {args.command}: job {record.state}: {record.error or ''}", file=sys.stderr)
        return EXIT_JOB_FAILED
    written = write_results(host, default_output(args), Path(args.layer_out) if args.layer_out else None)
    if getattr(args, "annotation", None):
        Path(args.annotation).write_text(json.dumps(record.info.get("annotation", {}), indent=1) + "\n")
        written.append(Path(args.annotation))
    if not args.quiet:
        seeds = ", ".join(str(s) for s in record.seeds) or "-"
        print(f"{args.command}: {len(host.layers)} image(s), seed {seeds}, {host.preview_count} previews, "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)
        for line in prompt_lines(record.info):
            print(line, file=sys.stderr)
    for path in written + writer.paths:
        print(path)
    return EXIT_OK


def prompt_lines(info: dict) -> list[str]:
    """What the job info says of the prompt (its 75-token chunks) and the LoRAs applied; nothing from a server
    that does not report them."""
    lines = []
    if info.get("prompt_chunks") is not None:
        negative = info.get("negative_prompt_chunks")
        lines.append(f"prompt: {info['prompt_chunks']} chunk(s) of 75 tokens"
                     + (f", negative {negative}" if negative else ""))
    if info.get("loras"):
        lines.append("loras: " + ", ".join(f"{lora.get('name')} {lora.get('weight', 1.0):g}" for lora in info["loras"]))
    return lines


async def list_models(args: argparse.Namespace) -> int:
    async with connected(connect_options(args), verbose=False) as client:
        hello = client.hello
        answer = await client.query_models()
    print(f"server {hello.server} on {hello.device} ({hello.dtype})")
    print("models:")
    for m in answer.models:
        default = "  (default)" if m.name == answer.default_model else ""
        kind = "inpaint " if m.inpaint else ""
        preset = f"  [{m.preset.sampler}, {m.preset.steps} steps, CFG {m.preset.cfg:g}]" if m.preset else ""
        refiner = f"  (refiner of {m.base.removesuffix('-refiner')} models: --refiner)" if is_refiner(m) else ""
        print(f"  {m.name:32s} {m.base:6s} {kind}{m.resolution}px {m.source}{default}{preset}{refiner}")
    print("upscalers: " + ", ".join(answer.upscalers))
    print("samplers:  " + ", ".join(answer.samplers))
    if hello.presets:  # 1.1: few-step presets by name
        print("presets:   " + ", ".join(hello.presets))
    if hello.controls:  # a 1.1 server; a 1.0 hello has none
        print("controls:")
        for c in hello.controls:
            kind = "  (T2I-Adapter)" if c.kind == "t2i_adapter" else ""
            print(f"  {c.name:32s} {c.family:6s} {c.mode or '(mode not stated)'}{kind}")
        print("preprocessors: " + ", ".join(p or repr(p) for p in hello.preprocessors))
    if hello.references:
        print("references:")
        for r in hello.references:
            print(f"  {r.name:32s} {r.family:6s}")
        print("reference modes: " + ", ".join(hello.reference_modes))
    if hello.loras:  # 1.1: for --lora and <lora:name:weight> prompt tags
        print("loras:")
        for lora in hello.loras:
            print(f"  {lora.name:32s} {lora.family:6s}")
    if hello.embeddings:  # 1.1: textual-inversion embeddings, named in a prompt
        print("embeddings: " + ", ".join(hello.embeddings))
    return EXIT_OK
